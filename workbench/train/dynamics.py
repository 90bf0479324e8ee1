"""Training dynamics: every train sample's signals at every epoch, and every epoch's valid predictions.

Dataset Cartography (Swayamdipta et al. 2020), forgetting events (Toneva et al. 2019) and the Area
Under the Margin (Pleiss et al. 2020) read how each sample moves during training. The Session records
what they need without an extra pass:

- train split, per sample and epoch: the probability of the label it trained on, the margin (that
  label's logit minus the largest other logit) and whether the prediction was right. On the head-only
  path they come from the head's forward on the cached features; on full fine-tuning from the training
  forward passes themselves: logits in training mode, under that moment's augmentation and weights
  mid-epoch, which is what Cartography records. A stopped epoch covers the batches it took; samples it
  did not reach are marked not seen (NaN, `NOT_SEEN`), as are those a balanced sampler skipped.
- valid split, per epoch: the predicted class, its probability, the true class's probability and the
  loss: enough to show any epoch's confusion matrix and gallery again (the epoch scrubber).

Values are float16 in arrays of (epochs x samples) allocated ahead and grown by doubling, within
`max_bytes` for both splits together; when the next epoch would not fit, recording stops with a
warning saying so and how to raise the cap. A distributed run records each process's share.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from ..validate import integer

DEFAULT_MAX_BYTES = 256 * 2**20
NOT_SEEN = 2  # in `correct`: the sample was not trained on in that epoch
FORMAT = 1
FLOAT16_MAX = 65000.0
TRAIN_FIELDS = {"p_true": (np.float16, np.nan), "margin": (np.float16, np.nan), "correct": (np.uint8, NOT_SEEN)}


def valid_fields(num_classes: int) -> dict[str, tuple[type, float]]:
    label_type = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32
    return {"predicted": (label_type, -1), "p_pred": (np.float16, np.nan), "p_true": (np.float16, np.nan),
            "loss": (np.float16, np.nan)}


class EpochRows:
    """Rows of per-sample arrays, one row per epoch, allocated ahead and grown by doubling."""

    def __init__(self, fields: dict[str, tuple[type, float]], n: int) -> None:
        self.fields, self.n = fields, n
        self.epochs: list[int] = []
        self.arrays = {k: np.full((0, n), fill, dtype=dtype) for k, (dtype, fill) in fields.items()}

    @property
    def bytes_per_row(self) -> int:
        return self.n * sum(np.dtype(dtype).itemsize for dtype, _ in self.fields.values())

    @property
    def capacity(self) -> int:
        return len(next(iter(self.arrays.values())))

    def nbytes(self, capacity: int | None = None) -> int:
        return self.bytes_per_row * (self.capacity if capacity is None else capacity)

    def row_of(self, epoch: int) -> int | None:
        return self.epochs.index(epoch) if epoch in self.epochs else None

    def view(self, name: str) -> np.ndarray:
        """The filled rows of one field (epochs x samples), oldest first; a view, not a copy."""
        return self.arrays[name][: len(self.epochs)]

    def grow(self, capacity: int) -> None:
        for k, (dtype, fill) in self.fields.items():
            bigger = np.full((capacity, self.n), fill, dtype=dtype)
            bigger[: len(self.epochs)] = self.view(k)
            self.arrays[k] = bigger

    def put(self, epoch: int, values: dict[str, np.ndarray]) -> None:
        """Write epoch's row (replacing a row for the same epoch); room must have been made."""
        row = self.row_of(epoch)
        if row is None:
            row = len(self.epochs)
            self.epochs.append(epoch)
        for k, v in values.items():
            self.arrays[k][row] = v

    def state(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {f"{prefix}epochs": list(self.epochs)}
        out.update({f"{prefix}{k}": torch.from_numpy(self.view(k).copy()) for k in self.fields})
        return out

    def load(self, d: dict[str, Any], prefix: str, what: str) -> None:
        """Fill from `state(prefix)`; CheckpointError when a part is missing or does not fit."""
        try:
            epochs = [int(e) for e in d[f"{prefix}epochs"]]
            arrays = {k: np.asarray(d[f"{prefix}{k}"].numpy() if isinstance(d[f"{prefix}{k}"], torch.Tensor)
                                    else d[f"{prefix}{k}"]) for k in self.fields}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"The saved {what} are incomplete ({type(exc).__name__}: {exc}).") from exc
        for k, a in arrays.items():
            if a.shape != (len(epochs), self.n):
                raise CheckpointError(f"The saved {what} ({k}) have shape {a.shape}; {len(epochs)} epochs of "
                                      f"{self.n} samples were expected: the checkpoint belongs to other data.")
        self.grow(len(epochs))
        self.epochs = epochs
        for k, (dtype, _) in self.fields.items():
            self.arrays[k][:] = arrays[k].astype(dtype)


class EpochRecorder:
    """One epoch's train signals, written on the device as the loop's chunks of logits come in."""

    def __init__(self, batches: list[torch.Tensor], labels: torch.Tensor) -> None:
        device, n = labels.device, len(labels)
        self.labels = labels
        self.order = (torch.cat(batches) if batches else torch.zeros(0, dtype=torch.long)).to(device)
        self.ends = np.cumsum([0] + [len(b) for b in batches])  # sample offset where each batch starts
        self.p_true = torch.full((n,), float("nan"), dtype=torch.float16, device=device)
        self.margin = torch.full((n,), float("nan"), dtype=torch.float16, device=device)
        self.correct = torch.full((n,), NOT_SEEN, dtype=torch.uint8, device=device)
        self.failed: str | None = None

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, predicted: torch.Tensor, first: int, end: int) -> None:
        """The logits (and argmax) of batches [first, end) of the epoch, concatenated in order."""
        if self.failed is not None:
            return
        try:
            idx = self.order[int(self.ends[first]): int(self.ends[end])]
            y = self.labels[idx]
            z = logits.float()
            z_true = z.gather(1, y[:, None]).squeeze(1)
            self.p_true[idx] = torch.exp(z_true - torch.logsumexp(z, 1)).half()
            others = z.scatter(1, y[:, None], float("-inf")).amax(1)
            self.margin[idx] = (z_true - others).clamp(-FLOAT16_MAX, FLOAT16_MAX).half()
            self.correct[idx] = (predicted == y).to(torch.uint8)
        except Exception as exc:  # noqa: BLE001 - recording must never fault an epoch
            self.failed = f"{type(exc).__name__}: {exc}"

    def rows(self, done: int) -> dict[str, np.ndarray]:
        """Host arrays for the first `done` batches (later ones, if any were recorded, are unseen)."""
        seen = torch.zeros(len(self.labels), dtype=torch.bool, device=self.labels.device)
        seen[self.order[: int(self.ends[done])]] = True
        p, m, c = self.p_true.clone(), self.margin.clone(), self.correct.clone()
        p[~seen], m[~seen], c[~seen] = float("nan"), float("nan"), NOT_SEEN
        return {"p_true": p.cpu().numpy(), "margin": m.cpu().numpy(), "correct": c.cpu().numpy()}


class TrainingDynamics:
    """The Session's record of training dynamics (`session.dynamics`): see the module docstring.

    `enabled = False` stops recording (nothing else changes); `max_bytes` caps both splits' arrays.
    """

    def __init__(self, n_train: int, n_valid: int, num_classes: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.enabled = True
        self.max_bytes = integer("max_bytes", max_bytes, low=0, hint="The memory cap for training dynamics, in bytes.")
        self.num_classes = num_classes
        self.train = EpochRows(TRAIN_FIELDS, n_train)
        self.valid = EpochRows(valid_fields(num_classes), n_valid)
        self.stopped: str | None = None  # why recording stopped (the memory cap), shown by the views
        self._epoch: tuple[int, EpochRecorder] | None = None

    # ---- recording (called by the Session's epoch machinery) -------------------------------------
    def start_epoch(self, epoch: int, batches: list[torch.Tensor], labels: torch.Tensor) -> Callable | None:
        """A recorder for the training loop's chunks of logits (EpochPlan.record), or None when off."""
        self._epoch = None
        if not self.enabled or self.stopped is not None:
            return None
        recorder = EpochRecorder(batches, labels)
        self._epoch = (epoch, recorder)
        return recorder

    def commit(self, epoch: int, batches_done: int) -> None:
        """The epoch is in the history with `batches_done` steps: keep its train row."""
        started, self._epoch = self._epoch, None
        if started is None or started[0] != epoch or batches_done <= 0:
            return
        recorder = started[1]
        if recorder.failed is not None:
            self._stop(f"recording failed at epoch {epoch} ({recorder.failed})")
            return
        if self._room(self.train, epoch):
            self.train.put(epoch, recorder.rows(batches_done))

    @torch.no_grad()
    def record_all(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Every train sample at once (an exact head fit's epoch: `fit_head`)."""
        if not self.enabled or self.stopped is not None:
            return
        batches = [torch.arange(len(labels))]
        recorder = EpochRecorder(batches, labels)
        recorder(logits, logits.argmax(1), 0, 1)
        self._epoch = (epoch, recorder)
        self.commit(epoch, 1)

    def record_valid(self, predictions) -> None:
        """Keep an epoch's validation predictions compactly (the scrubber redraws epoch k from them)."""
        if not self.enabled or self.stopped is not None or predictions is None:
            return
        if len(predictions.labels) != self.valid.n or not self._room(self.valid, predictions.epoch):
            return
        z = np.asarray(predictions.logits, dtype=np.float32)
        z = z - z.max(axis=1, keepdims=True)
        log_total = np.log(np.exp(z).sum(axis=1))
        rows = np.arange(len(z))
        predicted = z.argmax(axis=1)
        y = np.asarray(predictions.labels, dtype=np.int64)
        self.valid.put(predictions.epoch, {
            "predicted": predicted, "p_pred": np.exp(z[rows, predicted] - log_total),
            "p_true": np.exp(z[rows, y] - log_total),
            "loss": np.clip(np.asarray(predictions.losses, dtype=np.float32), -FLOAT16_MAX, FLOAT16_MAX)})

    # ---- the memory cap ---------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes allocated for both splits' arrays."""
        return self.train.nbytes() + self.valid.nbytes()

    def _room(self, rows: EpochRows, epoch: int) -> bool:
        """Make room for epoch's row, or stop recording and say why. Both splits grow together (an
        epoch has a row in each), doubling their capacity within max_bytes."""
        if rows.row_of(epoch) is not None or len(rows.epochs) < rows.capacity:
            return True
        fits = self.max_bytes // max(self.train.bytes_per_row + self.valid.bytes_per_row, 1)
        capacity = min(max(2 * rows.capacity, 4), fits)
        if capacity <= len(rows.epochs):
            self._stop(f"training dynamics stopped recording at epoch {epoch}: {len(rows.epochs)} epochs of "
                       f"{self.train.n:,} train and {self.valid.n:,} valid samples fill its cap of "
                       f"{_size(self.max_bytes)}. Raise session.dynamics.max_bytes to record more; what was "
                       "recorded is kept")
            return False
        for r in (self.train, self.valid):
            if r.capacity < capacity:
                r.grow(capacity)
        return True

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            warnings.warn(reason + ".", RuntimeWarning, stacklevel=3)

    # ---- reading -----------------------------------------------------------------------------------
    @property
    def epochs(self) -> list[int]:
        """Epochs with a train row, in order."""
        return list(self.train.epochs)

    @property
    def valid_epochs(self) -> list[int]:
        """Epochs whose validation predictions were kept, in order."""
        return list(self.valid.epochs)

    def signals(self, through: int | None = None) -> dict[str, np.ndarray]:
        """Train signals (epochs x samples) of the epochs up to `through`: p_true and margin as float32
        (NaN = not seen), correct as int8 (1, 0, -1 = not seen), and the epoch numbers."""
        keep = [r for r, e in enumerate(self.train.epochs) if through is None or e <= through]
        correct = self.train.view("correct")[keep].astype(np.int8)
        correct[correct == NOT_SEEN] = -1
        return {"epochs": np.asarray([self.train.epochs[r] for r in keep], dtype=np.int64),
                "p_true": self.train.view("p_true")[keep].astype(np.float32),
                "margin": self.train.view("margin")[keep].astype(np.float32), "correct": correct}

    def valid_epoch(self, epoch: int) -> dict[str, np.ndarray]:
        """Epoch's kept validation predictions: predicted, p_pred, p_true, loss (float32 / int64)."""
        row = self.valid.row_of(int(epoch))
        if row is None:
            kept = self.valid.epochs
            span = f"epochs {kept[0]}..{kept[-1]}" if kept else "no epochs yet"
            raise ConfigError(f"Epoch {epoch}'s validation predictions were not kept ({span} are). Pick one of those.")
        return {k: self.valid.arrays[k][row].astype(np.int64 if k == "predicted" else np.float32)
                for k in self.valid.fields}

    def __repr__(self) -> str:
        state = "off" if not self.enabled else (self.stopped or "recording")
        return (f"TrainingDynamics({len(self.train.epochs)} train epochs x {self.train.n} samples, "
                f"{len(self.valid.epochs)} valid epochs, {_size(self.nbytes)} of {_size(self.max_bytes)}, {state})")

    # ---- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The filled rows only (bounded by max_bytes), as CPU tensors; part of Session.state_dict()."""
        return {"format": FORMAT, "max_bytes": self.max_bytes, "enabled": self.enabled, "stopped": self.stopped,
                **self.train.state("train_"), **self.valid.state("valid_")}

    @classmethod
    def from_state(cls, d: Any, n_train: int, n_valid: int, num_classes: int) -> TrainingDynamics:
        """Rebuilt from `state_dict()`, checked against the data's split sizes (CheckpointError);
        None (a checkpoint from before training dynamics) gives an empty record."""
        if d is None:
            return cls(n_train, n_valid, num_classes)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError("The saved training dynamics are not understood (no format 1 dict). Save the "
                                  "checkpoint again with this version.")
        try:
            out = cls(n_train, n_valid, num_classes, max_bytes=int(d["max_bytes"]))
            out.enabled = bool(d["enabled"])
            out.stopped = None if d["stopped"] is None else str(d["stopped"])
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"The saved training dynamics are incomplete ({type(exc).__name__}: {exc}).") from exc
        out.train.load(d, "train_", "training dynamics (train)")
        out.valid.load(d, "valid_", "per-epoch validation predictions")
        return out


def _size(n: int) -> str:
    """Bytes for people: 812 B, 13.5 kB, 256 MiB."""
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.1f} kB" if n >= 1024 else f"{n} B"
