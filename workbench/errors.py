"""One error family for everything a user can get wrong.

Each error is raised where the bad input enters (data, config, checkpoint), before any state
changes, and its message names the problem and the fix. The subclasses also derive from the
matching built-in (``ValueError``, ``FileNotFoundError``, ...) so generic handlers still work.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorkbenchError(Exception):
    """Base class: every error workbench raises on purpose."""


class DataError(WorkbenchError, ValueError):
    """The data given cannot be used as it is (missing column, NaN labels, one class, ...)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A path, file or dataset that was named does not exist."""


class MissingDependencyError(WorkbenchError, ImportError):
    """An optional package is not installed; the message gives the exact install line."""


class HubUnavailableError(WorkbenchError, ConnectionError):
    """A model or dataset hub could not be reached; the message names the offline alternatives."""


class ConfigError(WorkbenchError, ValueError):
    """A setting is unknown or out of range (optimizer name, lr, batch size, block name, ...)."""


class CheckpointError(WorkbenchError, ValueError):
    """A checkpoint is corrupt or does not match the session it is loaded into."""


class TrainingError(WorkbenchError, RuntimeError):
    """Training stopped on a fault (non-finite loss, out of memory); weights were kept."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for close matches of `name`, or '' when there are none."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " Did you mean: " + ", ".join(repr(lowered[m]) for m in matches) + "?"
