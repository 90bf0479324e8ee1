"""Bad inputs and offline loads: the right error, raised early, naming the problem and the fix."""

from __future__ import annotations

import socket

import pytest
import torch

import workbench as wb
from workbench.errors import ConfigError, DataError, HubUnavailableError
from workbench.models import list_backbones, load_backbone
from workbench.models import pretrained as pt


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Simulate a machine without internet (and with empty caches), whatever the real one has."""

    def refuse(*_args, **_kwargs):
        raise OSError("network disabled by the test")

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(pt, "_PROBE_CACHE", {})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)


BAD = [
    (("resnet5", 3), {}, ["Unknown backbone 'resnet5'", "Did you mean", "'resnet50'", "wb.list_backbones()", "timm:", "hf:"]),
    (("ResNet18x", 3), {}, ["Did you mean", "'resnet18'"]),
    (("resnet18", 1), {}, ["num_classes must be an int >= 2", "got 1"]),
    (("resnet18", 2.5), {}, ["num_classes", "got 2.5"]),
    (("resnet18", True), {}, ["num_classes", "got True"]),
    (("resnet18", "10"), {}, ["num_classes", "got '10'"]),
    (("resnet18", 3), {"granularity": "stage"}, ["Unknown granularity 'stage'", "Did you mean: 'stages'"]),
    (("resnet18", 3), {"image_size": 0}, ["image_size must be an int >= 1", "got 0"]),
    (("resnet18", 3), {"image_size": -32}, ["image_size", "got -32"]),
    (("resnet18", 3), {"image_size": 64.0}, ["image_size", "got 64.0"]),
    (("vit_b_16", 3), {"image_size": 60, "pretrained": False}, ["image_size=60", "multiple of the patch size 16"]),
    (("convnext_tiny", 3), {"image_size": 16, "pretrained": False}, ["image_size=16 is not valid for 'convnext_tiny'", "default 224"]),
    (("timm:vit_tiny_patch16_224", 3), {"image_size": 40, "pretrained": False}, ["image_size=40", "patch size 16"]),
    (("resnet18", 3), {"head_dropout": 1.0}, ["head_dropout must be a float in [0, 1)", "got 1.0"]),
    (("resnet18", 3), {"seed": -1}, ["seed", "got -1"]),
    (("resnet18", 3), {"head_dropout": -0.1}, ["head_dropout", "got -0.1"]),
    (("resnet18", 3), {"head_dropout": "0.2"}, ["head_dropout", "got '0.2'"]),
    (("resnet18", 3), {"max_length": 64}, ["max_length applies to text backbones", "use image_size"]),
    (("minilm-l6", 3), {"image_size": 64}, ["image_size applies to image backbones", "use max_length"]),
    (("minilm-l6", 3), {"max_length": 0}, ["max_length must be an int >= 1"]),
    (("minilm-l6", 3), {"max_length": 1000, "pretrained": False}, ["max_length=1000", "at most 512"]),
    (("resnet18", 3), {"pretrained": "yes"}, ["pretrained must be True or False"]),
    (("timm:", 3), {}, ["names no model", "timm:<name>"]),
    (("hf:", 3), {}, ["names no model", "hf:<name>"]),
    (("timm:resnet999", 3), {}, ["timm has no model 'resnet999'", "Did you mean", "timm.list_models"]),
    ((None, 3), {}, ["Backbone name must be a string"]),
]


@pytest.mark.parametrize("args,kwargs,fragments", BAD, ids=[f"{a[0]}-{sorted(k)}-{a[1]}" for a, k, _ in BAD])
def test_bad_inputs_raise_config_error_naming_problem_and_fix(args, kwargs, fragments):
    with pytest.raises(ConfigError) as info:
        load_backbone(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_backbone("resnet18", 0)


def test_list_backbones_kinds():
    image, text = list_backbones("image"), list_backbones("text")
    assert {"resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
            "convnext_tiny", "vit_b_16", "efficientnet_lite0"} <= set(image)  # fmt: skip
    assert {"bert-base-uncased", "distilbert-base-uncased", "roberta-base", "minilm-l6"} <= set(text)
    assert list_backbones() == image + text
    assert wb.list_backbones is list_backbones and wb.load_backbone is load_backbone
    with pytest.raises(ConfigError, match="Unknown kind 'images'.*Did you mean: 'image'"):
        list_backbones("images")


def test_unknown_block_and_bad_inputs_on_a_model():
    model = load_backbone("resnet18", 3, pretrained=False, image_size=32)
    with pytest.raises(ConfigError, match="Unknown block 'layer5'.*Did you mean"):
        model.block("layer5")
    with pytest.raises(ConfigError, match="Unknown block"):
        model.parameters_of("nope")
    with pytest.raises(DataError, match=r"\(B, 3, H, W\)"):
        model.logits(torch.zeros(3, 32, 32))


# ------------------------------------------------------------------------------------- offline
def _assert_offline_message(err: Exception, name: str) -> None:
    text = str(err)
    assert repr(name) in text and "unreachable" in text
    assert "pretrained=False" in text
    assert "'efficientnet_lite0'" in text and "'minilm-l6'" in text


def test_torchvision_pretrained_offline_raises_hub_unavailable(no_network):
    with pytest.raises(HubUnavailableError) as info:
        load_backbone("resnet50", 10, pretrained=True)
    _assert_offline_message(info.value, "resnet50")
    assert "network disabled by the test" in str(info.value)  # the original error, in one line
    assert isinstance(info.value, ConnectionError)


@pytest.mark.parametrize("name", ["bert-base-uncased", "distilbert-base-uncased", "hf:google-bert/bert-base-cased"])
def test_transformers_pretrained_offline_raises_hub_unavailable(no_network, name):
    with pytest.raises(HubUnavailableError) as info:
        load_backbone(name, 10, pretrained=True)
    _assert_offline_message(info.value, name)


def test_timm_pretrained_offline_raises_hub_unavailable(no_network):
    with pytest.raises(HubUnavailableError) as info:
        load_backbone("timm:resnet18", 10, pretrained=True)
    _assert_offline_message(info.value, "timm:resnet18")
    assert "HF_HUB_OFFLINE=1" in str(info.value)


def test_hf_offline_mode_uses_the_cache_only(no_network, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE is set"):
        load_backbone("roberta-base", 4, pretrained=True)


def test_hf_repo_random_init_still_needs_the_hub(no_network):
    with pytest.raises(HubUnavailableError) as info:
        load_backbone("hf:someone/some-model", 4, pretrained=False)
    text = str(info.value)
    assert "even with pretrained=False" in text and "'hf:someone/some-model'" in text
    assert "'bert-base-uncased'" in text and "'minilm-l6'" in text


def test_registry_text_names_build_offline_with_pretrained_false(no_network):
    model = load_backbone("distilbert-base-uncased", 4, pretrained=False)
    assert model.weights.startswith("random init")
    assert "bundled all-MiniLM-L6-v2" in model.weights  # the fallback tokenizer, said out loud
    enc = model.preprocess(["offline is fine"])
    assert "token_type_ids" not in enc  # DistilBERT's forward takes none
    assert model.logits(enc).shape == (1, 4)


# ----------------------------------------------------------------------- names beyond the registry
@pytest.mark.parametrize("name,fragments", [
    ("torchvision:resnet999", ["torchvision has no classification model 'resnet999'", "Did you mean", "library='torchvision'"]),
    ("torchvision:", ["names no model", "torchvision:resnet101"]),
    ("resnet101", ["'resnet101' is a library model", "'torchvision:resnet101'", "'timm:resnet101'"]),
    ("timm:convnext_atom", ["timm has no model 'convnext_atom'", "Did you mean", "'convnext_atto'"]),
])  # fmt: skip
def test_library_names_are_checked_with_suggestions(name, fragments):
    with pytest.raises(ConfigError) as info:
        load_backbone(name, 3, pretrained=False)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_list_backbones_lists_every_library_model_by_loadable_name():
    tv = list_backbones(library="torchvision")
    assert len(tv) == 80 and "torchvision:resnet101" in tv and "torchvision:squeezenet1_0" in tv
    assert list_backbones("image", library="timm", pattern="convnext_at*") == ["timm:convnext_atto", "timm:convnext_atto_ols",
                                                                             "timm:convnext_atto_rms"]  # fmt: skip
    assert list_backbones("text", library="timm") == []
    assert list_backbones(library="transformers") == list_backbones("text")
    with pytest.raises(ConfigError, match="Unknown library 'tim'.*Did you mean: 'timm'"):
        list_backbones(library="tim")


def test_library_and_rebuildable_say_how_a_model_comes_back():
    for name, library in [("resnet18", "torchvision"), ("timm:test_vit", "timm"), ("minilm-l6", "transformers")]:
        kwargs = {} if library == "transformers" else {"image_size": 32}
        model = load_backbone(name, 3, pretrained=False, **kwargs)
        assert model.library == library and model.rebuildable


def test_an_image_size_that_does_not_fit_suggests_sizes_that_do():
    with pytest.raises(ConfigError) as info:
        load_backbone("timm:efficientformer_l1", 3, pretrained=False, image_size=64)
    assert "image_size=64 is not valid" in str(info.value) and "e.g. 224" in str(info.value)
    model = load_backbone("timm:pvt_v2_b0", 3, pretrained=False, image_size=64)  # 7 px patches every 4 px
    assert model.preprocess.size == 64


def test_a_vision_checkpoint_folder_is_not_a_text_backbone(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    from models.tiny_text import tiny_tokenizer

    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="not a text model .* 'timm:<name>' or 'torchvision:<name>'"):
        load_backbone(f"hf:{tmp_path}", 3, pretrained=False)
