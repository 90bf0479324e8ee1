"""Take the model away: predictions on new items, and the fine-tuned model in its own library's format.

`predict(model, classes, items)` prepares PIL images, image paths or strings exactly as the valid
split is prepared (images: grey to RGB, shorter side resized to the model's size and centre-cropped
as uint8, then normalised; texts: tokenised and truncated to max_length) and returns labels and
probabilities.

`export(model, classes, folder)` writes a folder that loads without workbench:

- transformers: `save_pretrained` (config with id2label / label2id, the tokenizer with its
  max_length). A model whose classifier transformers' own class computes loads with
  `AutoModelForSequenceClassification.from_pretrained(folder)`. Pooled models (sentence-transformers
  checkpoints classify from the mean of the token vectors, which no transformers class does) carry a
  small modeling file named in config.json's `auto_map`: `from_pretrained(folder, trust_remote_code=True)`.
- timm: `model.safetensors` + timm's own `config.json` (architecture, model_args, label_names):
  `timm.create_model(arch, pretrained=True, num_classes=K, pretrained_cfg_overlay=dict(file=...))`,
  or `timm.create_model("local-dir:" + folder)`.
- torchvision and your own modules: `model.safetensors` + `config.json` + `loader.py`
  (torchvision: `loader.load()`; your module: `loader.load(module)`, built as when it was trained).
- format="onnx" adds `model.onnx` (inputs pixel_values or input_ids / attention_mask, output logits),
  checked against torch with onnxruntime when it is installed.

Every folder also holds `workbench.json` (classes, preprocessing, and every file it wrote with its
SHA-256) for `load_exported(folder)`, and a README.md saying how to load it. Each export is checked
before it is kept: the reloaded model must give the session model's logits, loaded both as the
library loads it and as load_exported does. Exporting into a folder again replaces only the files
workbench wrote there (workbench/owned.py); load_exported runs no code from a folder
(export_trust.py, export_load.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..owned import foreign, manifest, swap_in
from .export_trust import META, META_FORMAT
from .heads import Head

FORMATS = ("native", "onnx")
BATCH = 64
RTOL, ATOL = 1e-4, 1e-4  # reloaded logits against the session's (float32, same CPU ops)
ONNX_TOL = 1e-3


# ------------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Predicted:
    """Predictions for new items: `labels` (class names), `probabilities` (N, K), `logits`."""

    classes: list[str]
    logits: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        """Class index per item."""
        return self.logits.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.predicted]

    @property
    def probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each predicted label."""
        return self.probabilities.max(axis=1)

    def frame(self):
        """A DataFrame: label, probability, then one column of probabilities per class."""
        import pandas as pd

        table = pd.DataFrame(self.probabilities, columns=list(self.classes))
        table.insert(0, "probability", self.confidence)
        table.insert(0, "label", self.labels)
        return table

    def __len__(self) -> int:
        return len(self.logits)

    def __repr__(self) -> str:
        shown = ", ".join(f"{lab} ({p:.2f})" for lab, p in zip(self.labels[:5], self.confidence[:5]))
        return f"Predicted({len(self)} items: {shown}{', ...' if len(self) > 5 else ''})"


def as_list(items: Any, kind: str) -> list[Any]:
    """One item or a sequence of them, as a list (a string is one text or one image path)."""
    from PIL import Image

    if isinstance(items, (str, os.PathLike, Image.Image)) or (isinstance(items, np.ndarray) and kind == "image"
                                                              and items.ndim in (2, 3) and items.dtype == np.uint8):
        return [items]
    try:
        out = list(items)
    except TypeError:
        raise DataError(f"predict takes {'PIL images or image paths' if kind == 'image' else 'strings'} (one or a list); "
                        f"got {type(items).__name__}.") from None
    if not out:
        raise DataError("predict got no items; pass one or more.")
    return out


def image_pixels(items: Sequence[Any], size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size), as the valid split prepares images (data/transforms.py)."""
    from PIL import Image

    from ..data.checks import as_uint8_images, load_image_file, to_8bit
    from ..data.transforms import _to_chw3, resize_square

    out = []
    for n, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            item = load_image_file(Path(item))
        if isinstance(item, Image.Image):
            array = np.asarray(to_8bit(item))
        elif isinstance(item, np.ndarray):
            array = as_uint8_images(item[None], f"item {n}")[0]
        else:
            raise DataError(f"item {n} is a {type(item).__name__}; an image model takes PIL images, image paths or "
                            "uint8 arrays (H, W) / (H, W, 3).")
        out.append(resize_square(_to_chw3(array[None]), size))
    return torch.cat(out)


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The valid split's normalisation (ImageBatches.batch), the same float operations."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
    return (pixels.float() - m.to(pixels.device)) / s.to(pixels.device)


def check_texts(items: Sequence[Any]) -> list[str]:
    bad = [n for n, t in enumerate(items) if not isinstance(t, str)]
    if bad:
        raise DataError(f"items {bad[:5]} are not strings; a text model takes strings.")
    return list(items)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Evaluate with every submodule in eval mode, then give each its own mode back (a session's
    frozen BatchNorm layers stay in eval mode while the rest trains)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, training in modes:
            m.training = training


def predict(model, classes: Sequence[str], items: Any, device: torch.device | str | None = None) -> Predicted:
    """Labels and probabilities for `items` (PIL images, paths or uint8 arrays for an image model;
    strings for a text model), prepared as the valid split is."""
    items = as_list(items, model.kind)
    device = torch.device(device) if device is not None else next(model.module.parameters()).device
    logits = []
    with eval_mode(model.module):
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            if model.kind == "image":
                p = model.preprocess
                x = normalise(image_pixels(chunk, p.size).to(device), p.mean, p.std)
            else:
                encoded = model.preprocess(check_texts(chunk))
                x = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
            logits.append(model.logits(x).float().cpu())
    return Predicted(list(classes), torch.cat(logits).numpy())


# ------------------------------------------------------------------------------------ export
def native_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights with each workbench Head (Dropout, Linear) written as the library's
    classifier: `fc.1.weight` -> `fc.weight`, a 1x1-convolution classifier's weight reshaped back."""
    heads = {path: m for path, m in module.named_modules(remove_duplicate=False) if isinstance(m, Head)}
    out = {}
    for key, value in module.state_dict().items():
        path, _, leaf = key.rpartition(".")
        parent, _, index = path.rpartition(".")
        head = heads.get(parent) if index == "1" else None
        if head is not None:
            key = f"{parent}.{leaf}"
            if head.channels_first and leaf == "weight":
                value = value[:, :, None, None]
        out[key] = value.detach().to("cpu", copy=True).contiguous()
    return out


def same_logits(expected: torch.Tensor, got: torch.Tensor, what: str, rtol: float = RTOL, atol: float = ATOL) -> float:
    """The largest difference; ConfigError when the reloaded model does not compute the session's logits."""
    expected, got = expected.detach().float().cpu(), got.detach().float().cpu()
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=rtol, atol=atol):
        diff = (expected - got).abs().max().item() if expected.shape == got.shape else float("nan")
        raise ConfigError(f"The exported {what} does not reproduce the session's logits (largest difference {diff:.3g}), "
                          "so it was not written. Save the session instead (session.save(path)) and report this model.")
    return float((expected - got).abs().max())


def _dummy(model, n: int = 2) -> Any:
    """A small input batch for checks: random pixels, or two texts of different lengths (padding)."""
    if model.kind == "image":
        size = model.preprocess.size
        return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    encoded = model.preprocess(["a short text", "a longer text, so that the batch needs padding here"])
    return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}


def _reference(module: nn.Module, x: Any) -> torch.Tensor:
    """The session model's logits for `x` from its float32 CPU copy: every check compares CPU float32
    with CPU float32, whatever device (TF32, bf16 autocast) the session trains on."""
    return _forward(module, x)


def _forward(module: nn.Module, x: Any) -> torch.Tensor:
    with eval_mode(module):
        out = module(x) if isinstance(x, torch.Tensor) else module(**x)
    return (out if isinstance(out, torch.Tensor) else out.logits).float()


def check_classes(model, classes: Sequence[str]) -> list[str]:
    classes = [str(c) for c in classes]
    if len(classes) != model.num_classes:
        raise ConfigError(f"{len(classes)} class names for a model with {model.num_classes} outputs; pass one per output.")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"The class names {classes[:10]} repeat a name; give each class one name.")
    return classes


def export(model, classes: Sequence[str], folder, format: str = "native", *,
           extra: Callable[[Path, dict[str, Any]], str] | None = None) -> Path:
    """Write `model` (a workbench Model) with its class names into `folder` (see the module docstring).

    The folder must be new, empty, or an earlier export holding only the files workbench wrote
    (they are replaced; nothing else is ever deleted). Nothing is kept unless every check passed.
    `extra(folder, meta)` adds files and workbench.json fields to the export before its manifest is
    written (the int8 state of a compressed model) and returns text for its README.
    """
    from . import export_formats as formats
    from .export_load import load_model

    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is unknown: use 'native' or 'onnx' (native files plus model.onnx).")
    classes = check_classes(model, classes)
    target = Path(folder).expanduser()
    owned = replaceable(target)
    if format == "onnx":
        formats.require_onnx()
    writer = {"timm": formats.write_timm, "transformers": formats.write_transformers,
              "torchvision": formats.write_torchvision}.get(model.library, formats.write_module)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.export-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        x = _dummy(model)
        reference = cpu_copy(model.module)
        expected = _reference(reference, x)
        meta = writer(model, classes, tmp, x, expected)
        if format == "onnx":
            meta["onnx"] = formats.write_onnx(model, tmp, x, expected, reference)
        del reference
        meta.update(base_meta(model, classes))
        more = extra(tmp, meta) if extra is not None else ""
        (tmp / "README.md").write_text(formats.readme(meta) + more, encoding="utf-8")
        meta["files"] = manifest(tmp, leave_out=[META])
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if model.library != "module":  # loaded back the way wb.load_exported loads it
            cfg = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
            same_logits(expected, _forward(load_model(tmp, meta, cfg, None), x), f"{model.name} (as load_exported loads it)")
        swap_in(tmp, target, owned)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the temporary folder this call made (gone once swapped in)
    return target


def replaceable(target: Path) -> list[str]:
    """The files an export into `target` may replace: none for a new or empty folder, the files an
    earlier export listed when the folder holds only those, unchanged. ConfigError otherwise: an
    export never deletes a file workbench did not write."""
    if not target.exists():
        return []
    if not target.is_dir():
        raise ConfigError(f"{str(target)!r} exists and is a file; export into a new or empty folder.")
    if not any(target.iterdir()):
        return []
    fix = "Export into a new or empty folder, or move those files out first."
    if not (target / META).is_file():
        names = [p.name for p in sorted(target.iterdir())][:3]
        raise ConfigError(f"{str(target)!r} exists and is not an earlier export: it holds {', '.join(names)}, which "
                          f"workbench did not write and never deletes. {fix}")
    try:
        files = json.loads((target / META).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(h, str) for h in files.values()):
        raise ConfigError(f"{target / META} does not list the files workbench wrote (it is damaged, or from an older "
                          "workbench), so workbench cannot tell them from yours and deletes none. Export into a new "
                          "folder, or delete this one yourself.")
    bad = foreign(target, files, also=[META])
    if bad:
        raise ConfigError(f"{str(target)!r} holds {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}: an export replaces "
                          f"only the files workbench wrote, unchanged, and never deletes anything else. {fix}")
    return [*files, META]


def base_meta(model, classes: list[str]) -> dict[str, Any]:
    pre = model.preprocess
    if model.kind == "image":
        prep = {"size": pre.size, "mean": list(pre.mean), "std": list(pre.std),
                "recipe": "RGB (grey repeated); shorter side resized to size (bilinear, antialiased), centre crop; "
                          "uint8 rounded; (pixels - mean * 255) / (std * 255)"}
    else:
        prep = {"max_length": pre.max_length, "recipe": "tokenizer(texts, truncation=True, max_length=max_length)"}
    return {"format": META_FORMAT, "kind": model.kind, "library": model.library, "name": model.name,
            "classes": classes, "preprocess": prep, "pooling": model.pooling}


# ------------------------------------------------------------------------------- loading back
class Predictor:
    """An exported model loaded back: `predict(items)` prepares items as the valid split was."""

    def __init__(self, module: Any, meta: dict[str, Any], tokenizer: Any = None, onnx_session: Any = None) -> None:
        self.module, self.meta, self.tokenizer, self.onnx = module, meta, tokenizer, onnx_session
        self.classes: list[str] = list(meta["classes"])
        self.kind: str = meta["kind"]

    def inputs(self, items: Sequence[Any]) -> Any:
        p = self.meta["preprocess"]
        if self.kind == "image":
            return normalise(image_pixels(items, int(p["size"])), p["mean"], p["std"])
        encoded = self.tokenizer(check_texts(items), padding=True, truncation=True, max_length=int(p["max_length"]),
                                 return_tensors="pt")  # fmt: skip
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    def logits(self, items: Any) -> np.ndarray:
        items = as_list(items, self.kind)
        out = []
        for start in range(0, len(items), BATCH):
            x = self.inputs(items[start:start + BATCH])
            if self.onnx is not None:
                feeds = {"pixel_values": x.numpy()} if isinstance(x, torch.Tensor) else {k: v.numpy() for k, v in x.items()}
                out.append(self.onnx.run(["logits"], feeds)[0])
            else:
                out.append(_forward(self.module, x).numpy())
        return np.concatenate(out)

    def predict(self, items: Any) -> Predicted:
        """Labels and probabilities for PIL images, image paths or strings."""
        return Predicted(self.classes, self.logits(items))

    def __repr__(self) -> str:
        backend = "onnxruntime" if self.onnx is not None else self.meta["library"]
        return f"Predictor({self.meta['name']}, {len(self.classes)} classes, {backend})"


def load_exported(folder, module: nn.Module | None = None, backend: str = "torch") -> Predictor:
    """A predictor from a folder written by `session.export(folder)`. module: your own nn.Module,
    built as when it was trained, for a model made with wb.Model.from_module. backend="onnx" runs
    model.onnx with onnxruntime. It runs no code from the folder and loads only the files workbench
    wrote there, checked (export_trust.py); anything else is refused with a ConfigError."""
    from .export_load import load

    return load(folder, module, backend)


def cpu_copy(module: nn.Module) -> nn.Module:
    """A float32 CPU copy of a module (the session's stays where it is)."""
    return copy.deepcopy(module).to("cpu", torch.float32)
