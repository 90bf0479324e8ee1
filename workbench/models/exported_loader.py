"""Load this exported model without workbench: torch and safetensors (torchvision for its models).

Written by workbench's export into the folder as ``loader.py``. In that folder:

    import loader
    model = loader.load()                        # a torchvision model: built by name, weights loaded
    model = loader.load(MyNet())                 # your own module: build it as when it was trained
    labels, probabilities = loader.predict(model, ["cat.jpg", pil_image])     # or strings (texts)

The weights (model.safetensors) are the module's own state dict; config.json names the architecture,
the class names, the preprocessing, and any layer workbench put in place of the module's classifier
("replace": built here from plain torch layers before the weights are loaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def config(folder: str | Path = HERE) -> dict[str, Any]:
    return json.loads((Path(folder) / "config.json").read_text())


def build(spec: dict[str, Any]) -> nn.Module:
    """A plain torch layer (or a Sequential of them) from its description in config.json."""
    kind = spec["type"]
    if kind == "Sequential":
        return nn.Sequential(*[build(s) for s in spec["children"]])
    if kind == "Linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec["bias"])
    if kind == "Conv1x1":
        return nn.Conv2d(spec["in"], spec["out"], 1, bias=spec["bias"])
    if kind == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(spec["size"])
    if kind == "Flatten":
        return nn.Flatten(spec["start"])
    if kind == "Dropout":
        return nn.Dropout(spec["p"])
    if kind in ("ReLU", "Identity"):
        return getattr(nn, kind)()
    raise ValueError(f"unknown layer {kind!r} in config.json")


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def load(module: nn.Module | None = None, folder: str | Path = HERE, device: str = "cpu") -> nn.Module:
    """The fine-tuned model in eval mode. module: your own module (needed unless it is torchvision's)."""
    from safetensors.torch import load_file

    cfg = config(folder)
    if module is None:
        if cfg["library"] != "torchvision":
            raise ValueError("This export holds the weights of your own module: build it as when it was trained "
                             "and pass it, load(MyNet()).")
        import torchvision

        module = torchvision.models.get_model(cfg["architecture"], weights=None, num_classes=cfg["num_classes"],
                                              **cfg.get("model_args", {}))
    for r in cfg.get("replace", []):
        set_module(module, r["path"], build(r["spec"]))
    module.load_state_dict(load_file(str(Path(folder) / "model.safetensors")), strict=True)
    return module.to(device).eval()


def _rgb(item: Any):
    from PIL import Image

    if isinstance(item, (str, Path)):
        with Image.open(item) as im:
            item = im.copy()
    if item.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):  # scale wide grey ranges to 0..255
        import numpy as np

        a = np.asarray(item, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        if item.mode == "F" and 0 <= lo and hi <= 1:
            a = a * 255
        elif not (lo >= 0 and hi <= 255 and item.mode != "F"):
            a = a / 257 if lo >= 0 and hi <= 65535 and item.mode != "F" else (a - lo) / max(hi - lo, 1e-12) * 255
        item = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    return item.convert("RGB")


def preprocess(images: list[Any], folder: str | Path = HERE) -> torch.Tensor:
    """PIL images or paths -> the float batch the model takes (as workbench prepared its valid split:
    shorter side resized to `size`, centre crop, uint8, then normalised)."""
    import numpy as np
    import torch.nn.functional as F

    p = config(folder)["preprocess"]
    size = int(p["size"])
    out = []
    for item in images:
        pixels = torch.from_numpy(np.array(_rgb(item))).permute(2, 0, 1)[None]
        h, w = pixels.shape[-2:]
        if (h, w) != (size, size):
            scale = size / min(h, w)
            nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
            pixels = F.interpolate(pixels.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            top, left = (nh - size) // 2, (nw - size) // 2
            pixels = pixels[..., top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)
        out.append(pixels)
    mean = torch.tensor(p["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255
    std = torch.tensor(p["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255
    return (torch.cat(out).float() - mean) / std


def predict(model: nn.Module, items: list[Any], folder: str | Path = HERE) -> tuple[list[str], torch.Tensor]:
    """(labels, probabilities) for images (PIL or paths), or strings for a text model."""
    cfg = config(folder)
    with torch.no_grad():
        if cfg["kind"] == "text":
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            x = tokenizer(list(items), padding=True, truncation=True, max_length=cfg["preprocess"]["max_length"],
                          return_tensors="pt")
            out = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"])
        else:
            out = model(preprocess(list(items), folder))
    logits = out if isinstance(out, torch.Tensor) else out.logits
    probabilities = logits.softmax(-1)
    return [cfg["classes"][i] for i in probabilities.argmax(-1).tolist()], probabilities
