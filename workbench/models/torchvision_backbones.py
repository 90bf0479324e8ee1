"""torchvision backbones: every classification model (`torchvision:<name>`, `tvm.list_models`).

torchvision models describe nothing about their structure, so they go through the generic path
that any nn.Module takes (models/blocks.py `generic_units`): the classifier is the layer that
runs last, the trunk is found by walking down the module tree.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, suggest
from . import pretrained as pt
from .blocks import generic_units
from .common import BackboneInfo, check_image_size, image_model, trace_image
from .discovery import Trace, arrange, owners
from .heads import is_pointwise_conv, replace_classifier, set_module
from .model import ImagePreprocess, Model


def torchvision_names() -> list[str]:
    """Every torchvision image classifier (detection, segmentation, video models are not)."""
    import torchvision
    import torchvision.models as tvm

    return tvm.list_models(module=torchvision.models)


def build_torchvision(info: BackboneInfo, num_classes: int, pretrained: bool, *, image_size: int | None,
                      granularity: str, head_dropout: float) -> Model:  # fmt: skip
    import torchvision.models as tvm

    names = torchvision_names()
    if info.source not in names:
        raise ConfigError(
            f"torchvision has no classification model {info.source!r}.{suggest(info.source, names)} "
            "List them with wb.list_backbones(library='torchvision')."
        )
    enum = tvm.get_model_weights(info.source).DEFAULT
    tf = enum.transforms()
    default = int(tf.crop_size[0])
    size = image_size or default
    try:
        with torch.device("meta"), warnings.catch_warnings():  # the structure, for free: patch size, options
            warnings.simplefilter("ignore", FutureWarning)  # googlenet's "init_weights will change"
            probe = tvm.get_model(info.source, weights=None)
    except Exception:  # noqa: BLE001 - regnet computes its widths with tensor ops: no meta build
        probe = None
    kwargs: dict[str, Any] = {}
    accepted = inspect.signature(type(probe).__init__).parameters if probe is not None else {}
    if "aux_logits" in accepted:
        kwargs["aux_logits"] = False  # GoogLeNet / Inception: auxiliary heads only in training, as tuples
    if "transform_input" in accepted:
        kwargs["transform_input"] = pretrained  # what torchvision's builder sets for its ImageNet weights
    if "init_weights" in accepted:
        kwargs["init_weights"] = not pretrained  # its random init (said explicitly: no FutureWarning)
    patch = getattr(probe, "patch_size", None)
    if patch and "image_size" in accepted:
        if size % patch:
            raise ConfigError(
                f"image_size={size} is not valid for {info.name!r}: it must be a multiple of the patch size "
                f"{patch} (e.g. {max(patch, size // patch * patch)})."
            )
        kwargs["image_size"] = size  # a ViT's position embeddings are sized at construction
    if image_size is not None and image_size != default:
        check_image_size(info.name, lambda: tvm.get_model(info.source, weights=None, **kwargs), size, default)
    state = pt.torchvision_state_dict(info.name, enum) if pretrained else None  # fail before building
    module = tvm.get_model(info.source, weights=None, **kwargs)
    if state is not None:
        source = f"ImageNet-1k (torchvision {enum.name})"
        if kwargs.get("image_size", default) != default:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(size, patch, state)
            source += f", position embeddings interpolated from {default} to {size} px"
        own = module.state_dict()
        module.load_state_dict({k: v for k, v in state.items() if k in own or not k.startswith("aux")})
    else:
        source = f"random init (torchvision {info.source} architecture)"
    traced = trace_image(module, size, info.name)
    head_path, rewritten = find_classifier(module, traced, info.name)
    head_note = replace_classifier(module, head_path, num_classes, head_dropout, keep=pretrained and not rewritten)
    head_note += rewritten
    pre = ImagePreprocess(
        size=size, mean=tuple(tf.mean), std=tuple(tf.std), interpolation=tf.interpolation.value,
        crop_pct=round(tf.crop_size[0] / tf.resize_size[0], 4),
    )  # fmt: skip
    blocks = generic_blocks(module, head_path, granularity, traced)
    return image_model(info, module, head_path, blocks, pre, f"{source}; {head_note}", num_classes, granularity)


def find_classifier(module: nn.Module, traced: Trace, name: str, hint: str = "") -> tuple[str, str]:
    """Path of the classifier: the layer whose parameters the forward uses last, when it is a Linear
    on one vector per example (or a 1x1 convolution on a pooled map). A 1x1-convolution classifier
    over a whole feature map followed by parameter-free layers (SqueezeNet: conv, ReLU, average
    pool) becomes global average pooling + Linear. Returns (path, a note for `weights` or "")."""
    owner = owners(module)
    used = sorted(traced.first_use.items(), key=lambda kv: kv[1])
    if not used:
        raise ConfigError(f"{name}: the forward uses no parameters, so there is no classifier to replace.{hint}")
    paths = {id(m): p for p, m in module.named_modules()}
    path = paths[id(owner[used[-1][0]])]
    shape = traced.input_shapes.get(path)
    parent_path, _, index = path.rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else None
    if is_pointwise_conv(module.get_submodule(path)) and shape and len(shape) == 4 and shape[2:] != (1, 1) \
            and isinstance(parent, nn.Sequential) and index.isdigit() \
            and not any(True for m in list(parent)[int(index) + 1 :] for _ in m.parameters()):  # fmt: skip
        conv = module.get_submodule(path)
        pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(conv.in_channels, conv.out_channels))
        set_module(module, parent_path, pooled)
        return f"{parent_path}.2", "; its 1x1-convolution classifier over the feature map replaced by average pooling + this head"
    return check_classifier(module, path, traced, name, hint), ""


def check_classifier(module: nn.Module, path: str, traced: Trace, name: str, hint: str = "") -> str:
    """`path` when the layer there can be the classifier; else a ConfigError saying why."""
    layer = module.get_submodule(path)
    shape = traced.input_shapes.get(path)
    linears = [p for p, m in module.named_modules() if isinstance(m, nn.Linear)]
    fix = hint or (f" Linear layers in it: {', '.join(linears[-4:])}." if linears else "")
    if isinstance(layer, nn.Linear) and shape is not None and len(shape) == 2:
        return path
    if is_pointwise_conv(layer) and shape is not None and len(shape) == 4 and shape[2:] == (1, 1):
        return path
    what = type(layer).__name__ + (f" on inputs of shape {shape}" if shape else " that the forward never calls")
    raise ConfigError(
        f"{name}: the layer {path or '(root)'!r} that maps to the classes is a {what}, not a Linear on one "
        f"pooled vector per example, so workbench cannot give it a new head.{fix}"
    )


def generic_blocks(module: nn.Module, head_path: str, granularity: str, traced: Trace) -> dict[str, tuple[str, ...]]:
    """Blocks of any module from its tree and the forward order (models/blocks.py)."""
    head = list(module.get_submodule(head_path).parameters())
    units = generic_units(module, {id(p) for p in head}, traced, granularity)
    return arrange(module, units, head, traced)
