"""The runs of this kernel: every Session registers itself, so a Compare view can list them.

Weak references only: a session nobody holds any more leaves the list with it.
"""

from __future__ import annotations

import itertools
import threading
import weakref

_RUNS: list[weakref.ReferenceType] = []
_STATUS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> a word for lists ("pruned")
_COUNTER = itertools.count(1)
_LOCK = threading.Lock()


def register(session) -> str:
    """Add `session` to this kernel's runs; returns a default name ("run 3") for one without a name."""
    with _LOCK:
        _RUNS.append(weakref.ref(session))
        return f"run {next(_COUNTER)}"


def runs() -> list:
    """The live sessions of this kernel, oldest first."""
    with _LOCK:
        alive = [(r, r()) for r in _RUNS]
        _RUNS[:] = [r for r, s in alive if s is not None]
        return [s for _, s in alive if s is not None]


def set_status(session, status: str | None) -> None:
    """Mark a run for the lists that show it (a sweep marks its trials "running", "pruned at epoch 2",
    "failed"); None clears the mark."""
    with _LOCK:
        if status is None:
            _STATUS.pop(session, None)
        else:
            _STATUS[session] = str(status)


def status(session) -> str | None:
    """The mark set_status gave `session`, or None."""
    with _LOCK:
        return _STATUS.get(session)
