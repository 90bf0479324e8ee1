"""LR range test (Smith 2015; fastai's lr_find): raise the LR exponentially, batch by batch,
record the smoothed loss, stop when it explodes, then put everything back as it was."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .loop import _train_batch, rows_of
from .optim import suggest_lr


@dataclass(frozen=True)
class LRFinderResult:
    lrs: np.ndarray
    losses: np.ndarray  # smoothed (exponential moving average, bias-corrected)
    raw_losses: np.ndarray
    suggestion: float  # steepest descent of the smoothed curve

    def __repr__(self) -> str:
        return f"LRFinderResult({len(self.lrs)} steps, {self.lrs[0]:.1e}..{self.lrs[-1]:.1e}, suggestion={self.suggestion:.2e})"


def find_lr(session, start: float = 1e-7, end: float = 10.0, steps: int = 100, smoothing: float = 0.98) -> LRFinderResult:
    """Run the range test on `session`; its weights, optimizer state and step count are restored."""
    if not 0 < start < end:
        raise ConfigError(f"find_lr needs 0 < start < end, got start={start}, end={end}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 5:
        raise ConfigError(f"find_lr needs steps >= 5, got {steps!r}.")
    if session.running:
        raise ConfigError("find_lr cannot run while the session is training; stop it first.")
    weights = copy.deepcopy(session.model.module.state_dict())
    opt_state = copy.deepcopy(session.optimizer.state_dict())
    lrs = np.geomspace(start, end, steps)
    raw: list[float] = []
    smoothed: list[float] = []
    try:
        with torch.random.fork_rng(devices=session._rng_devices()):
            torch.manual_seed(session.config.seed)
            fast, _ = session.path()
            plan = session._plan(session.epoch + 1, fast, session.criterion().to(session.device),
                                 torch.Generator().manual_seed(session.config.seed))
            session._set_train_mode(fast)
            trainable = [p for g in session.optimizer.param_groups for p in g["params"]]
            batches, labels_of = plan.batches, rows_of(plan.labels)
            avg, best = 0.0, float("inf")
            for i, lr in enumerate(lrs):
                for g in session.optimizer.param_groups:  # keep the discriminative ratios
                    g["lr"] = lr * g["base_lr"] / session.config.lr
                idx = batches[i % len(batches)]
                loss, _ = _train_batch(plan, idx, labels_of(idx), trainable, None)
                if loss is None:  # non-finite: the curve ends here
                    break
                value = loss.item()  # the curve needs every step's value (a short run: sync is fine)
                raw.append(value)
                avg = smoothing * avg + (1 - smoothing) * value
                smooth = avg / (1 - smoothing ** (i + 1))
                smoothed.append(smooth)
                best = min(best, smooth)
                if smooth > 4 * best:
                    break
    finally:
        session.model.module.load_state_dict(weights)
        session.optimizer.load_state_dict(opt_state)
    n = len(smoothed)
    return LRFinderResult(lrs[:n], np.array(smoothed), np.array(raw), suggest_lr(lrs[:n], smoothed))
