"""The runs of this kernel: every Session registers itself, so a Compare view can list them.

Weak references only: a session nobody holds any more leaves the list with it.
"""

from __future__ import annotations

import itertools
import threading
import weakref

_RUNS: list[weakref.ReferenceType] = []
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
