"""Model.from_module: a user's own nn.Module, discovered like a library backbone."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import workbench as wb
from models.tiny_text import tiny_config, tiny_tokenizer
from workbench.errors import ConfigError
from workbench.models import ImagePreprocess, Model, TextPreprocess


class SmallNet(nn.Module):
    """conv-bn, conv-bn, conv, global average pool, Linear: a typical hand-written CNN."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x)).relu()
        x = self.bn2(self.conv2(x)).relu()
        return self.fc(self.conv3(x).relu().mean((2, 3)))


class Flattening(nn.Module):
    """Flattens a fixed-size map: runs on 28 px images only."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
        self.out = nn.Linear(4 * 24 * 24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x).flatten(1))


class Softmaxed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3))).softmax(-1)


class ConvOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x)).mean((2, 3))


class SharedStem(nn.Module):
    """One conv used twice (weights shared) and registered under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.again = self.stem
        self.stage1, self.stage2 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.again(self.stem(x))
        return self.fc(self.stage2(self.stage1(x)).mean((2, 3)))


def check_cached_path(model: Model, x) -> None:
    model.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.features(x)), model.logits(x), rtol=1e-4, atol=1e-5)


def test_a_hand_written_cnn_gets_blocks_a_new_head_and_assumed_preprocessing():
    torch.manual_seed(0)
    model = Model.from_module(SmallNet(), 3)
    assert model.block_names == ["stem", "conv2+bn2", "conv3", "head"]  # BatchNorms join their convs
    assert model.head_path == "fc" and model.head[-1].out_features == 3
    assert model.library == "module" and not model.rebuildable and model.name == "module:SmallNet"
    assert model.preprocess == ImagePreprocess(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert "preprocessing assumed: ImageNet mean/std, 224 px" in model.weights
    assert "new random head for 3 classes" in model.weights
    assert "built from your module" in model.summary()
    check_cached_path(model, torch.randn(2, 3, 32, 32))


def test_a_classifier_of_the_right_size_is_kept_and_the_size_is_found():
    net = Flattening()
    weight = net.out.weight.detach().clone()
    model = Model.from_module(net, 10, name="mnist-net")
    assert model.preprocess.size == 28 and "28 px" in model.weights
    assert "your 10-class head kept" in model.weights
    assert torch.equal(model.head[-1].weight, weight)
    assert model.name == "mnist-net" and model.module is not net  # a copy: the caller's module stays as it was


def test_given_preprocessing_and_head_are_used():
    pre = ImagePreprocess(size=40, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = Model.from_module(SmallNet(), 4, preprocess=pre, head="fc", head_dropout=0.2)
    assert model.preprocess is pre and "assumed" not in model.weights
    assert model.options["head_dropout"] == pytest.approx(0.2)


def test_library_modules_use_their_library_description():
    resnet = Model.from_module(torchvision.models.resnet18(), 3)
    assert resnet.block_names == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    vit = Model.from_module(timm.create_model("test_vit"), 3)
    assert vit.block_names[-2:] == ["blocks.5+norm", "head"] and "timm data config" in vit.weights
    check_cached_path(vit, torch.randn(2, 3, vit.preprocess.size, vit.preprocess.size))


def test_a_transformers_module_with_its_tokenizer():
    from transformers import AutoModelForSequenceClassification

    config = tiny_config("gpt2")
    config.num_labels = 3
    model = Model.from_module(AutoModelForSequenceClassification.from_config(config), 3, kind="text",
                              tokenizer=tiny_tokenizer())  # fmt: skip
    assert model.pooling == "last-token" and model.block_names == ["stem", "h.0", "h.1+ln_f", "head"]
    assert isinstance(model.preprocess, TextPreprocess) and "your 3-class head kept" in model.weights
    check_cached_path(model, model.preprocess(["a b", "the film was good"]))


def test_a_shared_layer_belongs_to_one_block_under_both_names():
    model = Model.from_module(SharedStem(), 2, preprocess=ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3))
    assert model.block_of("stem.weight") == model.block_of("again.weight") == "stem"
    assert sum(b.params for b in model.blocks) == sum(p.numel() for p in model.module.parameters())


def test_a_session_trains_a_module_on_cached_features_then_two_blocks(tiny_images):
    model = Model.from_module(SmallNet(), 3, preprocess=ImagePreprocess(24, (0.5,) * 3, (0.5,) * 3))
    session = wb.Session(tiny_images, model, freeze="head", batch_size=4, seed=0)
    assert session.path()[0]
    session.step()
    session.freeze(wb.last(2))
    session.step()
    assert len(session.history) == 2


@pytest.mark.parametrize("module,kwargs,fragments", [
    (ConvOut(), {}, ["layer 'out'", "Conv2d on inputs of shape", "head="]),
    (ConvOut(), {"head": "conv2"}, ["head='conv2' names no submodule", "head='out'"]),
    (ConvOut(), {"head": "out"}, ["not a Linear on one pooled vector", "Name an nn.Linear"]),
    (Softmaxed(), {}, ["not the classifier 'fc'", "something runs after it"]),
    (nn.ReLU(), {}, ["has no parameters"]),
    ("resnet18", {}, ["takes a torch.nn.Module"]),
    (SmallNet(), {"kind": "audio"}, ["Unknown kind 'audio'"]),
    (SmallNet(), {"kind": "text"}, ["needs its tokenizer"]),
    (SmallNet(), {"tokenizer": object()}, ["tokenizer applies to kind='text'"]),
    (SmallNet(), {"preprocess": 224}, ["must be an ImagePreprocess"]),
    (SmallNet(), {"name": ""}, ["name must be a non-empty string"]),
    (SmallNet(), {"granularity": "layer"}, ["Unknown granularity"]),
    (SmallNet(), {"preprocess": ImagePreprocess(2, (0.5,) * 3, (0.5,) * 3)}, ["cannot run on a (1, 3, 2, 2) image"]),
])  # fmt: skip
def test_bad_modules_and_arguments_name_the_fix(module, kwargs, fragments):
    with pytest.raises(ConfigError) as info:
        Model.from_module(module, 3, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_errors_come_before_the_module_changes():
    net = SmallNet()
    before = net.fc
    with pytest.raises(ConfigError):
        Model.from_module(net, 1)
    with pytest.raises(ConfigError):
        Model.from_module(net, 3, head="nope")
    assert net.fc is before


def test_load_backbone_points_a_module_to_from_module():
    with pytest.raises(ConfigError, match=r"wb.Model.from_module\(module, num_classes="):
        wb.load_backbone(SmallNet(), 3)


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


MODULES = [
    pytest.param(lambda: SmallNet(5), {}, id="hand-written, new head"),
    pytest.param(lambda: Flattening(), {}, id="hand-written, head kept"),
    pytest.param(lambda: torchvision.models.squeezenet1_1(num_classes=4), {}, id="squeezenet, classifier rewritten"),
    pytest.param(lambda: timm.create_model("test_resnet", num_classes=7), {}, id="timm"),
    pytest.param(lambda: SharedStem(), {"preprocess": ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3)}, id="shared layer"),
]


@pytest.mark.parametrize("make,kwargs", MODULES)
def test_from_module_leaves_your_module_alone_and_is_idempotent(make, kwargs):
    """The module you pass is never changed (names, tensors, submodule types), and a second call on it
    builds the same model as the first: nothing is nested twice."""
    torch.manual_seed(0)
    net = make()
    before, types = _tensors(net), [type(m) for m in net.modules()]
    first = Model.from_module(net, 10, **kwargs)
    second = Model.from_module(net, 10, **kwargs)
    assert [type(m) for m in net.modules()] == types
    assert _tensors(net).keys() == before.keys() and all(torch.equal(_tensors(net)[k], v) for k, v in before.items())
    assert first.module is not net and second.module is not first.module
    a, b = _tensors(first.module), _tensors(second.module)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seed: the same new head
    assert first.block_names == second.block_names and first.head_path == second.head_path
    assert not any(".1.1." in k for k in a)  # no head inside a head


def test_a_module_that_already_has_our_head_is_not_wrapped_again():
    net = SmallNet()
    model = Model.from_module(net, 3)
    again = Model.from_module(model.module, 3)  # e.g. session.model.module passed back in
    assert again.head_path == model.head_path == "fc" and list(_tensors(again.module)) == list(_tensors(model.module))
    other = Model.from_module(model.module, 5)  # another class count: a new Linear in the same place
    assert other.head_path == "fc" and other.head[-1].out_features == 5 and "fc.1.1.weight" not in _tensors(other.module)


def test_the_readme_reload_of_your_own_module_works_in_the_same_kernel(tiny_images, tmp_path):
    """README: wb.Session.load(path, model=wb.Model.from_module(net, ...)) right after training net."""
    net = SmallNet()
    pre = ImagePreprocess(24, (0.5,) * 3, (0.5,) * 3)
    session = wb.Session(tiny_images, Model.from_module(net, 3, preprocess=pre), freeze=wb.last(2), batch_size=4)
    session.fit(2)
    session.save(tmp_path / "run.wb")
    again = wb.Session.load(tmp_path / "run.wb", data=tiny_images, model=Model.from_module(net, 3, preprocess=pre))
    trained, loaded = _tensors(session.model.module), _tensors(again.model.module)
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)
    assert again.history_frame().equals(session.history_frame()) and again.epoch == 2
