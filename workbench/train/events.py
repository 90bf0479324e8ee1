"""The Session's event seam: named events, plain callables, small frozen payloads.

Like minGPT's `add_callback` / `trigger_callbacks`: no base class with twenty hooks. A widget is
one subscriber, a test another. A subscriber's exception never kills training silently: it is
reported through the `error` event (and, if nobody listens there, as a warning).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, suggest

EVENTS = ("fit_start", "epoch_start", "batch_end", "epoch_end", "eval_end", "fit_end", "config_change", "progress",
          "error", "review")


@dataclass(frozen=True)
class FitStart:
    epochs: int
    first_epoch: int


@dataclass(frozen=True)
class EpochStart:
    epoch: int
    trainable: tuple[str, ...]
    fast_path: bool
    path_reason: str
    num_batches: int


@dataclass(frozen=True)
class BatchEnd:
    epoch: int
    batch: int  # 1-based: batches done in this epoch
    num_batches: int
    loss: float
    lrs: tuple[float, ...]
    samples_per_s: float
    eta_s: float


@dataclass(frozen=True)
class EvalEnd:
    epoch: int
    valid_loss: float
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class FitEnd:
    epochs_done: int
    reason: str  # "finished" | "stopped" | "early stopping" | "error"


@dataclass(frozen=True)
class Progress:
    """Work that is not a training batch: the feature-cache build, the valid pass, the LR range test."""

    task: str  # "features (train)" | "features (valid)" | "disk cache (train)" | "validation" | "LR range test" | ...
    done: int
    total: int
    elapsed_s: float

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / self.done * (self.total - self.done) if self.done else float("nan")


@dataclass(frozen=True)
class ConfigChange:
    """Settings, the freeze plan or the whole state changed (views re-read the session)."""

    what: str  # "settings" | "freeze" | "state" | "pending applied"
    pending: bool = False  # True: queued while training runs, applied at the next epoch


@dataclass(frozen=True)
class ReviewChange:
    """The verify queue, the relabels or the pinned samples changed (train/dynamics_session.py)."""

    what: str  # "flag" | "keep" | "unflag" | "relabel" | "relabel applied" | "pin" | "unpin"
    ids: tuple[int, ...] = ()  # train positions (valid positions for pin / unpin)
    pending: bool = False  # True: a relabel queued while training runs, applied at the next epoch


@dataclass(frozen=True)
class ErrorEvent:
    message: str
    where: str  # "training" | "subscriber <event>"
    exception: BaseException | None = None


class EventBus:
    """Subscribers per event name; `batch_end` is throttled so a UI cannot slow training."""

    def __init__(self, batch_interval_s: float = 0.2) -> None:
        self._subscribers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)
        self._lock = threading.Lock()
        self.batch_interval_s = batch_interval_s
        self._last_batch_emit = 0.0

    def on(self, event: str, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        if event not in EVENTS:
            raise ConfigError(
                f"Unknown event {event!r}.{suggest(event, EVENTS)} Events: {', '.join(EVENTS)}."
            )
        if not callable(fn):
            raise ConfigError(f"session.on({event!r}, fn) needs a callable, got {type(fn).__name__}.")
        with self._lock:
            self._subscribers[event].append(fn)
        return fn

    def off(self, event: str, fn: Callable[[Any], None]) -> None:
        with self._lock:
            if fn in self._subscribers.get(event, []):
                self._subscribers[event].remove(fn)

    def batch_due(self, last: bool) -> bool:
        """True when a `batch_end` may be emitted now: at most every `batch_interval_s`, and the
        last batch of an epoch always (so progress reaches 100%)."""
        now = time.perf_counter()
        if last or now - self._last_batch_emit >= self.batch_interval_s:
            self._last_batch_emit = now
            return True
        return False

    def progress(self, task: str, total: int) -> Callable[[int], None]:
        """A callback `done(n)` that emits `progress` events for `task`: the first and the last
        always, others at most every `batch_interval_s` (the same throttle as batch_end)."""
        start, last = time.perf_counter(), [-1.0]

        def report(done: int) -> None:
            now = time.perf_counter()
            if done in (0, total) or now - last[0] >= self.batch_interval_s:
                last[0] = now
                self.emit("progress", Progress(task, done, total, now - start))

        return report

    def emit(self, event: str, payload: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(event, ()))
        for fn in subscribers:
            try:
                fn(payload)
            except Exception as exc:  # noqa: BLE001 - a subscriber's bug must not stop training
                self._report(f"subscriber {event}", exc)

    def _report(self, where: str, exc: Exception) -> None:
        message = f"A subscriber to {where.split()[-1]!r} raised {type(exc).__name__}: {exc}"
        with self._lock:
            handlers = list(self._subscribers.get("error", ()))
        if not handlers or where == "subscriber error":
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return
        for fn in handlers:
            try:
                fn(ErrorEvent(message=message, where=where, exception=exc))
            except Exception as inner:  # noqa: BLE001
                warnings.warn(f"{message}; the error handler raised too: {inner}", RuntimeWarning)
