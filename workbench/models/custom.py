"""Model.from_module: a user's own nn.Module, discovered the same way as library backbones.

A timm model goes through timm's description, a transformers model through the transformers one,
anything else (torchvision models included) through the generic one: the classifier is the layer
the forward uses last, the trunk is found in the module tree. The classifier is replaced by a
new one when its outputs differ from `num_classes`, and kept otherwise (your trained head).
Such a Model cannot be rebuilt by name (`rebuildable` is False): checkpoints need the module.

Your module is copied first and never changed: calling from_module twice on it gives two equal
Models (so `wb.Session.load(path, model=wb.Model.from_module(net, ...))` works in the kernel that
trained it), and a module that already carries a workbench head is recognised as such.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, suggest
from .common import IMAGENET_MEAN, IMAGENET_STD, trace_image
from .discovery import trace
from .heads import head_dropout as dropout_of
from .heads import Head, replace_classifier
from .model import ImagePreprocess, Model, TextPreprocess
from .registry import KINDS, check_common, seeded

SIZES = (224, 32, 28, 64, 96, 128, 256, 299, 384, 16)  # tried in this order when no size is given


def from_module(module: nn.Module, num_classes: int, *, kind: str = "image", preprocess: Any = None,
                head: str | None = None, tokenizer: Any = None, name: str | None = None,
                granularity: str = "stages", head_dropout: float = 0.0, seed: int | None = 0) -> Model:  # fmt: skip
    """See Model.from_module. Every argument is checked before the module is touched."""
    if not isinstance(module, nn.Module):
        raise ConfigError(f"from_module takes a torch.nn.Module; got {type(module).__name__}.")
    if kind not in KINDS:
        raise ConfigError(f"Unknown kind {kind!r}: use 'image' or 'text'.{suggest(str(kind), KINDS)}")
    check_common(num_classes, granularity, head_dropout, seed)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"name must be a non-empty string (it labels the model in summaries); got {name!r}.")
    name = name or f"module:{type(module).__name__}"
    if head is not None:
        _check_head_path(module, head)
    if not any(True for _ in module.parameters()):
        raise ConfigError(f"{name} has no parameters: there is nothing to fine-tune.")
    module = _own_copy(module, name)  # every argument checked: from here on only the copy changes
    if kind == "image":
        if tokenizer is not None:
            raise ConfigError("tokenizer applies to kind='text'; an image module takes preprocess=ImagePreprocess(...).")
        if preprocess is not None and not isinstance(preprocess, ImagePreprocess):
            raise ConfigError(
                f"preprocess for kind='image' must be an ImagePreprocess(size, mean, std); got {type(preprocess).__name__}."
            )
        build = lambda: _image(module, num_classes, preprocess, head, name, granularity, float(head_dropout))
    else:
        if preprocess is not None and not isinstance(preprocess, TextPreprocess):
            raise ConfigError(
                f"preprocess for kind='text' must be a TextPreprocess(tokenizer, max_length); got {type(preprocess).__name__}."
            )
        tokenizer = preprocess.tokenizer if preprocess is not None else tokenizer
        if tokenizer is None or not callable(tokenizer):
            raise ConfigError("A text module needs its tokenizer: from_module(..., kind='text', tokenizer=AutoTokenizer.from_pretrained(...)).")
        max_length = preprocess.max_length if preprocess is not None else None
        build = lambda: _text(module, tokenizer, num_classes, max_length, head, name, granularity, float(head_dropout))
    return seeded(seed, build)


def _own_copy(module: nn.Module, name: str) -> nn.Module:
    """A deep copy of the caller's module (shared and tied parameters stay shared within it): the new
    head, a rewritten classifier and training change the copy, never the module the caller holds."""
    try:
        return copy.deepcopy(module)
    except Exception as exc:  # noqa: BLE001 - any failure to copy: say which and what to do
        raise ConfigError(
            f"{name} cannot be copied ({type(exc).__name__}: {exc}); from_module works on a copy so that your "
            "module stays as it was. Keep what cannot be copied (open files, locks, generators) outside the "
            "module, or pass a module built for workbench."
        ) from exc


def _outer_head(module: nn.Module, path: str) -> str:
    """The path of the workbench Head around the classifier at `path`, if it sits in one (a module that
    went through from_module or load_backbone before): that Head is the classifier, not nested again."""
    parent, _, _ = path.rpartition(".")
    return parent if parent and isinstance(module.get_submodule(parent), Head) else path


def _check_head_path(module: nn.Module, head: Any) -> None:
    paths = [p for p, _ in module.named_modules() if p]
    if not isinstance(head, str) or head not in paths:
        linears = [p for p, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        raise ConfigError(
            f"head={head!r} names no submodule of {type(module).__name__}.{suggest(str(head), paths)} "
            f"Name the final classifier layer, e.g. head={linears[-1]!r}." if linears else "Name the final Linear layer."
        )


def _image(module: nn.Module, num_classes: int, pre: ImagePreprocess | None, head: str | None, name: str,
           granularity: str, dropout: float) -> Model:  # fmt: skip
    from .timm_backbones import is_timm_model, timm_blocks, timm_groups, timm_head
    from .torchvision_backbones import check_classifier, find_classifier, generic_blocks

    assumed = ""
    if pre is None and is_timm_model(module) and getattr(module, "pretrained_cfg", None):
        from timm.data import resolve_data_config

        data = resolve_data_config({}, model=module)
        pre = ImagePreprocess(size=int(data["input_size"][-1]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                              interpolation=data.get("interpolation", "bicubic"), crop_pct=float(data.get("crop_pct", 0.875)))  # fmt: skip
        assumed = f"; preprocessing from its timm data config ({pre.size} px)"
    if pre is None:
        size, traced = _find_size(module, name)
        pre = ImagePreprocess(size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        assumed = f"; preprocessing assumed: ImageNet mean/std, {size} px (the first size it ran on)"
    else:
        traced = trace_image(module, pre.size, name)
    pooled = None
    if is_timm_model(module) and head is None:
        groups = timm_groups(module, granularity)
        head_path, note, pooled = timm_head(module, name, num_classes, dropout, True, pre.size)
        head_path, blocks = timm_blocks(module, head_path, granularity, pre.size, groups)
    else:
        linears = [p for p, m in module.named_modules() if isinstance(m, nn.Linear)]
        if head:
            hint = " Name an nn.Linear (or a 1x1 Conv2d on a pooled map) as head=." + (
                f" Linear layers in it: {', '.join(linears[-4:])}." if linears else "")
        else:
            hint = f" Pass head='<path of the final Linear>' to from_module, e.g. head={(linears or ['fc'])[-1]!r}."
        rewritten = ""
        if head:
            head_path = check_classifier(module, head, traced, name, hint)
        else:
            head_path, rewritten = find_classifier(module, traced, name, hint)
        head_path = _outer_head(module, head_path)
        note = replace_classifier(module, head_path, num_classes, dropout, keep=not rewritten) + rewritten
        blocks = generic_blocks(module, head_path, granularity, traced)
    note = note.replace("pretrained", "your", 1)
    model = Model(
        name=name, kind="image", num_classes=num_classes, module=module, head_path=head_path, block_params=blocks,
        preprocess=pre, weights=f"your module ({type(module).__name__}, its weights as given); {note}{assumed}",
        granularity=granularity, library="module", pooled=pooled,
        options={"image_size": pre.size, "granularity": granularity, "head_dropout": dropout_of(module.get_submodule(head_path))},
    )  # fmt: skip
    x = torch.randn(2, 3, pre.size, pre.size, generator=torch.Generator().manual_seed(0))
    _check_cached_path(model, x)
    return model


def _find_size(module: nn.Module, name: str) -> tuple[int, Any]:
    """The first of SIZES the module runs on (shape-only passes), its timm input size first."""
    cfg = getattr(module, "pretrained_cfg", None) or {}
    sizes = ([int(cfg["input_size"][-1])] if cfg.get("input_size") else []) + list(SIZES)
    for size in dict.fromkeys(sizes):
        try:
            return size, trace(module, (torch.zeros(1, 3, size, size),))
        except Exception:  # noqa: BLE001, S112 - any failure: try the next size
            continue
    raise ConfigError(
        f"{name} runs on none of the RGB image sizes {', '.join(map(str, SIZES))}. Pass the size and "
        "normalisation it expects: preprocess=ImagePreprocess(size=..., mean=(...), std=(...))."
    )


def _text(module: nn.Module, tokenizer: Any, num_classes: int, max_length: int | None, head: str | None,
          name: str, granularity: str, dropout: float) -> Model:  # fmt: skip
    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(module, transformers.PreTrainedModel):
        raise ConfigError(
            f"{name}: text modules must be Hugging Face transformers sequence classifiers (a PreTrainedModel "
            "whose forward(**tokenized) returns .logits), e.g. AutoModelForSequenceClassification.from_config(...)."
        )
    from .hf_backbones import assemble

    model = assemble(module, tokenizer, name=name, num_classes=num_classes, max_length=max_length,
                     granularity=granularity, dropout=dropout, keep=True, library="module", head=head,
                     notes=[f"your module ({type(module).__name__}, its weights as given)"])  # fmt: skip
    model.weights = model.weights.replace("pretrained", "your", 1)  # "your 3-class head kept"
    _check_cached_path(model, model.preprocess(["a", "a longer text, so that the batch is padded"]))
    return model


def _check_cached_path(model: Model, x: Any) -> None:
    """The cached-feature path must give the module's own logits: head(features(x)) == logits(x)."""
    module = model.module
    device = next(module.parameters()).device
    if device.type == "meta":
        return
    was = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            x = x.to(device) if isinstance(x, torch.Tensor) else {k: v.to(device) for k, v in x.items()}
            logits = model.logits(x)
            again = model.head(model.features(x))
    finally:
        for m, training in was:
            m.training = training
    if logits.shape[-1] != model.num_classes or not torch.allclose(again, logits, rtol=1e-4, atol=1e-5):
        raise ConfigError(
            f"{model.name}: its output is not the classifier {model.head_path!r} applied to one pooled vector "
            "per example (something runs after it, or it outputs more than the classes), so the "
            "frozen-feature path would train something else. Pass head='<path of the last Linear>'."
        )
