"""A text classifier that pools the encoder's token vectors its own way, for transformers' Auto classes.

Written by workbench's export into an exported folder as ``modeling_workbench.py`` and named in its
``config.json`` (``auto_map``), so that, without workbench,

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

rebuilds the fine-tuned model. It is used for models no class of transformers computes:
sentence-transformers checkpoints (all-MiniLM-L6-v2 classifies from the MEAN of its token
vectors, BERT's own classifier from the first token through its pooler) and new heads a library
class cannot hold. This file imports only torch and transformers, never workbench.

config keys it reads: ``workbench_pooling`` (a list of "mean", "cls", "max", "mean-sqrt-len",
"weighted-mean", "last-token", "last-non-padding", "pooler", concatenated in that order) and
``workbench_encoder_kwargs`` (``add_pooling_layer`` for ``AutoModel.from_config``; any other key is
ignored, and the encoder never comes from remote code).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor | None, mode: str,
         pad_token_id: int | None, pooler_output: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """(B, L, D) token vectors -> (B, D), padding masked as sentence-transformers does."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
    if mode in ("mean", "mean-sqrt-len"):
        total, count = (hidden * mask).sum(1), mask.sum(1).clamp(min=1e-9)
        return total / count if mode == "mean" else total / count.sqrt()
    if mode == "weighted-mean":
        weights = mask * torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)[:, None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode == "last-token":  # the last position whose mask is 1 (left or right padding alike)
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).to(torch.int32).argmax(1)
        return hidden[rows, last]
    if mode == "last-non-padding":  # transformers' decoder *ForSequenceClassification rule
        if pad_token_id is None or input_ids is None:
            return hidden[:, -1]
        non_pad = (input_ids != pad_token_id).to(hidden.device, torch.int32)
        index = (torch.arange(input_ids.shape[-1], device=hidden.device, dtype=torch.int32) * non_pad).argmax(-1)
        return hidden[rows, index]
    if mode == "pooler":
        if pooler_output is None:
            raise ValueError("pooling 'pooler' needs an encoder with a pooler layer")
        return pooler_output
    raise ValueError(f"unknown pooling {mode!r}")


class WorkbenchForSequenceClassification(PreTrainedModel):
    """encoder (AutoModel of the config) -> pooling (config.workbench_pooling) -> Linear classifier."""

    config_class = PretrainedConfig
    base_model_prefix = "encoder"
    # attention runs inside the encoder, which says what it supports
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.modes = list(getattr(config, "workbench_pooling", None) or ["cls"])
        # the one encoder argument workbench writes; the encoder is always transformers' own class
        kwargs = {k: v for k, v in dict(getattr(config, "workbench_encoder_kwargs", None) or {}).items()
                  if k == "add_pooling_layer" and isinstance(v, bool)}
        self.encoder = AutoModel.from_config(config, trust_remote_code=False, **kwargs)
        width = getattr(config, "workbench_feature_size", None) or config.hidden_size * len(self.modes)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:  # weights come from the checkpoint
        pass

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> SequenceClassifierOutput:  # fmt: skip
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = out.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        pooler = getattr(out, "pooler_output", None)
        pad = getattr(self.config, "pad_token_id", None)
        parts = [pool(hidden, attention_mask, input_ids, m, pad, pooler) for m in self.modes]
        logits = self.classifier(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
