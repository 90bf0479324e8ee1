"""Taking the model away: session.predict, session.export, wb.load_exported.

For each library the exported folder is loaded back twice: by wb.load_exported, and in a fresh
Python process where `import workbench` is impossible, through the library's own call (timm's
create_model with pretrained_cfg_overlay, transformers' from_pretrained, the folder's loader.py).
Both must give the session model's logits; predict on the valid split must give
session.predictions; class names must come back; model.onnx must agree with torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from models.tiny_text import write_tiny
from workbench.errors import ConfigError, DataError

HAS_ONNX = importlib.util.find_spec("onnx") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
ODD_CLASSES = ["cat", "dög 🐕", "=SUM(A1)", "<b>x</b>"]  # non-ASCII, a spreadsheet formula, HTML


def valid_logits(session) -> np.ndarray:
    """session.predictions' logits in sample order (ids are positions in the valid split)."""
    p = session.predictions
    return p.logits[np.argsort(p.ids)]


def valid_items(data) -> list:
    return [data.item(i, "valid") for i in range(len(data.valid))]


def without_workbench(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter in which `import workbench` fails; returns its stdout."""
    prelude = "import sys\nsys.modules['workbench'] = None  # prove the folder loads without workbench\n"
    env = {**os.environ, "HF_MODULES_CACHE": str(cwd / "hf_modules"), "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def odd_images():
    """4 classes with odd names, 8 train / 3 valid random 20x24 RGB images each."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (44, 20, 24, 3), dtype=np.uint8)
    y = np.arange(44) % 4
    return wb.Data.from_arrays(x[:32], y[:32], ODD_CLASSES, valid=(x[32:], y[32:]), name="odd-images")


@pytest.fixture(scope="module")
def digits():
    return wb.load_data("digits").subset(train=10, valid=4, seed=0)


def trained(data, model, **settings):
    s = wb.Session(data, model, freeze="full", lr=1e-3, batch_size=16, seed=0, **settings)
    s.fit(1, progress=False)
    return s


# ----------------------------------------------------------------------------------- images
@pytest.mark.slow  # loads the folder again in a fresh interpreter
def test_timm_export_round_trip(odd_images, tmp_path):
    s = trained(odd_images, wb.load_backbone("efficientnet_lite0", 4, image_size=32))
    out = s.export(tmp_path / "lite0", format="onnx" if HAS_ONNX else "native")
    expected = valid_logits(s)
    items = valid_items(odd_images)

    p = s.predict(items)
    np.testing.assert_allclose(p.logits, expected, rtol=1e-4, atol=1e-5)
    assert p.labels == [ODD_CLASSES[i] for i in expected.argmax(1)]

    back = wb.load_exported(out)
    assert back.classes == ODD_CLASSES and back.kind == "image"
    np.testing.assert_allclose(back.predict(items).logits, expected, rtol=1e-4, atol=1e-5)

    # timm alone, the two ways it loads a folder; inputs prepared by the session's own pipeline
    x = s.pipeline.batch("valid", torch.arange(len(odd_images.valid))).contiguous().cpu()
    torch.save(x, tmp_path / "x.pt")
    without_workbench(f"""
        import json, numpy as np, timm, torch
        folder = {str(out)!r}
        config = json.load(open(folder + "/config.json"))
        k = config["num_classes"]
        a = timm.create_model("efficientnet_lite0", pretrained=True, num_classes=k,
                              pretrained_cfg_overlay=dict(file=folder + "/model.safetensors", num_classes=k)).eval()
        b = timm.create_model("local-dir:" + folder, pretrained=True).eval()
        x = torch.load("x.pt")
        with torch.no_grad():
            np.save("a.npy", a(x).numpy()); np.save("b.npy", b(x).numpy())
        json.dump(b.pretrained_cfg["label_names"], open("names.json", "w"))
    """, tmp_path)
    for f in ("a.npy", "b.npy"):
        np.testing.assert_allclose(np.load(tmp_path / f), expected, rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "names.json").read_text()) == ODD_CLASSES
    meta = json.loads((out / "workbench.json").read_text())
    assert meta["library"] == "timm" and meta["preprocess"]["size"] == 32
    if HAS_ORT:
        assert meta["onnx"]["checked"].startswith("onnxruntime")
        np.testing.assert_allclose(wb.load_exported(out, backend="onnx").predict(items).logits, expected,
                                   rtol=1e-3, atol=1e-3)


@pytest.mark.slow  # loads the folder again in a fresh interpreter
def test_torchvision_export_loads_with_its_loader(digits, tmp_path):
    s = trained(digits, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16))
    out = s.export(tmp_path / "r18")
    expected = valid_logits(s)
    items = valid_items(digits)
    np.testing.assert_allclose(s.predict(items).logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(wb.load_exported(out).predict(items).logits, expected, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "loader.py", "model.safetensors",
                                                      "workbench.json"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "resnet18" and cfg["replace"] == [] and cfg["classes"] == digits.classes
    # loader.py alone: the plain torchvision model, and its own preprocessing of PIL images
    for i, item in enumerate(items):
        item.save(tmp_path / f"{i}.png")
    without_workbench(f"""
        import sys, numpy as np, torch, torchvision
        sys.path.insert(0, {str(out)!r})
        import loader
        model = loader.load()
        assert type(model) is torchvision.models.ResNet and isinstance(model.fc, torch.nn.Linear)
        labels, probs = loader.predict(model, [f"{{i}}.png" for i in range({len(items)})])
        with torch.no_grad():
            np.save("logits.npy", model(loader.preprocess([f"{{i}}.png" for i in range({len(items)})])).numpy())
        print(",".join(labels))
    """, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-5)


def test_torchvision_classifier_workbench_rewrote(digits, tmp_path):
    """SqueezeNet's 1x1-convolution classifier over the whole map became pooling + Linear: the
    loader builds that layer stack from config.json."""
    s = trained(digits, wb.load_backbone("torchvision:squeezenet1_1", 10, pretrained=False, image_size=48))
    out = s.export(tmp_path / "sq")
    cfg = json.loads((out / "config.json").read_text())
    assert [r["path"] for r in cfg["replace"]] == ["classifier"]
    np.testing.assert_allclose(wb.load_exported(out).predict(valid_items(digits)).logits, valid_logits(s),
                               rtol=1e-4, atol=1e-5)


class SmallNet(nn.Module):
    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.bn1(self.conv1(x)).relu()).relu().mean((2, 3)))


SMALLNET = textwrap.dedent("""
    from torch import nn
    class SmallNet(nn.Module):
        def __init__(self, classes=7):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 16, 3)
            self.fc = nn.Linear(16, classes)
        def forward(self, x):
            return self.fc(self.conv2(self.bn1(self.conv1(x)).relu()).relu().mean((2, 3)))
""")


@pytest.mark.slow  # loads the folder again in a fresh interpreter
def test_own_module_export_needs_the_module(digits, tmp_path):
    pre = wb.ImagePreprocess(size=12, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    s = trained(digits, wb.Model.from_module(SmallNet(), num_classes=10, preprocess=pre))
    out = s.export(tmp_path / "mine")
    expected = valid_logits(s)
    with pytest.raises(ConfigError, match="pass the module"):
        wb.load_exported(out)
    back = wb.load_exported(out, module=SmallNet())  # built as at training time: 7 outputs
    np.testing.assert_allclose(back.predict(valid_items(digits)).logits, expected, rtol=1e-4, atol=1e-5)
    x = s.pipeline.batch("valid", torch.arange(len(digits.valid))).contiguous().cpu()
    torch.save(x, tmp_path / "x.pt")
    without_workbench(SMALLNET + f"""
import sys, numpy as np, torch
sys.path.insert(0, {str(out)!r})
import loader
model = loader.load(SmallNet())
with torch.no_grad():
    np.save("logits.npy", model(torch.load("x.pt")).numpy())
""", tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ texts
@pytest.fixture(scope="module")
def reviews():
    return wb.load_data("rotten-tomatoes").subset(train=12, valid=6, seed=0)


@pytest.mark.slow  # loads the folder again in a fresh interpreter
def test_pooled_sentence_transformer_exports_with_its_pooling(reviews, tmp_path):
    """minilm-l6 classifies from the mean of its token vectors: the folder carries that pooling in a
    modeling file named by auto_map, and transformers loads it with trust_remote_code=True."""
    s = trained(reviews, wb.load_backbone("minilm-l6", 2, max_length=24))
    out = s.export(tmp_path / "minilm", format="onnx" if HAS_ONNX else "native")
    expected = valid_logits(s)
    texts = valid_items(reviews)
    np.testing.assert_allclose(s.predict(texts).logits, expected, rtol=1e-4, atol=1e-5)
    back = wb.load_exported(out)
    assert back.classes == reviews.classes
    np.testing.assert_allclose(back.predict(texts).logits, expected, rtol=1e-4, atol=1e-5)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    stdout = without_workbench(f"""
        import json, numpy as np, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        folder = {str(out)!r}
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        x = tokenizer(json.load(open("texts.json")), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            np.save("logits.npy", model(**x).logits.numpy())
        print(json.dumps([model.config.id2label[i] for i in range(model.config.num_labels)]))
        print(type(model).__name__, model.config.workbench_pooling)
    """, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-5)
    lines = stdout.strip().splitlines()
    assert json.loads(lines[-2]) == reviews.classes
    assert lines[-1] == "WorkbenchForSequenceClassification ['mean']"
    if HAS_ORT:
        np.testing.assert_allclose(wb.load_exported(out, backend="onnx").predict(texts).logits, expected,
                                   rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def tiny_reviews():
    texts = ["the film was good", "dull and long", "i left early", "a great movie", "bad plot", "hello there",
             "good text", "long dull film", "my friend left the film early so that", "a b c"]  # fmt: skip
    y = np.arange(10) % 2
    return wb.Data.from_texts(texts[:6], y[:6], ["nö", "yes"], valid=(texts[6:], y[6:]), name="tiny-reviews")


@pytest.mark.slow  # loads the folder again in a fresh interpreter
@pytest.mark.parametrize("arch, native", [("bert", True), ("gpt2", False)])
def test_transformers_export(arch, native, tiny_reviews, tmp_path):
    """BERT's classifier is transformers' own: from_pretrained(folder) needs no remote code. GPT-2's
    new head has a bias its `score` layer lacks: the pooled class (last non-padding token) holds it."""
    folder = write_tiny(tmp_path / arch, arch, weights=True)
    s = trained(tiny_reviews, wb.load_backbone(f"hf:{folder}", 2))
    out = s.export(tmp_path / "out")
    expected = valid_logits(s)
    np.testing.assert_allclose(wb.load_exported(out).predict(valid_items(tiny_reviews)).logits, expected,
                               rtol=1e-4, atol=1e-5)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "nö", "1": "yes"} and cfg["label2id"] == {"nö": 0, "yes": 1}
    assert ("auto_map" not in cfg) is native
    (tmp_path / "texts.json").write_text(json.dumps(valid_items(tiny_reviews)))
    without_workbench(f"""
        import json, numpy as np, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        folder = {str(out)!r}
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code={not native}).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        x = tokenizer(json.load(open("texts.json")), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            np.save("logits.npy", model(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).logits.numpy())
    """, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- the API edges
def test_predict_takes_one_item_paths_and_arrays(digits, tmp_path):
    s = wb.Session(digits, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), seed=0)
    item = digits.item(0, "valid")
    item.save(tmp_path / "one.png")
    one = s.predict(item)
    assert len(one) == 1 and one.labels[0] in digits.classes
    np.testing.assert_allclose(s.predict(str(tmp_path / "one.png")).logits, one.logits)
    np.testing.assert_allclose(s.predict([np.asarray(item)]).logits, one.logits)
    assert np.allclose(one.probabilities.sum(1), 1) and one.confidence[0] == one.probabilities.max()
    frame = one.frame()
    assert list(frame.columns[:2]) == ["label", "probability"] and list(frame.columns[2:]) == digits.classes
    with pytest.raises(DataError, match="PIL images"):
        s.predict([3])
    with pytest.raises(DataError, match="no items"):
        s.predict([])


def test_text_predict_refuses_non_strings(tiny_reviews):
    folder_model = wb.load_backbone("minilm-l6", 2, max_length=16)
    s = wb.Session(tiny_reviews, folder_model, seed=0)
    assert s.predict("a good film").labels[0] in tiny_reviews.classes
    with pytest.raises(DataError, match="not strings"):
        s.predict(["fine", 3])


def test_export_refuses_bad_folders_and_formats(digits, tmp_path):
    s = wb.Session(digits, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), seed=0)
    with pytest.raises(ConfigError, match="format='zip' is unknown"):
        s.export(tmp_path / "a", format="zip")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an earlier export"):
        s.export(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    first = s.export(tmp_path / "b")
    assert s.export(tmp_path / "b") == first  # an earlier export is replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
    with pytest.raises(ConfigError, match="not a folder written by session.export"):
        wb.load_exported(tmp_path / "mine")
    with pytest.raises(ConfigError, match="no model.onnx"):
        wb.load_exported(first, backend="onnx")
