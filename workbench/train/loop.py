"""One epoch of training, and the evaluation pass, as plain functions over explicit inputs.

The loop fits on one screen (minGPT's trainer is the model): get a batch, forward, per-sample
loss, check it is finite, backward, step, log. Stop/pause flags are checked between batches.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError, TrainingError
from .events import BatchEnd, EventBus


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


def set_lrs(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def train_epoch(
    plan: EpochPlan,
    events: EventBus,
    stop: threading.Event,
    running: threading.Event,
) -> EpochOutcome:
    """Train one epoch. On a fault the model stays at its last completed optimizer step."""
    out = EpochOutcome(loss=float("nan"), accuracy=float("nan"), batches=0, samples=0, seconds=0.0)
    n_batches = len(plan.batches)
    loss_sum, correct = 0.0, torch.zeros((), dtype=torch.long, device=plan.labels.device)
    start = time.perf_counter()
    trainable = [p for g in plan.optimizer.param_groups for p in g["params"] if p.requires_grad]
    for b, idx in enumerate(plan.batches):
        while not running.is_set() and not stop.is_set():  # paused: wait here, between batches
            running.wait(0.05)
        if stop.is_set():
            out.stopped = f"stopped by user after batch {b}/{n_batches}"
            break
        step = plan.first_step + b
        set_lrs(plan.optimizer, plan.lr_factor(step))
        try:
            value, logits, y = _train_batch(plan, idx, trainable)
        except Exception as exc:  # the model is still at the last completed step
            out.stopped, out.error = _describe_fault(exc, plan.epoch, b, n_batches, idx), exc
            break
        if value is None:
            out.stopped = f"non-finite loss at batch {b + 1}/{n_batches}"
            break
        loss_sum += value * len(idx)
        correct += (logits.argmax(1) == y).sum()  # stays on the device: no sync per batch
        out.batches, out.samples = b + 1, out.samples + len(idx)
        out.batch_losses.append(value)
        out.batch_lrs.append(plan.optimizer.param_groups[-1]["lr"])
        if events.batch_due(last=b + 1 == n_batches):
            elapsed = time.perf_counter() - start
            rate = out.samples / max(elapsed, 1e-9)
            remaining = sum(len(i) for i in plan.batches[b + 1 :])
            lrs = tuple(g["lr"] for g in plan.optimizer.param_groups)
            events.emit("batch_end", BatchEnd(plan.epoch, b + 1, n_batches, value, lrs, rate, remaining / rate))
    out.seconds = time.perf_counter() - start
    if out.samples:
        out.loss, out.accuracy = loss_sum / out.samples, int(correct) / out.samples
    return out


def _train_batch(plan: EpochPlan, idx: torch.Tensor, trainable: list[torch.Tensor]):
    """Forward, loss, backward, step. Returns (loss, logits, labels); loss None if non-finite."""
    x = plan.inputs(idx)
    y = plan.labels[idx.to(plan.labels.device)]
    saved = [b.clone() for b in plan.buffers]  # small: BatchNorm statistics only
    with plan.autocast():
        logits = plan.forward(x)
    loss = plan.criterion(logits, y).mean()
    if plan.l1:
        loss = loss + plan.l1 * sum(p.abs().sum() for p in trainable if p.ndim > 1)
    value = loss.item()  # note: a CPU-GPU sync point, needed to refuse a non-finite step
    if not np.isfinite(value):
        for buffer, before in zip(plan.buffers, saved):  # undo this forward's BN updates
            buffer.copy_(before)
        return None, logits, y
    plan.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    plan.optimizer.step()
    return value, logits, y


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
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and per-sample losses for every sample, in sample order, in one pass."""
    n = len(labels)
    logits_all: torch.Tensor | None = None
    losses = torch.empty(n, dtype=torch.float32, device=labels.device)
    for idx in batches:
        idx_dev = idx.to(labels.device)
        with autocast():
            logits = forward(inputs(idx)).float()
        if logits_all is None:
            logits_all = torch.empty((n, logits.shape[1]), dtype=torch.float32, device=logits.device)
        logits_all[idx_dev] = logits
        losses[idx_dev] = criterion(logits, labels[idx_dev]).float()
    if logits_all is None:
        raise TrainingError("The valid split is empty: there is nothing to evaluate. Give the data a valid split.")
    return logits_all.cpu().numpy(), losses.cpu().numpy()
