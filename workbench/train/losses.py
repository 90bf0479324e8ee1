"""Losses for classification, per sample: cross-entropy, label smoothing, focal loss, class weights.

Every criterion returns one loss per sample (reduction "none"): the training loss is their mean,
and the same numbers become `Predictions.losses` for the error explorer's top losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, suggest

LOSSES = ("cross_entropy", "focal")


def class_weights_from_counts(counts: Sequence[int]) -> torch.Tensor:
    """sklearn's "balanced" weights: n_samples / (n_classes * count_k). Rare classes weigh more."""
    counts_arr = np.asarray(counts, dtype=np.float64)
    if (counts_arr <= 0).any():
        missing = [i for i, c in enumerate(counts_arr) if c <= 0]
        raise ConfigError(
            f"Class weights need at least one training sample per class; classes {missing} have none. "
            "Use class_weights=None, or give the weights yourself as a list."
        )
    return torch.tensor(counts_arr.sum() / (len(counts_arr) * counts_arr), dtype=torch.float32)


class Criterion:
    """A per-sample classification loss. Build it with `make_criterion`."""

    def __init__(
        self,
        kind: str = "cross_entropy",
        *,
        label_smoothing: float = 0.0,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
    ) -> None:
        self.kind = kind
        self.label_smoothing = label_smoothing
        self.gamma = gamma
        self.weight = weight

    def to(self, device: torch.device) -> Criterion:
        if self.weight is not None:
            self.weight = self.weight.to(device)
        return self

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # losses in float32 even under autocast
        if self.kind == "focal":
            return focal_loss(logits, labels, gamma=self.gamma, alpha=self.weight)
        return F.cross_entropy(
            logits, labels, weight=self.weight, label_smoothing=self.label_smoothing, reduction="none"
        )

    def __repr__(self) -> str:
        extra = f", gamma={self.gamma}" if self.kind == "focal" else f", label_smoothing={self.label_smoothing}"
        weighted = ", class-weighted" if self.weight is not None else ""
        return f"Criterion({self.kind}{extra}{weighted})"


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), per sample: -alpha_t * (1 - p_t)**gamma * log(p_t).

    Down-weights easy examples so the rare, hard ones drive the gradient; gamma=0 and no alpha is
    exactly cross-entropy.
    """
    log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    p = log_p.exp()
    loss = -((1.0 - p) ** gamma) * log_p
    if alpha is not None:
        loss = alpha[labels] * loss
    return loss


def make_criterion(
    loss: str,
    *,
    label_smoothing: float,
    focal_gamma: float,
    class_weights: str | Sequence[float] | None,
    train_counts: Sequence[int],
) -> Criterion:
    """Validate the loss settings and build the criterion (raises ConfigError before anything runs)."""
    if loss not in LOSSES:
        raise ConfigError(f"Unknown loss {loss!r}.{suggest(loss, LOSSES)} Choose one of: {', '.join(LOSSES)}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}. Typical: 0.1.")
    if focal_gamma < 0:
        raise ConfigError(f"focal_gamma must be >= 0, got {focal_gamma}. gamma=0 is plain cross-entropy; 2 is usual.")
    if loss == "focal" and label_smoothing:
        raise ConfigError("label_smoothing applies to loss='cross_entropy'; set it to 0 for the focal loss.")
    weight: torch.Tensor | None
    if class_weights is None:
        weight = None
    elif isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ConfigError(
                f"class_weights={class_weights!r} is not understood. Use None, 'balanced', or one weight per class."
            )
        weight = class_weights_from_counts(train_counts)
    else:
        weight = torch.tensor([float(w) for w in class_weights], dtype=torch.float32)
        if len(weight) != len(train_counts):
            raise ConfigError(
                f"class_weights has {len(weight)} values but the data has {len(train_counts)} classes; "
                "give one weight per class, or 'balanced'."
            )
        if (weight < 0).any() or not torch.isfinite(weight).all():
            raise ConfigError("class_weights must be finite and >= 0.")
    return Criterion(loss, label_smoothing=label_smoothing, gamma=focal_gamma, weight=weight)
