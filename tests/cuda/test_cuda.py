"""The CUDA path, on a GPU: skipped on machines without one (CI has none; benchmarks/gpu_check.sh
runs these where a GPU is lent). Everything here is also exercised on the CPU elsewhere; these
check what only a GPU shows: bf16 autocast, channels_last kernels, uint8 data resident on the
device, deferred loss reads (no host sync per batch) and the out-of-memory path."""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.train import loop

from helpers import tiny_cnn, weights

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def digits():
    return wb.load_data("digits").subset(train=40, valid=10, seed=0)


def make(data, model=None, **settings) -> wb.Session:
    options = dict(optimizer="adamw", lr=1e-3, batch_size=32, freeze="full", device="cuda")
    return wb.Session(data, model or tiny_cnn(), **{**options, **settings})


def test_auto_device_is_cuda_and_everything_lives_there(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), freeze="full")
    assert s.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in s.model.module.parameters())
    pixels = s.pipeline.batcher("train").pixels
    assert pixels.device.type == "cuda" and pixels.dtype == torch.uint8  # GPU-resident uint8 set
    r = s.step()
    assert r.completed and r.valid_accuracy is not None
    assert s.predictions.logits.shape == (len(digits.valid), 10)


def test_bf16_autocast_runs_the_forward_in_bf16_and_the_loss_in_fp32(digits) -> None:
    s = make(digits, amp="bf16")
    dtypes: list[torch.dtype] = []
    s.model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    losses = [r.train_loss for r in s.fit(3)]
    assert set(dtypes) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    off = make(digits, amp="off")
    off_dtypes: list[torch.dtype] = []
    off.model.head.register_forward_hook(lambda m, i, o: off_dtypes.append(o.dtype))
    off.step()
    assert set(off_dtypes) == {torch.float32}


def test_channels_last_inputs_and_weights_on_cuda(digits) -> None:
    s = make(digits)
    x = s.pipeline.batch("train", torch.arange(8))
    assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in s.model.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_cuda_matches_the_cpu_in_float32(digits) -> None:
    """Plain SGD in float32 without TF32: the first batches agree to float tolerance (Adam's
    normalised steps would amplify rounding differences into different trajectories)."""
    flags = (torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        settings = dict(optimizer="sgd", lr=0.01, amp="off", channels_last=False)
        cpu = make(digits, tiny_cnn(), device="cpu", **settings)
        gpu = make(digits, tiny_cnn(), **settings)
        a, b = cpu.step(), gpu.step()
    finally:
        (torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = flags
    # Before any step and after one, the losses agree to 1e-4; measured on an H200: after two SGD
    # steps the reduction-order differences of the two devices' kernels had grown to 3.8e-4 (relative).
    assert a.batch_losses[:2] == pytest.approx(b.batch_losses[:2], rel=1e-4)
    assert a.batch_losses[2] == pytest.approx(b.batch_losses[2], rel=1e-3)
    # Not the epoch's valid loss: this tiny CNN at lr 0.01 ends its first epoch unstable on the valid
    # split (valid loss 8.0 on CUDA, 9.1 on the CPU, measured on an H200), so rounding decides it.


def test_deferred_reads_on_cuda_read_nothing_per_batch(digits, monkeypatch) -> None:
    s = make(digits, batch_size=8)
    assert s._deferred_reads() is True
    reads: list[int] = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(1) or item(t))
    events: list[object] = []
    s.on("batch_end", events.append)
    r = s.step()
    assert r.batches == r.num_batches > 10
    assert len(reads) < r.num_batches // 2  # no read per batch


def test_non_finite_loss_on_cuda_keeps_the_last_good_step(digits) -> None:
    # amp "off": with "auto" the first epoch's bf16-vs-float32 probe calls the forward too, on a copy
    # of the first batch, and would take the NaN meant for training batch 3 (seen on an H200)
    s = make(digits, optimizer="sgd", lr=0.05, batch_size=8, amp="off")
    forward, calls = s.model.logits, []
    after: list[dict[str, torch.Tensor]] = []
    step = s.optimizer.step
    s.optimizer.step = lambda *a, **k: (step(*a, **k), after.append(weights(s.model.module)))[0]

    def nan_at_batch_3(x):
        calls.append(1)
        out = forward(x)
        return out * float("nan") if len(calls) == 3 else out

    s.model.logits = nan_at_batch_3
    with pytest.raises(wb.TrainingError, match="non-finite loss at batch 3/"):
        s.step()
    assert s.history[-1].batches == 2 and s.global_step == 2
    now = weights(s.model.module)
    params = {n for n, _ in s.model.module.named_parameters()}
    assert all(torch.equal(now[k], after[1][k]) for k in params)
    assert all(torch.isfinite(v.float()).all() for v in now.values())


def test_real_out_of_memory_gives_advice_and_keeps_the_weights(digits) -> None:
    """A batch that cannot fit: a clear error naming a smaller batch; the session trains after."""
    big = wb.load_data("digits").subset(train=150, valid=20, seed=0)
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=224)
    s = make(big, model, batch_size=1024, sampler="balanced")
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    # leave room for the weights and a small batch, but not for 1024 images at 224 px
    fraction = (total - free + 2.5 * 1024**3) / total
    torch.cuda.set_per_process_memory_fraction(min(fraction, 0.95))
    try:
        before = weights(s.model.module)
        with pytest.raises(wb.WorkbenchError, match="batch_size="):
            s.step()
        after = weights(s.model.module)
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert s.global_step == sum(r.batches for r in s.history)
        s.configure(batch_size=16)
        r = s.step()
        assert r.completed
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def test_head_only_cache_on_cuda_and_save_load_to_cpu(digits, tmp_path) -> None:
    s = make(digits, freeze="head")
    r = s.step()
    assert r.fast_path and s.cache.builds == 2
    feats = s._features("train")
    assert feats.is_cuda
    s.save(tmp_path / "g.wb")
    back = wb.Session.load(tmp_path / "g.wb", data=digits)
    assert back.epoch == 1
    cpu = wb.Session.load(tmp_path / "g.wb", data=digits)
    cpu.configure(device="cpu")
    assert all(p.device.type == "cpu" for p in cpu.model.module.parameters())
    assert cpu.step().completed


def test_find_lr_on_cuda_restores_everything(digits) -> None:
    s = make(digits)
    before = weights(s.model.module)
    result = s.find_lr(steps=20)
    assert len(result.lrs) > 5
    after = weights(s.model.module)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_text_model_on_cuda_trains_in_bf16() -> None:
    texts = wb.load_data("sms-spam").subset(train=40, valid=20, seed=0)
    model = wb.load_backbone("minilm-l6", num_classes=2, pretrained=False, max_length=32)
    s = wb.Session(texts, model, freeze=wb.last(1), batch_size=16, lr=1e-4)
    r = s.fit(2)[-1]
    assert r.completed and s.device.type == "cuda"


def test_loop_helpers_keep_indices_on_the_right_device(digits) -> None:
    t = torch.arange(10, device="cuda")
    rows = loop.rows_of(t)
    assert rows(torch.tensor([1, 3])).tolist() == [1, 3]


def test_auto_mixed_precision_is_measured_once_per_training_step(digits) -> None:
    """amp="auto" times bf16 against float32 at the first full-forward epoch and keeps the faster
    (the GPU check found bf16 1.8-2.4x slower for small launch-bound models)."""
    s = make(digits)
    s.step()
    key = (tuple(s.trainable), False, s.config.batch_size)
    assert key in s.placement.amp_measured
    faster_bf16, note = s.placement.amp_measured[key]
    assert "measured" in note and note in s.summary()
    dtypes: list[torch.dtype] = []
    s.model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    s.step()
    assert set(dtypes) <= {torch.bfloat16 if faster_bf16 else torch.float32, torch.float32}


def test_the_preconditioned_head_trains_on_the_device_as_on_the_cpu(digits) -> None:
    """The head preconditioner (train/precondition.py) lives with the cached features, on the GPU,
    and its factor matches the CPU's (float32 features without TF32; the inverse is in float64)."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    factors = {}
    try:
        for device in ("cuda", "cpu"):
            torch.manual_seed(0)
            s = wb.Session(digits, tiny_cnn(), seed=0, device=device, amp="off", channels_last=False)
            r = s.step()
            assert r.completed and torch.isfinite(torch.tensor(r.train_loss))
            assert s._preconditioner is not None
            assert all(f.device.type == device for _, f in s._preconditioner.factors)
            factors[device] = s._preconditioner.factors[0][1].cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    gap = torch.linalg.norm(factors["cuda"] - factors["cpu"]) / torch.linalg.norm(factors["cpu"])
    assert gap < 1e-2, gap
