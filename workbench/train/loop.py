"""One epoch of training, and the evaluation pass, as plain functions over explicit inputs.

The loop fits on one screen (minGPT's trainer is the model): get a batch, forward, per-sample
loss, check it is finite, backward, step, log. Stop/pause flags are checked between batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError, TrainingError
from .control import RunControl
from .events import BatchEnd, EventBus
from .guards import StepGuard

ARGMAX_CHUNK = 32  # batches whose train predictions are taken in one argmax


@dataclass
class EpochPlan:
    """What one training epoch runs: built by the Session, consumed by `train_epoch`."""

    epoch: int  # 1-based
    batches: list[torch.Tensor]  # sample positions per batch
    inputs: Callable[[torch.Tensor], object]  # positions -> model inputs (on the device)
    labels: torch.Tensor  # all train labels, on the device
    forward: Callable[[object], torch.Tensor]  # inputs -> logits
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    lr_factor: Callable[[int], float]
    first_step: int  # global step at the start of the epoch
    l1: float = 0.0
    buffers: list[torch.Tensor] = field(default_factory=list)  # BN statistics the forward updates
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    # read losses on the host only at logging intervals; needs an optimizer that skips on the
    # device (optim.skips_on_device). The Session turns it on for CUDA.
    deferred: bool = False
    # eager mode's check of a loss; distributed runs ask every process (train.distributed)
    finite: Callable[[torch.Tensor], bool] | None = None
    # turns the gradients into the step's direction between backward and step (precondition.py)
    precondition: Callable[[], None] | None = None
    # takes back a step that leaves the weights non-finite (guards.StepGuard; a re-run only: it copies per step)
    step_guard: StepGuard | None = None
    lr_group: int = -1  # the param group whose LR the history records per batch (the head's)
    # (logits, their argmax, first batch, end batch) of each chunk of trained batches: the per-sample
    # training dynamics, read from this epoch's own forward passes (train/dynamics.py)
    record: Callable[[torch.Tensor, torch.Tensor, int, int], None] | None = None


@dataclass
class EpochOutcome:
    loss: float
    accuracy: float
    batches: int
    samples: int
    seconds: float
    batch_losses: list[float] = field(default_factory=list)
    batch_lrs: list[float] = field(default_factory=list)
    stopped: str | None = None
    error: BaseException | None = None  # the fault that ended the epoch, if any
    paused_s: float = 0.0  # time held by pause(): not training time


def rows_of(t: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """positions (on the host) -> t[positions], resolved once per pass: when t lives on the host
    this is plain indexing (a per-batch `.to(device)` call cost ~5 us a batch in the loop)."""
    if t.device.type == "cpu":
        return t.__getitem__
    return lambda idx: t[idx.to(t.device, non_blocking=True)]


def set_lrs(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def train_epoch(plan: EpochPlan, events: EventBus, control: RunControl) -> EpochOutcome:
    """Train one epoch. On a fault the model stays at its last completed optimizer step.

    Per-batch losses and predictions stay on the device; the host reads a loss when a
    `batch_end` event is due (at most ~5 per second) and all of them once at the end. In deferred
    mode (CUDA) that is also when a non-finite loss is noticed: until then a `_DeviceGuard` makes
    every step a no-op on the device.
    """
    out = EpochOutcome(loss=float("nan"), accuracy=float("nan"), batches=0, samples=0, seconds=0.0)
    n_batches = len(plan.batches)
    losses: list[torch.Tensor] = []  # 0-d, detached, on the device
    predicted: list[torch.Tensor] = []  # argmax per chunk of batches: an op per batch cost ~10 us
    pending: list[torch.Tensor] = []  # detached logits of the batches since the last argmax
    labels_of = rows_of(plan.labels)
    guard = _DeviceGuard(plan) if plan.deferred else None
    # BatchNorm statistics before each batch: a batch that fails after its forward gives them back
    saved = [b.clone() for b in plan.buffers]
    start = time.perf_counter()
    trainable = [p for g in plan.optimizer.param_groups for p in g["params"] if p.requires_grad]
    b = 0
    try:
        for b, idx in enumerate(plan.batches):
            out.paused_s += control.wait_while_paused()  # paused: wait between batches (not counted as time)
            if control.stop_flag.is_set() or b == control.stop_after:
                out.stopped = f"{control.stop_reason} after batch {b}/{n_batches}"
                break
            set_lrs(plan.optimizer, plan.lr_factor(plan.first_step + b))
            if saved:
                torch._foreach_copy_(saved, plan.buffers)  # one fused copy (a multi-tensor kernel on CUDA)
            if plan.step_guard is not None:
                plan.step_guard.save()
            try:
                loss, logits = train_batch(plan, idx, labels_of(idx), trainable, guard)
            except Exception as exc:  # the model is still at the last completed step
                _restore(plan.buffers, saved)
                out.stopped, out.error = _describe_fault(exc, plan.epoch, b, n_batches, idx), exc
                break
            if loss is None:  # eager mode: refused before backward
                _restore(plan.buffers, saved)
                out.stopped = f"non-finite loss at batch {b + 1}/{n_batches}"
                break
            if plan.step_guard is not None and not plan.step_guard.finite():  # this step broke the weights
                plan.step_guard.restore()
                out.stopped = f"weights became non-finite at batch {b + 1}/{n_batches}"
                break
            losses.append(loss.detach())
            pending.append(logits.detach())
            if len(pending) == ARGMAX_CHUNK:
                _take_predictions(plan, pending, predicted, len(losses))
            out.batch_lrs.append(plan.optimizer.param_groups[plan.lr_group]["lr"])
            if events.batch_due(last=b + 1 == n_batches):
                if guard is not None and guard.tripped():  # a host sync, at most ~5 per second
                    break
                _emit_batch_end(plan, events, float(losses[-1]), b + 1, start + out.paused_s)
        if guard is not None and not guard.fired:
            guard.tripped()  # the end-of-epoch check
    except KeyboardInterrupt:  # the notebook's Interrupt button: stop here, like stop()
        if len(losses) == b:  # interrupted inside batch b, before its step was counted
            _restore(plan.buffers, saved)
        out.stopped = f"interrupted (KeyboardInterrupt) after batch {len(losses)}/{n_batches}"
        del out.batch_lrs[len(losses):]
    finally:
        if guard is not None:
            guard.close()
    if pending:
        _take_predictions(plan, pending, predicted, len(losses))
    values = torch.stack(losses) if losses else torch.zeros(0)
    done = len(losses)
    if guard is not None and guard.fired:
        done = guard.first_bad(values)
        out.stopped = f"non-finite loss at batch {done + 1}/{n_batches}"
        del out.batch_lrs[done:]
    out.seconds = time.perf_counter() - start - out.paused_s
    sizes = [len(i) for i in plan.batches[:done]]
    out.batches, out.samples = done, sum(sizes)
    if done:
        out.batch_losses = values[:done].tolist()  # one host read for the whole epoch
        out.loss = sum(v * n for v, n in zip(out.batch_losses, sizes)) / out.samples
        seen = torch.cat(plan.batches[:done]).to(plan.labels.device)
        out.accuracy = int((torch.cat(predicted)[: out.samples] == plan.labels[seen]).sum()) / out.samples
    return out


def _take_predictions(plan: EpochPlan, pending: list[torch.Tensor], predicted: list[torch.Tensor], done: int) -> None:
    """The argmax of the pending batches' logits (the last `len(pending)` of the `done` batches), and
    the same logits to the dynamics recorder: one op per chunk, not per batch."""
    logits = torch.cat(pending)
    predicted.append(logits.argmax(1))
    if plan.record is not None:
        plan.record(logits, predicted[-1], done - len(pending), done)
    pending.clear()


def _emit_batch_end(plan: EpochPlan, events: EventBus, value: float, done: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    samples = sum(len(i) for i in plan.batches[:done])
    rate = samples / max(elapsed, 1e-9)
    remaining = sum(len(i) for i in plan.batches[done:])
    lrs = tuple(g["lr"] for g in plan.optimizer.param_groups)
    events.emit("batch_end", BatchEnd(plan.epoch, done, len(plan.batches), value, lrs, rate, remaining / rate))


class _DeviceGuard:
    """Refuses steps after a non-finite loss without a host sync per batch (deferred mode).

    A sticky device flag feeds the fused optimizer's `found_inf`, so from the first bad batch on
    every step is a no-op on the device and the parameters stay at the last good step. BatchNorm
    statistics (changed by each forward) are snapshotted whenever the host checks the flag and
    restored from the last clean check if it tripped.
    """

    def __init__(self, plan: EpochPlan) -> None:
        device = plan.labels.device
        self.optimizer = plan.optimizer
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self.buffers = list(plan.buffers)
        self.snapshot = [b.clone() for b in self.buffers]
        self.fired = False
        self.optimizer.found_inf = self.found_inf  # read by torch's fused step kernels

    def observe(self, loss: torch.Tensor) -> None:
        self.bad |= ~torch.isfinite(loss)
        self.found_inf.copy_(self.bad)

    def tripped(self) -> bool:
        """One host sync: did any loss so far go non-finite? Snapshot or restore BN statistics."""
        if not bool(self.bad):
            for saved, buffer in zip(self.snapshot, self.buffers):
                saved.copy_(buffer)
            return False
        for saved, buffer in zip(self.snapshot, self.buffers):
            buffer.copy_(saved)
        self.fired = True
        return True

    def first_bad(self, losses: torch.Tensor) -> int:
        """Index of the first non-finite batch loss (steps from there on were skipped)."""
        bad = (~torch.isfinite(losses)).nonzero()
        return int(bad[0, 0]) if len(bad) else len(losses)

    def close(self) -> None:
        if getattr(self.optimizer, "found_inf", None) is self.found_inf:
            del self.optimizer.found_inf


def _restore(buffers: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    if saved:
        torch._foreach_copy_(buffers, saved)


def train_batch(plan: EpochPlan, idx: torch.Tensor, y: torch.Tensor, trainable: list[torch.Tensor],
                guard: _DeviceGuard | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Forward, loss, backward, step. Returns (loss, logits); loss None if refused (eager mode:
    the caller gives the forward's BatchNorm updates back)."""
    x = plan.inputs(idx)
    with plan.autocast():
        logits = plan.forward(x)
    loss = plan.criterion(logits, y).mean()
    if plan.l1:
        loss = loss + plan.l1 * sum(p.abs().sum() for p in trainable if p.ndim > 1)
    if guard is not None:
        guard.observe(loss)  # no host sync: a bad step becomes a no-op on the device
    elif not (plan.finite(loss) if plan.finite is not None else math.isfinite(loss.item())):  # eager mode
        return None, logits
    plan.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if plan.precondition is not None:
        plan.precondition()
    plan.optimizer.step()
    return loss, logits


def _describe_fault(exc: Exception, epoch: int, b: int, n_batches: int, idx: torch.Tensor) -> str:
    where = f"batch {b + 1}/{n_batches} of epoch {epoch}"
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory at {where}"
    if isinstance(exc, DataError):
        return f"data error at {where}: {exc}"
    samples = idx[:8].tolist()
    return f"{type(exc).__name__} at {where} (train samples {samples}{'...' if len(idx) > 8 else ''}): {exc}"


@torch.no_grad()
def evaluate(
    batches: list[torch.Tensor],
    inputs: Callable[[torch.Tensor], object],
    labels: torch.Tensor,
    forward: Callable[[object], torch.Tensor],
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    progress: Callable[[int], None] = lambda done: None,
    some: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and per-sample losses for every sample, in sample order, in one pass;
    `progress(batches done)` after each batch. some=True: `batches` cover only some samples (a
    process's share), the others' rows are zeros."""
    n = len(labels)
    logits_all: torch.Tensor | None = None
    make = torch.zeros if some else torch.empty
    losses = make(n, dtype=torch.float32, device=labels.device)
    progress(0)
    for b, idx in enumerate(batches):
        idx_dev = idx.to(labels.device)
        with autocast():
            logits = forward(inputs(idx)).float()
        if logits_all is None:
            logits_all = make((n, logits.shape[1]), dtype=torch.float32, device=logits.device)
        logits_all[idx_dev] = logits
        losses[idx_dev] = criterion(logits, labels[idx_dev]).float()
        progress(b + 1)
    if logits_all is None:
        raise TrainingError("The valid split is empty: there is nothing to evaluate. Give the data a valid split.")
    return logits_all.cpu().numpy(), losses.cpu().numpy()
