"""The Session's side of training dynamics: relabels, pinned explanations, and their state.

A mixin of Session (session.py). It owns three pieces of state, built in `_init_dynamics`:

- `session.dynamics` (train/dynamics.py): per-sample train signals and per-epoch valid predictions,
  written by the epoch machinery (epoch.py) as it trains and evaluates;
- `session.review` (train/review.py): the verify queue and the label overrides training uses;
- pinned validation samples, whose Grad-CAM (token attributions for texts) is computed at every epoch
  end from the moment they are pinned, so the epoch scrubber can show how the evidence moved.

`relabel` is transactional like `configure`: checked first, applied now when the session is idle or
at the next epoch's start while it trains, and recorded where it took effect (to_code replays it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..validate import split_position
from .dynamics import TrainingDynamics
from .events import ReviewChange
from .review import LabelReview

MAX_PINS = 4
MAX_PIN_FRAMES = 100  # epochs kept per pinned sample (a 224 px frame pair is ~100 kB); later epochs are not kept
PIN_TEXT_STEPS = 4  # integrated-gradient steps for a pinned text at each epoch end (the Why panel uses up to 32)


class DynamicsMixin:
    """Session methods for relabelling, the verify queue, pins and their part of the state."""

    def _init_dynamics(self) -> None:
        data = self.data
        self.dynamics = TrainingDynamics(len(data.train), len(data.valid), data.num_classes)
        self.review = LabelReview(data)
        self.pinned: list[int] = []  # valid positions whose explanation is recorded at each epoch end
        self.pin_frames: dict[int, dict[int, tuple]] = {}  # id -> epoch -> (toward true, toward predicted)
        self.events.on("epoch_end", self._explain_pins)

    # ---- labels --------------------------------------------------------------------------------------
    @property
    def train_labels(self) -> np.ndarray:
        """The train labels training uses: the data's, with the relabels in effect (session.review)."""
        return self.review.labels()

    def _training_labels(self) -> torch.Tensor:
        """The train labels on the device for the next pass (the pipeline's, with the overrides)."""
        return self.review.apply_to(self.pipeline.labels("train"))

    def relabel(self, ids, label=None, note: str = "") -> dict[int, str]:
        """Train on `label` instead of the given label for these train samples, from the next epoch:
        `session.relabel([12, 40], "cat")` or `session.relabel({12: "cat", 40: 3})`. Relabelling to the
        data's own label undoes it. The data is not changed; the verify queue marks each sample
        "relabel" and to_code() replays the change. Checked first; applied now when idle, or at the
        next epoch's start while training runs. Returns {id: class name}."""
        changes = self.review.check_changes(ids, label)
        with self.control.unless_busy() as free:
            if free:
                self._relabel_now(changes)
            else:
                self.review.pending = {**self.review.pending, **changes}
            for i, c in changes.items():
                self.review.decide([i], "relabel", c, note or f"relabel as {self.data.classes[c]}")
        self.events.emit("review", ReviewChange("relabel", tuple(changes), pending=not free))
        return {i: self.data.classes[c] for i, c in changes.items()}

    def _relabel_now(self, changes: dict[int, int]) -> None:
        overrides = self.review.with_overrides(changes)  # built first; the swap below cannot fail
        self.review.apply(overrides, changes, self.epoch + 1)
        self._record("relabel", labels=[[i, self.data.classes[c]] for i, c in changes.items()])

    def _apply_pending_labels(self) -> None:
        """At an epoch's start: relabels asked for while the previous epochs ran take effect."""
        pending, self.review.pending = self.review.pending, {}
        if pending:
            self._relabel_now(pending)
            self.events.emit("review", ReviewChange("relabel applied", tuple(pending)))

    def flag(self, ids, note: str = "label looks wrong", decision: str = "flag") -> list[int]:
        """Put train samples in the verify queue: decision "flag" (to check) or "keep" (checked: the
        label is right). Changes no label and no training. Returns the ids."""
        checked = self.review.check_ids(ids)
        decision = self.review.check_decision(decision)
        if decision == "relabel":
            raise ConfigError("Use session.relabel(ids, label) to relabel: it needs the new label.")
        self.review.decide(checked, decision, None, note)
        self.events.emit("review", ReviewChange(decision, tuple(checked)))
        return checked

    def unflag(self, ids) -> list[int]:
        """Take train samples out of the verify queue (a relabel in effect stays; relabel back to undo)."""
        checked = self.review.check_ids(ids)
        self.review.forget(checked)
        self.events.emit("review", ReviewChange("unflag", tuple(checked)))
        return checked

    # ---- pinned explanations ----------------------------------------------------------------------
    def pin(self, index: int) -> list[int]:
        """Record validation sample `index`'s explanation (Grad-CAM for images, token attributions for
        texts) toward its true and its predicted class at every epoch end from now on, and now if the
        session has predictions. At most MAX_PINS samples; returns the pinned ids."""
        index = split_position(index, len(self.data.valid), "valid", "the ids of the explorer's gallery")
        if index not in self.pinned and len(self.pinned) >= MAX_PINS:
            raise ConfigError(f"{MAX_PINS} samples are pinned already ({self.pinned}); each costs an explanation "
                              "pass at every epoch end. Unpin one first: session.unpin(i).")
        if index not in self.pinned:
            self.pinned = [*self.pinned, index]
            if self.predictions is not None and not self.running:
                self._explain_pins(None, only=[index])
        self.events.emit("review", ReviewChange("pin", (index,)))
        return list(self.pinned)

    def unpin(self, index: int) -> list[int]:
        """Stop recording a pinned sample's explanation (its frames so far are dropped)."""
        self.pinned = [i for i in self.pinned if i != int(index)]
        self.pin_frames.pop(int(index), None)
        self.events.emit("review", ReviewChange("unpin", (int(index),)))
        return list(self.pinned)

    def _explain_pins(self, result, only: list[int] | None = None) -> None:
        """An epoch_end subscriber: explain the pinned samples with the weights the epoch ended on."""
        ids = list(only if only is not None else self.pinned)
        if not ids or self.predictions is None or (result is not None and result.stopped is not None):
            return
        from ..analysis.attribution import explain_many

        try:
            pairs = explain_many(self, ids + ids, ["true"] * len(ids) + ["pred"] * len(ids),
                                 n_steps=PIN_TEXT_STEPS if self.model.kind == "text" else None, while_training=True)
        except Exception:
            self.pinned = [i for i in self.pinned if i not in ids]  # not every epoch: say it once
            raise
        for n, i in enumerate(ids):
            frames = self.pin_frames.setdefault(i, {})
            if len(frames) >= MAX_PIN_FRAMES:
                continue
            frames[self.epoch] = tuple(_compact(a, keep_image=not frames) for a in (pairs[n], pairs[n + len(ids)]))

    def pinned_explanation(self, index: int, epoch: int) -> tuple | None:
        """(toward true, toward predicted) Attributions of pinned sample `index` at `epoch`, or None
        when that epoch was not recorded (it ended before the pin, or was stopped)."""
        frames = self.pin_frames.get(int(index), {})
        pair = frames.get(int(epoch))
        if pair is None:
            return None
        image = next(iter(frames.values()))[0].image  # kept with the first frame only
        return tuple(dataclasses.replace(a, image=image, heatmap=None if a.heatmap is None else
                                         a.heatmap.astype(np.float32) / 255) for a in pair)

    # ---- state -------------------------------------------------------------------------------------
    def _dynamics_state(self) -> dict[str, Any]:
        return {"dynamics": self.dynamics.state_dict(), "review": self.review.state_dict()}

    def _checked_dynamics_state(self, sd: dict[str, Any]) -> tuple[TrainingDynamics, LabelReview]:
        """Both parts rebuilt from a state dict and checked (CheckpointError); absent in older
        checkpoints: then empty."""
        d = self.data
        return (TrainingDynamics.from_state(sd.get("dynamics"), len(d.train), len(d.valid), d.num_classes),
                LabelReview.from_state(sd.get("review"), d))

    def _swap_dynamics_state(self, checked: tuple[TrainingDynamics, LabelReview]) -> None:
        self.dynamics, self.review = checked
        self.pin_frames = {}


def _compact(attribution, keep_image: bool):
    """An attribution as kept per epoch: heatmap as uint8, the image only with the first frame."""
    heat = attribution.heatmap
    return dataclasses.replace(attribution, cam=None, image=attribution.image if keep_image else None,
                               heatmap=None if heat is None else np.round(heat * 255).astype(np.uint8))
