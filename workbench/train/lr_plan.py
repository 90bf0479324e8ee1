"""The LR schedule's plan: where it starts, how long it runs, and the LR the next epoch runs at.

A schedule runs over `config.epochs` planned epochs counted from its start (docs/ARCHITECTURE.md,
"LR schedules"):

- It starts when the session is made, and again whenever you set the LR, the schedule or the
  optimizer (`configure(lr=...)`, `schedule=`, `optimizer=`, even to the value it had): the next
  epoch then runs at the start of the schedule, at the LR you set. Before this, a schedule that had
  run its planned epochs held every later epoch at its end (cosine: LR 0), whatever LR was set.
- `configure(epochs=n)` changes the plan's length and keeps its position.
- `fit(n)` that would run past the plan's end first makes the plan end with that fit: it sets
  `epochs` (recorded as `configure(epochs=...)`, so `to_code()` replays it and the Train tab shows it).
  fit(6) on a plan of 5 epochs runs a 6-epoch schedule; fit(5) then fit(1) runs the sixth epoch at
  the end of a 6-epoch schedule.
- The automatic schedule of a head on cached features (one-cycle) runs over the current stretch of
  head-only epochs: going back to the head alone starts it again.

`Session.next_epoch_lr()` computes what the next epoch will run at from the same rules (pending
changes and a progressive plan included); the summary, the Train tab and the dashboard show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..validate import integer
from .config import TrainConfig, auto_lr, auto_schedule
from .freezing import trainable_blocks

RESTARTS = frozenset({"lr", "schedule", "optimizer"})  # settings whose setting starts the schedule again
HORIZON = ("cosine", "onecycle")  # schedules whose shape depends on the plan's length


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of `n` samples (a last batch of one sample is dropped: data.transforms)."""
    k = max(1, math.ceil(n / batch_size))
    return k - 1 if k > 1 and n % batch_size == 1 else k


def head_phase_steps(history: Sequence) -> int:
    """Steps taken in the epochs since training last went through the body (head-only ones)."""
    steps = 0
    for r in reversed(history):
        if not r.fast_path:
            break
        steps += r.batches
    return steps


def position(history: Sequence, start_step: int, head_phase: bool) -> int:
    """Steps into the schedule: since its start, or for the automatic head schedule since the later
    of its start and the start of the current stretch of head-only epochs."""
    steps = sum(r.batches for r in history) - start_step
    return min(steps, head_phase_steps(history)) if head_phase else steps


def epochs_into(steps: int, per_epoch: int) -> int:
    """Epochs of the plan begun so far (a stopped epoch counts as one)."""
    return -(-steps // max(1, per_epoch))


def covering(c: TrainConfig, schedule_name: str, steps: int, per_epoch: int, more: int) -> int | None:
    """The planned epochs that let `more` epochs run inside the plan, or None when `c.epochs` already
    covers them or the schedule's shape does not depend on its length."""
    if schedule_name not in HORIZON:
        return None
    need = epochs_into(steps, per_epoch) + more
    return need if need > c.epochs else None


@dataclass(frozen=True)
class NextEpoch:
    """The head's LR at the first and last step of the next epoch, and where it is in the plan."""

    first: float
    last: float
    schedule: str  # as resolved for the epoch ("onecycle (auto)")
    epoch: int  # 1-based, within the plan
    of: int  # the plan's length in epochs (after a fit(1) past its end extended it)
    planned: int  # the plan's length now (config.epochs): less than `of` when fit() extends it

    def words(self) -> str:
        """'LR 1.00e-02 → 9.05e-03 (cosine, epoch 1 of 5)': what the summary and the Train tab show."""
        lr = f"{self.first:.2e}" if math.isclose(self.first, self.last, rel_tol=5e-3) else \
            f"{self.first:.2e} → {self.last:.2e}"
        of = max(self.of, self.epoch)  # a schedule that does not extend (constant) can run past the plan
        grows = f"; the {self.planned}-epoch plan is done: fit() extends it" if of > self.planned else ""
        return f"LR {lr} ({self.schedule}, epoch {self.epoch} of {of}{grows})"


class LrPlanMixin:
    """Session methods for the schedule's plan (a mixin of Session, like EpochMixin: its own state)."""

    _schedule_start: int  # global step at which the current schedule started

    def next_epoch_lr(self) -> NextEpoch:
        """The LR the next epoch runs at (the head's; lower blocks get lr_decay of it), from the same
        rules the epoch uses: pending settings and freeze plans, a progressive plan, a restart, a plan
        that fit() would extend. The Train tab, the dashboard and summary() show it."""
        pending = self._pending.get("config", {})
        c = self.config.replace(**pending) if pending else self.config
        start = self.global_step if RESTARTS & set(pending) else self._schedule_start
        trainable = trainable_blocks(self.model, self.freeze_spec, epoch=self.epoch)
        fast = self.path(c, trainable)[0]
        schedule = auto_schedule(c, fast)
        steps = position(self.history, start, fast and c.schedule.name == "auto")
        per_epoch = steps_per_epoch(len(self.data.train), c.batch_size)
        longer = covering(c, schedule.name, steps, per_epoch, 1)
        epochs = longer or c.epochs
        factor = schedule.factor_fn(per_epoch, epochs)
        base = auto_lr(c, fast, self.model.kind)
        return NextEpoch(base * factor(steps), base * factor(steps + per_epoch - 1),
                         schedule.name + (" (auto)" if c.schedule.name == "auto" else ""),
                         epochs_into(steps, per_epoch) + 1, epochs, c.epochs)

    def extend_plan(self, epochs: int) -> int:
        """Make the schedule's plan cover `epochs` more epochs, as fit(epochs) does before it trains
        (recorded as configure(epochs=...)); returns the planned epochs. For callers that train one
        epoch at a time, e.g. a launched script that saves a checkpoint after each."""
        epochs = integer("epochs", epochs, low=1, hint="How many epochs the plan must still cover.")
        with self.control.hold("extending the LR plan"):
            self._cover(epochs)
        return self.config.epochs

    # ---- used by the epoch machinery and configure() ---------------------------------------------
    def _schedule_steps(self, fast: bool, c: TrainConfig) -> int:
        """Steps into the schedule for the epoch about to run (its first step's clock)."""
        return position(self.history, self._schedule_start, fast and c.schedule.name == "auto")

    def _schedule_set(self, settings: dict[str, Any]) -> None:
        """After settings took effect: setting the LR, the schedule or the optimizer starts the schedule again."""
        if RESTARTS & set(settings):
            self._schedule_start = self.global_step

    def _cover(self, more: int) -> None:
        """Before an epoch of a fit with `more` epochs to go: a plan that would end before them is
        extended to end with them (a change of `epochs`, recorded and announced like configure's)."""
        c = self.config
        trainable = trainable_blocks(self.model, self._freeze_spec, epoch=self.epoch)
        fast = self.path(c, trainable)[0]
        steps = self._schedule_steps(fast, c)
        longer = covering(c, auto_schedule(c, fast).name, steps, steps_per_epoch(len(self.data.train), c.batch_size),
                          more)
        if longer is not None:
            self._apply_config(c.replace(epochs=longer))
            self._record("configure", settings={"epochs": longer})
            self._changed("settings")
