"""Checks for settings: one place that says what a number, a flag or a choice must be.

Each check returns the value in its plain Python type (numpy scalars are accepted and converted)
or raises ConfigError naming the setting, what it got and what to pass instead. Booleans are
never numbers here (`lr=True` is a mistake, not 1.0), strings never numbers (`"0.1"`), and NaN
or infinity is refused wherever a finite number is needed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from .errors import ConfigError, suggest

T = TypeVar("T")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def is_number(value: Any) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """A finite float within [low, high] (open ends where asked)."""
    if not is_number(value) or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {_describe(value)}. {hint}".rstrip())
    v = float(value)
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
        where = f"in {lo}, {hi}" if low is not None and high is not None else (
            f"{'>' if low_open else '>='} {low:g}" if low is not None else f"{'<' if high_open else '<='} {high:g}")
        raise ConfigError(f"{name} must be {where}, got {v:g}. {hint}".rstrip())
    return v


def integer(name: str, value: Any, *, low: int | None = None, hint: str = "") -> int:
    """An int (numpy integers accepted), at least `low`."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok:
        raise ConfigError(f"{name} must be a whole number, got {_describe(value)}. {hint}".rstrip())
    v = int(value)
    if low is not None and v < low:
        raise ConfigError(f"{name} must be >= {low}, got {v}. {hint}".rstrip())
    return v


def split_position(value: Any, n: int, split: str, where: str) -> int:
    """A sample's position 0..n-1 in `split` ("train" or "valid") as an int; DataError naming the
    split, the range and `where` the positions are shown. Booleans are not positions."""
    from .errors import DataError

    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and 0 <= int(value) < n
    if not ok:
        raise DataError(f"{_describe(value)} is not a {split} sample: use a position 0..{n - 1} in the {split} "
                        f"split ({where}).")
    return int(value)


def boolean(name: str, value: Any, hint: str = "") -> bool:
    """True or False (numpy booleans accepted); 0/1 and strings are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ConfigError(f"{name} must be True or False, got {_describe(value)}." + (f" {hint}" if hint else ""))


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of `choices` (case-sensitive names; close matches suggested)."""
    if not isinstance(value, str) or value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise ConfigError(f"Unknown {name} {_describe(value)}.{hint} Choose one of: {', '.join(choices)}.")
    return value


def from_mapping(cls: type[T], value: Any, name: str, *, shorthand: str | None = None) -> T:
    """An instance of dataclass `cls` from itself, a dict of its fields, or (with `shorthand`) a
    str naming that field: `schedule="cosine"` -> Schedule(name="cosine"). Unknown keys are
    refused with close matches, before anything is built."""
    if isinstance(value, cls):
        return value
    if shorthand is not None and isinstance(value, str):
        return cls(**{shorthand: value})
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not isinstance(value, Mapping):
        example = f"{name}=dict({fields[0]}=...)"
        also = f", a {shorthand} string" if shorthand else ""
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise ConfigError(f"{name} must be {article} {cls.__name__}{also} or a dict of its fields, got {_describe(value)}. "
                          f"E.g. {example}. Fields: {', '.join(fields)}.")
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{name} has no field {key!r}.{suggest(str(key), fields)} Fields: {', '.join(fields)}.")
    return cls(**value)


def jsonable(value: Any) -> Any:
    """Settings as plain JSON values (dataclasses as dicts, tuples as lists, numpy scalars as
    Python numbers): what a recording or a checkpoint can hold and a code cell can print."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


# ---- positions, ids, counts and classes: what analysis and the widgets' public twins take ---------
def whole(name: str, value: Any, hint: str = "") -> int:
    """An int (numpy integers accepted). Never coerced: 2.7, 2.0, True and "2" are refused, since a
    silent int() would show another sample or class than the one asked for."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a whole number (an int), got {_describe(value)}. {hint}".rstrip())
    return int(value)


def position(name: str, value: Any, size: int, *, hint: str = "", error: type[Exception] = ConfigError) -> int:
    """A position 0..size-1 (negatives are refused: positions are what tables and galleries show)."""
    v = whole(name, value, hint)
    if not 0 <= v < size:
        span = f"0..{size - 1}" if size else "none: it is empty"
        raise error(f"{name}={v} is out of range: positions are {span}. {hint}".rstrip())
    return v


def sample_id(name: str, value: Any, known: Mapping[int, Any] | set[int], *, hint: str = "",
              error: type[Exception] = ConfigError) -> int:
    """An id that must be one of `known` (the ids of some predictions)."""
    v = whole(name, value, hint)
    if v not in known:
        raise error(f"No sample with id {v} in these predictions ({name}). {hint}".rstrip())
    return v


def class_index(name: str, value: Any, classes: Sequence[str]) -> int:
    """A class by its name or its index 0..k-1."""
    if isinstance(value, str):
        if value not in classes:
            raise ConfigError(f"Unknown class {value!r} ({name}).{suggest(value, list(classes))} "
                              f"Classes: {', '.join(map(str, list(classes)[:20]))}.")
        return list(classes).index(value)
    return position(name, value, len(classes), hint="Give a class name or its index.")
