"""Optimizers and LR schedules.

Schedules are pure functions of the global step: `lr = group["base_lr"] * factor(step)`. Unlike
torch's scheduler objects (which snapshot `base_lrs` per group at construction), this keeps
working when progressive unfreezing adds a param group mid-run; tests check each curve against
torch's own scheduler.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, suggest
from ..validate import choice, integer, number

OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop")
SCHEDULES = ("auto", "constant", "step", "exponential", "cosine", "onecycle")


def make_optimizer(
    name: str,
    groups: list[dict],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Build the optimizer over per-block param groups (each carries its own `lr`).

    SGD, Adam, AdamW and Adagrad use torch's fused kernels where they exist (one kernel for all
    parameters instead of a Python loop; it also lets a step be skipped on the device, see
    `skips_on_device`). RMSprop has no fused kernel.
    """
    fused = _can_fuse(groups, cuda=name != "adagrad")  # torch's fused Adagrad is CPU-only
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                               fused=fused)
    if name == "adam":  # L2 added to the gradient (coupled)
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":  # decoupled weight decay (Loshchilov & Hutter)
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"Unknown optimizer {name!r}.{suggest(name, OPTIMIZERS)} Choose one of: {', '.join(OPTIMIZERS)}.")


def _can_fuse(groups: list[dict], cuda: bool = True) -> bool | None:
    devices = ("cpu", "cuda") if cuda else ("cpu",)
    params = [p for g in groups for p in g["params"]]
    ok = bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)
    return True if ok else None  # None: torch picks its default (foreach or a loop)


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """True when `optimizer.found_inf` (a 0-d float tensor) makes `step()` a no-op on the device:
    torch's fused kernels read it (as GradScaler uses them), so no host sync is needed."""
    return bool(optimizer.defaults.get("fused")) and all(g.get("fused") for g in optimizer.param_groups)


@dataclass(frozen=True)
class Schedule:
    """An LR multiplier over training steps (batches).

    name: auto | constant | step | exponential | cosine | onecycle ("auto": one-cycle for a head on
        cached features, constant otherwise; resolved per epoch by config.auto_schedule)
    step_epochs, gamma: "step" multiplies by gamma every step_epochs epochs; "exponential" by gamma
        every epoch (both change at epoch boundaries, like torch's per-epoch StepLR/ExponentialLR).
    warmup_epochs: linear warm-up from `warmup_start` of the LR, composed with any schedule.
    pct_start, div_factor, final_div_factor: one-cycle's shape (torch OneCycleLR's defaults).
    """

    name: str = "constant"
    step_epochs: int = 1
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_start: float = 0.1
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def validate(self) -> Schedule:
        """This schedule with every field checked and in its plain type (ConfigError otherwise)."""
        name = choice("schedule", self.name, SCHEDULES)
        return dataclasses.replace(
            self, name=name,
            step_epochs=integer("schedule step_epochs", self.step_epochs, low=1, hint="The LR drops every this many epochs."),
            gamma=number("schedule gamma", self.gamma, low=0, high=1, low_open=True,
                         hint="0.1 (step) or 0.9 (exponential) are usual."),
            warmup_epochs=number("schedule warmup_epochs", self.warmup_epochs, low=0, hint="0 turns warm-up off."),
            warmup_start=number("schedule warmup_start", self.warmup_start, low=0, high=1, low_open=True,
                                hint="The share of the LR warm-up starts from, e.g. 0.1."),
            pct_start=number("schedule pct_start", self.pct_start, low=0, high=1, low_open=True, high_open=True,
                             hint="One-cycle's rising share of the run, e.g. 0.3."),
            div_factor=number("schedule div_factor", self.div_factor, low=0, low_open=True,
                              hint="One-cycle starts at lr / div_factor; 25 is usual."),
            final_div_factor=number("schedule final_div_factor", self.final_div_factor, low=0, low_open=True,
                                    hint="One-cycle ends at lr / (div_factor * final_div_factor); 1e4 is usual."),
        )

    def factor_fn(self, steps_per_epoch: int, total_epochs: int) -> Callable[[int], float]:
        """factor(step) for a run of `total_epochs` epochs of `steps_per_epoch` batches."""
        spe = max(1, steps_per_epoch)
        warm = int(round(self.warmup_epochs * spe))
        total = max(1, total_epochs * spe - warm)
        main = self._main(spe, total)

        def factor(step: int) -> float:
            if step < warm:  # torch LinearLR(start_factor, end_factor=1, total_iters=warm)
                return self.warmup_start + (1.0 - self.warmup_start) * step / warm
            return main(step - warm)

        return factor

    def _main(self, spe: int, total: int) -> Callable[[int], float]:
        if self.name == "step":
            return lambda s: self.gamma ** ((s // spe) // self.step_epochs)
        if self.name == "exponential":
            return lambda s: self.gamma ** (s // spe)
        if self.name == "cosine":  # CosineAnnealingLR(T_max=total, eta_min=0), held at 0 after
            return lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
        if self.name == "onecycle":
            return self._onecycle(total)
        return lambda s: 1.0

    def _onecycle(self, total: int) -> Callable[[int], float]:
        """torch OneCycleLR (anneal_strategy="cos"), as a fraction of max_lr = the base LR."""
        start, peak = 1.0 / self.div_factor, 1.0
        floor = start / self.final_div_factor
        up_end = float(self.pct_start * total) - 1
        down_end = float(total - 1)

        def cos_anneal(a: float, b: float, pct: float) -> float:
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)

        def factor(s: int) -> float:
            s = min(s, total - 1)
            if s <= up_end:
                return cos_anneal(start, peak, s / up_end) if up_end > 0 else peak
            return cos_anneal(peak, floor, (s - up_end) / (down_end - up_end))

        return factor


def lr_curve(schedule: Schedule, steps_per_epoch: int, epochs: int) -> np.ndarray:
    """The LR multiplier at every step of a run: what the dashboard previews before training."""
    f = schedule.factor_fn(steps_per_epoch, epochs)
    return np.array([f(s) for s in range(steps_per_epoch * epochs)])


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The LR at the steepest descent of the smoothed loss-vs-log(LR) curve (fastai's "steep").

    Skips the noisy first and last points; falls back to the LR of the minimum loss over 10.
    """
    lr_arr, loss_arr = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(loss_arr)
    lr_arr, loss_arr = lr_arr[finite], loss_arr[finite]
    if len(lr_arr) < 5:
        return float(lr_arr[np.argmin(loss_arr)] / 10) if len(lr_arr) else 1e-3
    slopes = np.gradient(loss_arr, np.log(lr_arr))
    lo, hi = len(slopes) // 10, len(slopes) - max(1, len(slopes) // 20)
    return float(lr_arr[lo + int(np.argmin(slopes[lo:hi]))])
