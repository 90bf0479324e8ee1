"""Who holds a Session (a fit, an LR range test, a state load), and the flags its loop checks.

Training runs in a background thread when a widget drives it, so stop and pause are
`threading.Event`s read between batches, and one lock makes fit, find_lr and load_state_dict
exclusive: a second one is refused with a message naming what holds the session, in which thread,
and what was refused. Reads that would see (or disturb) a half-trained state from another thread
(state_dict, features, predict) are refused the same way; the training thread itself (its event
handlers) may read between batches and epochs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from ..errors import ConfigError


class RunControl:
    """The session's lock (with what holds it) and its stop / pause flags."""

    def __init__(self) -> None:
        self.stop_flag = threading.Event()
        self.go = threading.Event()  # cleared while paused
        self.go.set()
        self._lock = threading.Lock()
        self.holder = ""
        self._owner: threading.Thread | None = None  # the thread holding the session
        self.stop_reason = "stopped by user"
        self.stop_after: int | None = None  # batches after which the current epoch stops (a replayed stop)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def paused(self) -> bool:
        return self.busy and not self.go.is_set()

    def acquire(self, what: str) -> None:
        """Hold the session for `what`, or ConfigError naming what already holds it."""
        if not self._lock.acquire(blocking=False):
            raise self.busy_error(f"start {what}")
        self.holder, self._owner = what, threading.current_thread()
        self.go.set()  # a pause() from before this run does not hold it

    def release(self) -> None:
        self.stop_flag.clear()
        self.stop_reason = "stopped by user"
        self.stop_after = None
        self.holder, self._owner = "", None
        self._lock.release()

    def busy_error(self, attempt: str) -> ConfigError:
        """'Cannot <attempt>: this session is busy <what> (in <thread>). ...': what runs, and the fix."""
        owner = self._owner
        where = ("" if owner is None else " in this thread (called from its own event handler)"
                 if owner is threading.current_thread() else f" in thread {owner.name!r}")
        holder = self.holder or "with another call"
        return ConfigError(f"Cannot {attempt}: this session is busy {holder}{where}. Wait for it to end "
                           "(session.running turns False), or call session.stop() to end it after this batch.")

    def check_idle(self, attempt: str) -> None:
        """Refuse `attempt` while another thread holds the session (its weights may be mid-update); the
        holding thread itself (its event handlers) may go on."""
        owner = self._owner
        if self.busy and owner is not None and owner is not threading.current_thread():
            raise self.busy_error(attempt)

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[None]:
        self.acquire(what)
        try:
            yield
        finally:
            self.release()

    @contextlib.contextmanager
    def unless_busy(self, what: str = "applying a change") -> Iterator[bool]:
        """True with the session held (apply a change now); False while something runs (queue it)."""
        free = self._lock.acquire(blocking=False)
        if free:
            self.holder, self._owner = what, threading.current_thread()
        try:
            yield free
        finally:
            if free:
                self.holder, self._owner = "", None
                self._lock.release()

    def stop(self, reason: str = "stopped by user") -> None:
        """Stop the run after its current batch; a paused run stops too."""
        if self.busy:
            self.stop_reason = reason
            self.stop_flag.set()
        self.go.set()

    @contextlib.contextmanager
    def interrupt_stops(self) -> Iterator[None]:
        """While a run holds the session in the main thread, the notebook's Interrupt button
        (SIGINT) stops it after the current batch, like stop(), instead of raising inside a step
        (where the weights could be half-way through an update); a second press interrupts as usual."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)

            def on_interrupt(signum, frame) -> None:
                self.stop("interrupted (Interrupt button / Ctrl-C)")
                signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)

            try:
                signal.signal(signal.SIGINT, on_interrupt)
            except (ValueError, OSError):  # not allowed here (e.g. an embedded interpreter)
                previous = None
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def wait_while_paused(self) -> float:
        """Called by the loop between batches: block while paused (until resume() or stop()); returns
        the seconds held, which the epoch's time and speed leave out."""
        if self.go.is_set():
            return 0.0
        start = time.perf_counter()
        while not self.go.is_set() and not self.stop_flag.is_set():
            self.go.wait(0.05)
        return time.perf_counter() - start

    def pause(self) -> None:
        """Hold a running loop between batches. With nothing running it does nothing, so a later
        run never starts held (that made the next fit() in a cell hang silently)."""
        if self.busy:
            self.go.clear()

    def resume(self) -> None:
        self.go.set()
