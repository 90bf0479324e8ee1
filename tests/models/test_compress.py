"""Compression: int8 predictions against float, pruning decisions and sparsity, export and reload,
the session's own model untouched, and bad inputs refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from helpers import assert_same_state, weights
from workbench.models.compress import prunable, prune_magnitude, quantize_int8, sparsity
from workbench.models.measure import latency_input, logits_on, single_inputs, split_inputs


@pytest.fixture(scope="module")
def digits():
    return wb.load_data("digits").subset(train=10, valid=8, seed=2)


@pytest.fixture(scope="module")
def image_session(digits):
    model = wb.load_backbone("timm:test_vit", digits.num_classes, pretrained=False, image_size=16)
    s = wb.Session(digits, model, freeze="full", batch_size=32, seed=0)
    s.fit(1, progress=False)
    return s


@pytest.fixture(scope="module")
def text_session(tiny_text, tiny_texts):
    model = wb.load_backbone(f"hf:{tiny_text('bert', weights=True, pooling=('mean',))}", 3, pretrained=True)
    s = wb.Session(tiny_texts, model, freeze="full", batch_size=4, seed=0)
    s.fit(1, progress=False)
    return s


def test_int8_predicts_like_float_and_leaves_the_session_alone(text_session, tiny_texts) -> None:
    before = weights(text_session.model.module)
    c = text_session.compress("int8")
    assert_same_state(weights(text_session.model.module), before)
    assert any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in c.module.modules())
    batches = split_inputs(tiny_texts, text_session.model)
    n = len(tiny_texts.valid)
    float_logits = logits_on(text_session.model.module.eval(), "text", batches, n)
    int8_logits = logits_on(c.module, "text", batches, n)
    scale = np.abs(float_logits).max()
    assert np.abs(int8_logits - float_logits).max() <= 0.05 * scale + 1e-3  # 8-bit noise, not another model
    np.testing.assert_allclose(c.report.original_logits, float_logits, rtol=1e-5, atol=1e-5)
    items = [tiny_texts.item(i) for i in range(3)]
    np.testing.assert_allclose(c.predict(items).probabilities, text_session.predict(items).probabilities, atol=0.05)
    r = c.report
    assert r.compressed_bytes[0] < r.original_bytes[0]  # int8 Linear weights
    assert r.agreement == pytest.approx(float((r.original_logits.argmax(1) == r.compressed_logits.argmax(1)).mean()))
    table = c.table()
    assert table.shape[0] == 2 and table.iloc[0]["agreement"] == 1.0
    assert list(table.columns) == ["size_mb", "gzip_mb", "cpu_ms_1", "speedup_1", "cpu_ms_per_32", "speedup_32",
                                   "accuracy", "agreement"]
    assert r.original_latency_one_ms > 0 and r.compressed_latency_one_ms > 0
    assert table.iloc[1]["speedup_1"] == pytest.approx(r.original_latency_one_ms / r.compressed_latency_one_ms)
    assert table.iloc[1]["speedup_32"] == pytest.approx(r.original_latency_ms / r.compressed_latency_ms)
    assert "one sample at a time" in r.summary() and "in batches of 32" in r.summary()


def test_latency_one_at_a_time_is_timed_on_single_unpadded_samples(text_session, tiny_texts) -> None:
    n = len(tiny_texts.valid)
    singles = single_inputs(tiny_texts, text_session.model, size=n + 5)  # capped at the split's size
    batch = latency_input(tiny_texts, text_session.model, n)
    assert len(singles) == n and len({x["input_ids"].shape[1] for x in singles}) > 1  # lengths differ: no padding
    for i, x in enumerate(singles):
        length = int(batch["attention_mask"][i].sum())
        assert x["input_ids"].shape == (1, length) and bool(x["attention_mask"].all())
        assert torch.equal(x["input_ids"][0], batch["input_ids"][i, :length])


def test_pruning_zeroes_the_smallest_weights_for_good() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.ReLU(), nn.Linear(5, 2))
    magnitudes = torch.cat([w.detach().abs().flatten() for w in (net[0].weight, net[2].weight, net[4].weight)])
    biases = [net[0].bias.clone(), net[2].bias.clone()]
    got = prune_magnitude(net, 0.3)
    kept = torch.cat([w.detach().abs().flatten() for w in (net[0].weight, net[2].weight, net[4].weight)])
    total = magnitudes.numel()
    assert got == pytest.approx(round(0.3 * total) / total) == sparsity(net)
    zeroed = kept == 0
    assert magnitudes[zeroed].max() <= magnitudes[~zeroed].min()  # ranked across layers by magnitude
    assert torch.equal(kept[~zeroed], magnitudes[~zeroed])  # the others kept as they were
    assert torch.equal(net[0].bias, biases[0]) and torch.equal(net[2].bias, biases[1])  # biases not pruned
    # permanent: no masks, no re-parametrisation hooks
    assert not any(name.endswith(("_orig", "_mask")) for name, _ in net.named_parameters())
    assert not any(name.endswith("_mask") for name, _ in net.named_buffers())
    assert all(not m._forward_pre_hooks for m in net.modules())


def test_prune_through_the_session(image_session, digits) -> None:
    before = weights(image_session.model.module)
    c = image_session.compress("prune", amount=0.4)
    assert_same_state(weights(image_session.model.module), before)
    assert c.sparsity == pytest.approx(0.4, abs=1e-3) and c.report.sparsity == c.sparsity
    assert c.report.compressed_bytes[1] < c.report.original_bytes[1]  # zeros compress
    assert sparsity(image_session.model.module) < 0.01


def test_exports_reload_to_the_same_logits(image_session, digits, tmp_path) -> None:
    items = [digits.item(i) for i in range(4)]
    for method, amount in (("int8", None), ("prune", 0.5)):
        c = image_session.compress(method, amount=amount, measure=False)
        folder = c.export(tmp_path / method)
        loaded = wb.load_exported(folder)
        np.testing.assert_allclose(loaded.predict(items).logits, c.predict(items).logits, rtol=1e-4, atol=1e-4)
        if method == "int8":
            assert (folder / "model_int8.pt").is_file() and "quantize_dynamic" in (folder / "README.md").read_text()
            assert any("quantized" in type(m).__module__ for m in loaded.module.modules())
    with pytest.raises(wb.ConfigError, match="do not export to ONNX.*onnxruntime"):
        image_session.compress("int8", measure=False).export(tmp_path / "onnx", format="onnx")
    assert not (tmp_path / "onnx").exists()


def test_quantize_leaves_convolutions_float() -> None:
    net = quantize_int8(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)).eval())
    assert type(net[0]) is nn.Conv2d and "quantized" in type(net[2]).__module__
    assert len(prunable(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Embedding(5, 4), nn.Linear(4, 2)))) == 2


@pytest.mark.parametrize("method, amount, words", [
    ("int4", None, "unknown.*'int8'"), ("prune", 0.0, "amount"), ("prune", 1.0, "amount"), ("prune", "half", "amount"),
    ("prune", float("nan"), "amount"), ("int8", 0.5, "amount applies to method='prune'"), (None, None, "unknown"),
])  # fmt: skip
def test_bad_inputs_are_refused(image_session, method, amount, words) -> None:
    before = image_session.state_dict()
    with pytest.raises(wb.ConfigError, match=words):
        image_session.compress(method, amount=amount)
    assert_same_state(image_session.state_dict(), before)


def test_compress_refused_while_training(image_session) -> None:
    image_session.control.acquire("training")
    try:
        with pytest.raises(wb.ConfigError, match="while"):
            image_session.compress("int8")
    finally:
        image_session.control.release()
