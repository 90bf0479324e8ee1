"""Freezing presets, BatchNorm policy and discriminative LR groups, checked on real optimizer steps.

"Frozen means frozen": after a step, a frozen block's parameters and BatchNorm buffers are
bit-identical (torch.equal), and the trainable blocks' are not.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.errors import ConfigError
from workbench.models import load_backbone
from workbench.train.freezing import (
    FreezeSpec,
    add_param_groups,
    apply_bn_policy,
    apply_freeze,
    describe,
    last,
    param_groups,
    progressive,
    set_training,
    trainable_blocks,
)

RESNET = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def resnet():
    torch.manual_seed(0)
    return load_backbone("resnet18", 3, pretrained=False, image_size=32)


def image_batch(n: int = 4):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=gen), torch.arange(n) % 3


def buffer_blocks(model) -> dict[str, str]:
    """Buffer name -> block, through the modules each block owns."""
    owner = {id(m): b for b in model.block_names for m in model.modules_of(b)}
    out = {}
    for path, mod in model.module.named_modules():
        for name, _ in mod.named_buffers(recurse=False):
            out[f"{path}.{name}" if path else name] = owner[id(mod)]
    return out


def step(model, spec, policy: str = "frozen", inputs=None, optimizer: str = "sgd"):
    """One training step under `spec`; returns {block: changed?} and whether frozen buffers moved."""
    apply_freeze(model, trainable_blocks(model, spec))
    model.module.train()
    apply_bn_policy(model, policy)
    before = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
    opt = torch.optim.SGD(param_groups(model, 0.1), lr=0.1)
    x, y = inputs or image_batch()
    F.cross_entropy(model.logits(x), y).backward()
    opt.step()
    after = model.module.state_dict()
    changed = {b: any(not torch.equal(before[p], after[p]) for p in model.block(b).parameter_names) for b in model.block_names}
    buffers = {k: not torch.equal(before[k], after[k]) for k in buffer_blocks(model) if k in before}
    return changed, buffers


# ----------------------------------------------------------------------------------- presets
def test_presets_resolve_to_block_lists():
    model = resnet()
    assert trainable_blocks(model, "head") == ["head"]
    assert trainable_blocks(model, "full") == RESNET
    assert trainable_blocks(model, last(0)) == ["head"]
    assert trainable_blocks(model, last(2)) == ["layer3", "layer4", "head"]
    assert trainable_blocks(model, last(5)) == RESNET
    assert trainable_blocks(model, ["head", "layer1"]) == ["layer1", "head"]  # forward order
    assert wb.last(2) == last(2) and wb.progressive is progressive
    assert str(last(2)) == "last(2)" and isinstance(progressive(), FreezeSpec)


@pytest.mark.parametrize(
    "spec,fragments",
    [
        (last(6), ["last(6)", "the most is last(5)"]),
        ("heads", ["Unknown freeze preset 'heads'", "Did you mean: 'head'"]),
        ("layer4", ["pass a list"]),
        ([], ["trains nothing"]),
        (["layer9", "head"], ["Unknown block 'layer9'", "Did you mean"]),
        (5, ["Cannot read a freeze spec from int"]),
        (FreezeSpec("progressive", every=0), ["every", ">= 1"]),
    ],
)
def test_bad_specs(spec, fragments):
    with pytest.raises(ConfigError) as info:
        trainable_blocks(resnet(), spec)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_spec_constructors_and_settings():
    model = resnet()
    with pytest.raises(ConfigError, match="every"):
        progressive(every=0)
    with pytest.raises(ConfigError, match="start"):
        progressive(start=-1)
    with pytest.raises(ConfigError, match=r"last\(n\): n must be >= 0"):
        last(-1)
    with pytest.raises(ConfigError, match="Unknown block 'layer5'"):
        apply_freeze(model, ["layer5"])
    with pytest.raises(ConfigError, match="Unknown BN policy 'freeze'.*Did you mean: 'frozen'"):
        apply_bn_policy(model, "freeze")
    with pytest.raises(ConfigError, match="base_lr must be a number > 0"):
        param_groups(model, 0.0)


def test_progressive_unfreezes_one_block_from_the_top_every_n_epochs():
    model = resnet()
    spec = progressive(every=2)
    got = [trainable_blocks(model, spec, epoch=e) for e in range(12)]
    assert got[0] == got[1] == ["head"]
    assert got[2] == got[3] == ["layer4", "head"]
    assert got[4] == ["layer3", "layer4", "head"]
    assert got[10] == got[11] == RESNET  # capped at every block
    delayed = progressive(every=1, start=3)
    assert [len(trainable_blocks(model, delayed, epoch=e)) for e in range(6)] == [1, 1, 1, 1, 2, 3]


# --------------------------------------------------------------------------------- real steps
def test_head_only_step_keeps_every_frozen_parameter_and_bn_buffer():
    changed, buffers = step(resnet(), "head")
    assert changed == {b: b == "head" for b in RESNET}
    assert not any(buffers.values())  # running_mean / running_var / num_batches_tracked untouched


def test_last_two_changes_exactly_the_head_and_the_two_blocks_below():
    model = resnet()
    changed, buffers = step(model, last(2))
    assert changed == {b: b in ("layer3", "layer4", "head") for b in RESNET}
    owner = buffer_blocks(model)
    for name, moved in buffers.items():
        assert moved == (owner[name] in ("layer3", "layer4")), name


def test_full_changes_every_block():
    changed, buffers = step(resnet(), "full")
    assert all(changed.values()) and all(buffers.values())


def test_bn_policy_train_lets_frozen_running_stats_update():
    model = resnet()
    changed, buffers = step(model, "head", policy="train")
    assert changed == {b: b == "head" for b in RESNET}  # parameters still frozen
    assert any(moved for name, moved in buffers.items() if name.startswith("layer1"))


def test_bn_policy_reapplied_after_module_train():
    model = resnet()
    apply_freeze(model, trainable_blocks(model, last(1)))
    model.module.train()
    apply_bn_policy(model, "frozen")
    bn = torch.nn.BatchNorm2d
    assert not model.module.layer1[0].bn1.training and model.module.layer4[0].bn1.training
    assert model.module.training
    model.module.train()  # the Lightning #15062 trap: this puts frozen BN back in train mode
    assert model.module.layer1[0].bn1.training
    apply_bn_policy(model, "frozen")
    frozen = [m for b in RESNET[:-2] for m in model.modules_of(b) if isinstance(m, bn)]
    assert frozen and not any(m.training for m in frozen)
    model.module.eval()
    apply_bn_policy(model, "train")
    assert not any(m.training for m in model.module.modules())


def test_timm_model_head_step_and_text_model_last_step():
    torch.manual_seed(0)
    lite = load_backbone("efficientnet_lite0", 3, pretrained=False, image_size=32)
    changed, buffers = step(lite, "head")
    assert changed == {b: b == "head" for b in lite.block_names} and not any(buffers.values())
    torch.manual_seed(0)
    text = load_backbone("minilm-l6", 3, pretrained=False)
    inputs = (text.preprocess(["a good film", "a bad film", "so so"]), torch.tensor([0, 1, 2]))
    changed, _ = step(text, last(2), inputs=inputs)
    # MiniLM classifies from mean pooling (as it was trained): no BERT pooler block
    assert [b for b, c in changed.items() if c] == ["encoder.layer.4", "encoder.layer.5", "head"]


# ---------------------------------------------------------------------------------- LR groups
def test_param_groups_follow_the_decay_and_leave_out_frozen_blocks():
    model = resnet()
    apply_freeze(model, trainable_blocks(model, last(2)))
    groups = param_groups(model, 1e-3, decay=0.5)
    assert [g["name"] for g in groups] == ["layer3", "layer4", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([2.5e-4, 5e-4, 1e-3])
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.module.parameters() if p.requires_grad)
    explicit = param_groups(model, 1e-3, decay=0.1, blocks=["head", "stem"])
    assert [g["name"] for g in explicit] == ["head", "stem"]  # the order given: optimizer state reloads
    assert explicit[1]["lr"] == pytest.approx(1e-3 * 0.1**5)
    assert len(explicit[1]["params"]) == len(model.parameters_of("stem"))  # frozen, but asked for


def test_add_param_groups_keeps_the_existing_optimizer_state():
    model = resnet()
    apply_freeze(model, ["head"])
    model.module.train()
    apply_bn_policy(model)
    opt = torch.optim.Adam(param_groups(model, 1e-3, 0.5))
    x, y = image_batch()
    F.cross_entropy(model.logits(x), y).backward()
    opt.step()
    head = model.parameters_of("head")
    saved = [opt.state[p]["exp_avg"].clone() for p in head]
    apply_freeze(model, trainable_blocks(model, last(1)))
    add_param_groups(opt, model, ["layer4"], 1e-3, 0.5)
    assert [g["name"] for g in opt.param_groups] == ["head", "layer4"]
    assert opt.param_groups[1]["lr"] == pytest.approx(5e-4)
    assert all(torch.equal(opt.state[p]["exp_avg"], s) for p, s in zip(head, saved))
    with pytest.raises(ConfigError, match="'layer4' is already in the optimizer"):
        add_param_groups(opt, model, ["layer4"], 1e-3, 0.5)
    opt.zero_grad()
    F.cross_entropy(model.logits(x), y).backward()
    opt.step()  # the new group trains
    assert all("exp_avg" in opt.state[p] for p in model.parameters_of("layer4"))


def test_describe_prints_the_decisions():
    model = resnet()
    text = describe(model, trainable_blocks(model, last(1)), "frozen", 1e-3, 0.5)
    for fragment in ["layer4", "trainable", "frozen", "1.00e-03", "5.00e-04", "BatchNorm policy 'frozen'", "eval mode", "x0.5"]:
        assert fragment in text
    assert "stem" in text.splitlines()[2] and text.splitlines()[2].rstrip().endswith("-")


def test_set_training_leaves_every_module_as_train_and_eval_do() -> None:
    model = load_backbone("resnet18", num_classes=3, pretrained=False, image_size=16)
    twin = load_backbone("resnet18", num_classes=3, pretrained=False, image_size=16)
    modes = lambda m: [x.training for x in m.module.modules()]  # noqa: E731
    twin.module.layer2.train()
    twin.module.eval()
    twin.head.train()
    model.module.layer2.train()
    set_training(model.submodules(), False)
    set_training(model.head.modules(), True)
    assert modes(model) == modes(twin) and model.head.training and not model.module.layer1[0].bn1.training
    set_training(model.submodules(), True)
    twin.module.train()
    assert modes(model) == modes(twin) and all(modes(model))


def test_block_map_follows_replaced_parameters() -> None:
    model = load_backbone("resnet18", num_classes=3, pretrained=False, image_size=16)
    assert model.trainable_blocks() == model.block_names
    fresh = {k: torch.zeros_like(v) for k, v in model.module.state_dict().items()}
    model.module.load_state_dict(fresh, assign=True)  # new Parameter objects
    apply_freeze(model, ["head"])
    assert [p.requires_grad for p in model.module.parameters()] == [
        n.startswith(model.head_path + ".") for n, _ in model.module.named_parameters()]
    assert model.trainable_blocks() == ["head"] and all(p.abs().sum() == 0 for p in model.parameters_of("head"))
