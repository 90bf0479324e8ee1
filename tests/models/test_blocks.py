"""Block discovery details: granularity, names, modules_of, summary, the torchvision weight path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision

from workbench.models import Block, load_backbone
from workbench.models import pretrained as pt


def small(name: str, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("pretrained", False)
    return load_backbone(name, 3, **kwargs)


def names(model) -> list[str]:
    return [b.name for b in model.blocks]


def test_resnet_stages_and_blocks():
    assert names(small("resnet18")) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    fine = small("resnet18", granularity="blocks")
    assert names(fine) == ["stem"] + [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["head"]
    assert fine.granularity == "blocks"
    assert fine.head_path == "fc"


def test_features_family_stem_stages_and_pre_logits():
    mobile = small("mobilenet_v3_small")
    assert names(mobile)[0] == "stem" and names(mobile)[1] == "features.1"
    assert names(mobile)[-3:] == ["features.12", "classifier.0", "head"]  # classifier.0: the 576->1024 Linear
    effnet = small("efficientnet_b0", granularity="blocks")
    assert "features.2.0" in names(effnet) and "features.2" not in names(effnet)
    assert "features.1" in names(effnet)  # a one-block stage stays whole
    convnext = small("convnext_tiny", granularity="blocks", image_size=32)
    assert "features.2" in names(convnext)  # a downsample layer (norm + conv) is not split
    # the LayerNorm before the classifier (classifier.0) holds no layer of its own: it joins the last stage
    assert "features.1.0" in names(convnext) and names(convnext)[-2] == "features.7.2+classifier.0"


@pytest.mark.slow
def test_vit_final_norm_joins_the_last_layer():
    vit = small("vit_b_16", image_size=32)
    assert names(vit)[-2] == "encoder.layers.encoder_layer_11+encoder.ln"
    stem = vit.block("stem").parameter_names
    assert set(stem) == {"class_token", "conv_proj.weight", "conv_proj.bias", "encoder.pos_embedding"}
    assert names(small("vit_b_16", image_size=32, granularity="blocks")) == names(vit)


def test_timm_groups_and_split_head_group():
    lite = small("efficientnet_lite0")
    assert names(lite) == ["stem"] + [f"blocks.{i}" for i in range(6)] + ["blocks.6+conv_head+bn2", "head"]
    assert len(names(small("efficientnet_lite0", granularity="blocks"))) == 18
    mnv3 = small("timm:mobilenetv3_small_050")
    assert names(mnv3)[-2:] == ["conv_head", "head"]  # timm's head group held conv_head + classifier
    assert names(small("timm:convnext_atto"))[-2:] == ["stages.3+head.norm", "head"]  # norm-only: folded


def test_transformers_layers_from_the_base_model():
    text = small("minilm-l6")  # mean pooling (its sentence-transformers config): BERT's pooler is left out
    assert names(text) == ["stem"] + [f"encoder.layer.{i}" for i in range(6)] + ["head"]
    assert set(text.block("stem").parameter_names) == {n for n, _ in text.module.bert.embeddings.named_parameters(prefix="bert.embeddings")}
    assert names(small("minilm-l6", granularity="blocks")) == names(text)


def test_every_running_stats_module_lies_in_one_block():
    for name in ["resnet18", "efficientnet_lite0", "mobilenet_v3_small"]:
        model = small(name, image_size=32)
        bns = [m for m in model.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        owners = [[b.name for b in model.blocks if any(m is x for x in model.modules_of(b.name))] for m in bns]
        assert bns and all(len(o) == 1 for o in owners), name


def test_blocks_are_snapshots_of_the_live_module():
    model = small("resnet18")
    block = model.block("layer1")
    assert isinstance(block, Block) and block.trainable
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.trainable = False  # type: ignore[misc]
    for p in model.parameters_of("layer1"):
        p.requires_grad_(False)
    assert block.trainable and not model.block("layer1").trainable
    assert model.block("layer1").params == sum(p.numel() for p in model.module.layer1.parameters())


def test_summary_is_a_table_with_totals_and_weights():
    model = small("resnet18")
    text = model.summary()
    for fragment in ["stem", "layer4", "head", "total", "11,178,051", "weights: random init"]:
        assert fragment in text
    assert "resnet18" in repr(model)


def test_torchvision_pretrained_path_keeps_or_replaces_the_head(monkeypatch):
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18().state_dict()  # stands in for the downloaded weights
    monkeypatch.setattr(pt, "torchvision_state_dict", lambda name, weights: imagenet)
    kept = load_backbone("resnet18", 1000)
    assert kept.weights == "ImageNet-1k (torchvision IMAGENET1K_V1); pretrained 1000-class head kept"
    assert torch.equal(kept.head[-1].weight, imagenet["fc.weight"])
    new = load_backbone("resnet18", 10, head_dropout=0.5)
    assert torch.equal(new.module.layer3[0].conv1.weight, imagenet["layer3.0.conv1.weight"])
    assert new.weights.endswith("new random head for 10 classes, dropout 0.5 before it")
    assert new.head_path == "fc" and isinstance(new.head[0], torch.nn.Dropout)


@pytest.mark.slow
def test_vit_pretrained_at_a_small_size_interpolates_position_embeddings(monkeypatch):
    torch.manual_seed(1)
    imagenet = torchvision.models.vit_b_16().state_dict()
    monkeypatch.setattr(pt, "torchvision_state_dict", lambda name, weights: imagenet)
    model = load_backbone("vit_b_16", 4, image_size=32)
    assert "position embeddings interpolated from 224 to 32 px" in model.weights
    assert model.module.encoder.pos_embedding.shape == (1, 1 + 2 * 2, 768)
    assert torch.equal(model.module.encoder.pos_embedding[:, 0], imagenet["encoder.pos_embedding"][:, 0])
    assert model.logits(torch.randn(1, 3, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize("name,kwargs", [
    ("resnet18", {"image_size": 48, "head_dropout": 0.25}),
    ("efficientnet_lite0", {"granularity": "blocks"}),
    ("minilm-l6", {"max_length": 32}),
    ("torchvision:mnasnet0_5", {"image_size": 32, "granularity": "blocks"}),
    ("timm:shvit_s1", {"image_size": 32, "head_dropout": 0.3}),  # its head is timm's BatchNorm + our Head
])  # fmt: skip
def test_options_rebuild_the_same_architecture(name, kwargs):
    import json

    model = small(name, **kwargs)
    options = json.loads(json.dumps(model.options))  # checkpoints store them as JSON
    again = load_backbone(name, 3, pretrained=False, **options)
    assert again.options == model.options
    if model.kind == "image":
        assert again.preprocess == model.preprocess
    else:
        assert again.preprocess.max_length == model.preprocess.max_length == 32

    def shapes(m):
        return {k: v.shape for k, v in m.module.state_dict().items()}

    assert shapes(again) == shapes(model)
    assert names(again) == names(model)


def test_seed_makes_the_new_head_reproducible_without_touching_the_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = load_backbone("resnet18", 3, pretrained=False, image_size=32, seed=7)
    b = load_backbone("resnet18", 3, pretrained=False, image_size=32, seed=7)
    c = load_backbone("resnet18", 3, pretrained=False, image_size=32, seed=8)
    assert torch.equal(torch.rand(1), expected_next)  # the global RNG was left as it was
    assert torch.equal(a.head[-1].weight, b.head[-1].weight)
    assert not torch.equal(a.head[-1].weight, c.head[-1].weight)
