"""What a Session records: one EpochResult per epoch, and the latest validation Predictions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Predictions:
    """Validation outputs of one epoch, from the same pass that computed the valid loss.

    `ids[k]` is the position of row k in the valid split (`data.item(ids[k], "valid")`).
    """

    logits: np.ndarray  # float32 (N, K)
    labels: np.ndarray  # int64 (N,)
    losses: np.ndarray  # float32 (N,): per-sample loss under the training criterion
    ids: np.ndarray  # int64 (N,)
    epoch: int

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class EpochResult:
    """One row of `session.history`: everything a person compares between epochs."""

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    valid_loss: float | None
    valid_accuracy: float | None
    valid_macro_f1: float | None
    lrs: dict[str, float]  # LR per param group (block name) at the end of the epoch
    trainable: tuple[str, ...]
    fast_path: bool
    path_reason: str
    epoch_time_s: float  # wall time of the whole epoch (feature-cache build, training, evaluation), pauses left out
    samples_per_s: float  # training samples per second of training time
    batches: int
    num_batches: int
    stopped: str | None = None  # None, or why the epoch ended early ("stopped", "non-finite loss ...")
    batch_losses: tuple[float, ...] = field(default=(), repr=False)
    batch_lrs: tuple[float, ...] = field(default=(), repr=False)  # LR of the head group per batch

    @property
    def completed(self) -> bool:
        return self.stopped is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trainable"] = list(self.trainable)
        d["batch_losses"] = list(self.batch_losses)
        d["batch_lrs"] = list(self.batch_lrs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochResult:
        d = dict(d)
        d["trainable"] = tuple(d["trainable"])
        d["batch_losses"] = tuple(d.get("batch_losses", ()))
        d["batch_lrs"] = tuple(d.get("batch_lrs", ()))
        return cls(**d)

    def line(self) -> str:
        """One printable line, as the headless demo shows it."""
        valid = (
            f"valid loss {self.valid_loss:.4f}  acc {self.valid_accuracy:.3f}  F1 {self.valid_macro_f1:.3f}"
            if self.valid_loss is not None
            else "not evaluated"
        )
        path = "cached features" if self.fast_path else "full forward"
        tail = f"  [{self.stopped}]" if self.stopped else ""
        return (
            f"epoch {self.epoch:>2}  train loss {self.train_loss:.4f}  acc {self.train_accuracy:.3f}  "
            f"{valid}  lr {max(self.lrs.values(), default=0.0):.2e}  "
            f"{self.epoch_time_s:6.2f}s ({self.samples_per_s:,.0f}/s, {path}){tail}"
        )


def macro_f1(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Macro-F1 over all classes, as sklearn's f1_score(average="macro", zero_division=0)."""
    k = num_classes
    cm = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2tp + fp + fn
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)))


def history_frame(history: list[EpochResult]):
    """The history as a pandas DataFrame, one row per epoch (per-batch series left out)."""
    import pandas as pd

    rows = []
    for r in history:
        d = r.to_dict()
        d.pop("batch_losses"), d.pop("batch_lrs")
        lrs = d.pop("lrs")
        d["lr"] = max(lrs.values(), default=float("nan"))
        d["trainable"] = len(r.trainable)
        rows.append(d)
    return pd.DataFrame(rows).set_index("epoch") if rows else pd.DataFrame()
