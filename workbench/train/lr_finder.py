"""LR range test (Smith 2015; fastai's lr_find): raise the LR exponentially, batch by batch,
record the smoothed loss, stop when it explodes. `Session.find_lr` runs it on its own steps and
puts the weights and optimizer state back afterwards; the test itself is a pure function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..validate import integer, number
from .optim import suggest_lr


@dataclass(frozen=True)
class LRFinderResult:
    lrs: np.ndarray
    losses: np.ndarray  # smoothed (exponential moving average, bias-corrected)
    raw_losses: np.ndarray
    suggestion: float  # steepest descent of the smoothed curve

    def __repr__(self) -> str:
        return f"LRFinderResult({len(self.lrs)} steps, {self.lrs[0]:.1e}..{self.lrs[-1]:.1e}, suggestion={self.suggestion:.2e})"


def check_range(start: float, end: float, steps: int) -> np.ndarray:
    """The LRs to try, geometrically spaced; ConfigError for a range that cannot be a test."""
    start = number("find_lr start", start, low=0, low_open=True, hint="e.g. 1e-7.")
    end = number("find_lr end", end, low=0, low_open=True, hint="e.g. 10.")
    steps = integer("find_lr steps", steps, low=5, hint="e.g. 100.")
    if not start < end:
        raise ConfigError(f"find_lr needs start < end, got start={start:g}, end={end:g}.")
    return np.geomspace(start, end, steps)


def range_test(step: Callable[[int, float], float | None], lrs: np.ndarray, smoothing: float = 0.98,
               stopped: Callable[[], bool] = lambda: False) -> LRFinderResult:
    """Call step(i, lr) for each LR until the loss goes non-finite (None) or explodes (4x the best
    smoothed loss), or `stopped()` says so; an interrupt ends the curve where it got to."""
    raw: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, float("inf")
    try:
        for i, lr in enumerate(lrs):
            if stopped():
                break
            value = step(i, float(lr))
            if value is None:  # non-finite: the curve ends here
                break
            raw.append(value)
            avg = smoothing * avg + (1 - smoothing) * value
            smooth = avg / (1 - smoothing ** (i + 1))
            smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > 4 * best:
                break
    except KeyboardInterrupt:  # the notebook's Interrupt button: keep the curve so far
        pass
    n = len(smoothed)
    if n == 0:
        raise ConfigError("The LR range test took no step (the first loss was not finite, or it was stopped at "
                          "once); try a smaller start LR, e.g. session.find_lr(start=1e-8).")
    return LRFinderResult(lrs[:n], np.array(smoothed), np.array(raw), suggest_lr(lrs[:n], smoothed))
