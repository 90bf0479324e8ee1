"""A shallower copy of a backbone: its first `depth` stages or layers, weights and all, and a new head.

`wb.load_backbone(name, num_classes, depth=k)` builds the backbone (pretrained or not), keeps the
stem and its first k stages (CNNs) or transformer layers, drops the rest and puts a new head on the
last kept stage's pooled features. It is how DistilBERT was initialised (a BERT whose layers are
copied from the teacher's) and the usual small student for distillation, and a cheap, smaller model
in its own right: the early stages of a pretrained network keep their general features.

What a stage is comes from the libraries, never from a table (docs/ARCHITECTURE.md, rule 4):

- timm: the intermediate layers its `forward_intermediates` returns (`feature_info`), cut with its
  own `prune_intermediate_layers` (ResNet: the stem and layer1-4; EfficientNet: its five feature
  stages, e.g. blocks.0, 1, 2, 4, 6; ViT: each block);
- transformers: the encoder's repeated layer list (the one block discovery reads), sliced, with the
  config's `num_hidden_layers` (and per-layer settings) cut to match.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ConfigError


def check_depth(depth: Any) -> None:
    """depth is None (the whole backbone) or an int >= 1."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ConfigError(f"depth must be an int >= 1 (the number of stages or layers to keep, e.g. depth=3), "
                          f"or None for the whole backbone; got {depth!r}.")


def _out_of_range(name: str, depth: int, total: int, what: str, names: list[str]) -> ConfigError:
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return ConfigError(f"depth={depth} is not a truncation of {name!r}: it has {total} {what} ({shown}); "
                       f"use depth=1..{total - 1} to keep the first ones, or leave depth out for all {total}.")


def stage_count(module: nn.Module, name: str) -> tuple[int, list[str]]:
    """(number of stages `depth` counts, their module names) of a timm model."""
    info = getattr(module, "feature_info", None)
    if not hasattr(module, "prune_intermediate_layers") or not info:
        raise ConfigError(f"timm model {name!r} cannot be truncated: timm gives it no intermediate layers to cut at "
                          "(prune_intermediate_layers). Leave depth out, or choose a model of another family.")
    names = [str(f.get("module", i)) if isinstance(f, dict) else str(i) for i, f in enumerate(info)]
    return len(names), names


def truncate_timm(module: nn.Module, depth: int, num_classes: int, name: str) -> str:
    """Keep the first `depth` of a timm model's stages (timm's own pruning), with a new classifier for
    `num_classes` on the last kept stage's pooled features. Returns a phrase for `Model.weights`."""
    total, names = stage_count(module, name)
    if depth >= total:
        raise _out_of_range(name, depth, total, "stages", names)
    pool = _pool_type(module)  # timm's pruning removes the pooling with the head: put the same back
    module.prune_intermediate_layers(indices=[depth - 1], prune_norm=False, prune_head=True)
    module.reset_classifier(num_classes, pool) if pool is not None else module.reset_classifier(num_classes)
    width = getattr(module, "num_features", None)
    return (f"truncated to its first {depth} of {total} stages (up to {names[depth - 1]}"
            f"{f', {width} features' if width else ''}), the rest dropped")


def _pool_type(module: nn.Module) -> str | None:
    """The model's global pooling as reset_classifier takes it ('avg', 'token', ...), or None."""
    for holder in (module, getattr(module, "head", None)):
        pool = getattr(holder, "global_pool", None)
        pool = getattr(pool, "pool_type", pool)
        if isinstance(pool, str) and pool:
            return pool
    return None


def truncate_transformer(module: nn.Module, depth: int, name: str) -> str:
    """Keep the first `depth` layers of a transformer's encoder (their weights as loaded), cutting
    the config to match. Returns a phrase for `Model.weights`."""
    from .blocks import layer_lists

    paths = layer_lists(module)
    if len(paths) != 1:
        raise ConfigError(f"{name!r} has {len(paths)} stacks of layers ({', '.join(paths)}): depth truncates models "
                          "with one stack (encoders such as BERT, MiniLM, DistilBERT). Leave depth out.")
    path = paths[0]
    layers = module.get_submodule(path)
    total = len(layers)
    if depth >= total:
        raise _out_of_range(name, depth, total, "layers", [f"{path}.{i}" for i in range(total)])
    parent, _, attr = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, attr, nn.ModuleList(list(layers)[:depth]))
    config = module.config
    for key in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
        if isinstance(getattr(config, key, None), int) and getattr(config, key) == total:
            setattr(config, key, depth)
    for key in ("layer_types",):  # per-layer settings (ModernBERT-style configs)
        value = getattr(config, key, None)
        if isinstance(value, (list, tuple)) and len(value) == total:
            setattr(config, key, list(value)[:depth])
    return f"truncated to its first {depth} of {total} layers ({path}.0-{depth - 1}), the rest dropped"
