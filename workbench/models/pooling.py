"""Pooling: how one vector per text is made from the token vectors, as the checkpoint was trained.

- Sentence-transformers checkpoints (``modules.json`` naming a ``Pooling`` module, whose
  ``config.json`` switches modes on) were trained for that pooling, usually the mean; their
  BERT pooler was never tuned (all-MiniLM-L6-v2: head-only accuracy 0.27 with it, 0.76 with the
  mean). They are built as `SentenceClassifier`: the encoder, that pooling, a new head.
- Decoder models (gpt2, llama, ...) classify from the last non-padding token; their own
  ``*ForSequenceClassification`` scores every token and picks that one, and `last_non_padding`
  repeats its rule for the cached-feature path.

Pooling names (`Model.pooling`): "mean", "cls", "max", "mean-sqrt-len", "weighted-mean",
"last-token" (several joined by "+", concatenated in sentence-transformers' order), and for the
architectures' own classifiers also "pooler" (first token through the checkpoint's pooler layer)
and "eos" (the decoder's last end-of-sequence token, BART / T5).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import ConfigError

# sentence-transformers Pooling config key -> our name, in the order it concatenates them
ST_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean-sqrt-len",
    "pooling_mode_weightedmean_tokens": "weighted-mean",
    "pooling_mode_lasttoken": "last-token",
}
_ST_STRING = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean-sqrt-len",
              "weightedmean": "weighted-mean", "lasttoken": "last-token"}  # fmt: skip

DESCRIBE = {
    "mean": "mean of the token vectors, padding left out",
    "cls": "the first token's vector",
    "max": "per-dimension max over the tokens, padding left out",
    "mean-sqrt-len": "sum of the token vectors / sqrt(number of tokens)",
    "weighted-mean": "position-weighted mean of the token vectors",
    "last-token": "the last non-padding token's vector",
    "pooler": "the first token through the checkpoint's pooler layer",
    "eos": "the decoder's vector at the last end-of-sequence token",
}


def sentence_transformers_pooling(read: Callable[[str], Path | None]) -> tuple[str, ...] | None:
    """The pooling modes a sentence-transformers checkpoint names, or None when it is not one.

    read(relative path) -> a local copy of that file of the checkpoint, or None when absent.
    """
    modules_file = read("modules.json")
    if modules_file is None:
        return None
    try:
        entries = json.loads(modules_file.read_text())
        entry = next((e for e in entries if str(e.get("type", "")).endswith("Pooling")), None)
    except (ValueError, AttributeError, TypeError) as err:
        raise ConfigError(f"The checkpoint's modules.json cannot be read ({err}); fix or remove the file.") from err
    if entry is None:
        return None
    config_file = read(f"{entry.get('path') or ''}/config.json".lstrip("/"))
    if config_file is None:
        return None
    config = json.loads(config_file.read_text())
    if isinstance(config.get("pooling_mode"), str):
        modes = [_ST_STRING.get(m.strip()) for m in config["pooling_mode"].split(",")]
    else:
        modes = [name for key, name in ST_MODES.items() if config.get(key)]
    if not modes or None in modes:
        raise ConfigError(
            f"The checkpoint's pooling config {config} names no pooling this package knows "
            f"({', '.join(ST_MODES)}); fix the config or load the model without it."
        )
    return tuple(modes)  # type: ignore[arg-type]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """(B, L, D) token vectors -> (B, D * len(modes)), padding masked as sentence-transformers does."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1))
        elif mode in ("mean", "mean-sqrt-len"):
            total, count = (hidden * mask).sum(1), mask.sum(1).clamp(min=1e-9)
            out.append(total / count if mode == "mean" else total / count.sqrt())
        elif mode == "weighted-mean":
            weights = mask * torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)[:, None]
            out.append((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9))
        elif mode == "last-token":
            # the last position whose mask is 1 (left or right padding alike)
            length = attention_mask.shape[1]
            last = length - 1 - attention_mask.flip(1).to(torch.int32).argmax(1)
            out.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        else:
            raise ConfigError(f"Unknown pooling {mode!r}: use one of {', '.join(DESCRIBE)}.")
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def last_non_padding(hidden: torch.Tensor, input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """(B, L, D) -> (B, D) at the rightmost token that is not padding: the rule of transformers'
    decoder *ForSequenceClassification (the last position when there is no pad token)."""
    if pad_token_id is None:
        index = torch.full((hidden.shape[0],), hidden.shape[1] - 1, device=hidden.device)
    else:
        non_pad = (input_ids != pad_token_id).to(hidden.device, torch.int32)
        index = (torch.arange(input_ids.shape[-1], device=hidden.device, dtype=torch.int32) * non_pad).argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class SentenceClassifier(nn.Module):
    """A sentence-transformers checkpoint as a classifier: encoder -> pooling -> head.

    A standard nn.Module: ``forward(**tokenized)`` returns an object with ``.logits``. The encoder
    sits under its own ``base_model_prefix`` ("bert"), so its parameter names are those of the
    library's sequence classifier (``bert.encoder.layer.0...``).
    """

    def __init__(self, encoder: nn.Module, modes: tuple[str, ...], head: nn.Module) -> None:
        super().__init__()
        self.prefix = getattr(encoder, "base_model_prefix", None) or "model"
        self.add_module(self.prefix, encoder)
        self.classifier = head
        self.modes = tuple(modes)

    @property
    def base_model(self) -> nn.Module:
        return self.get_submodule(self.prefix)

    @property
    def config(self) -> Any:
        return self.base_model.config

    @property
    def _no_split_modules(self) -> Any:
        return getattr(self.base_model, "_no_split_modules", None)

    def get_input_embeddings(self) -> nn.Module:
        """The encoder's word embeddings (as transformers' models expose them: token attributions use it)."""
        return self.base_model.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> SequenceClassifierOutput:  # fmt: skip
        out = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = out.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return SequenceClassifierOutput(logits=self.classifier(pool(hidden, attention_mask, self.modes)))


def accepted_inputs(module: nn.Module) -> set[str]:
    """The tokenizer outputs the module's forward takes (a SentenceClassifier: its encoder's)."""
    import inspect

    target = module.base_model if isinstance(module, SentenceClassifier) else module
    return set(inspect.signature(target.forward).parameters)


def input_ids_of(inputs: Mapping[str, Any]) -> torch.Tensor:
    ids = inputs.get("input_ids")
    if ids is None:
        raise ConfigError("This model pools the last non-padding token, which needs input_ids in the inputs.")
    return ids
