"""A sweep's search space: settings -> choices or ranges, in one JSON-able form.

Written by a person as `{"lr": (1e-4, 1e-1), "optimizer": ["adamw", "sgd"]}` or with explicit
dicts (`{"lr": {"low": 1e-4, "high": 1e-1, "log": True}}`); kept as the explicit form, which a
recording holds and `to_code()` prints. A (low, high) range of positive numbers spanning 100x or
more is searched on a log scale (learning rates, weight decays), otherwise uniformly; two ints give
an int range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

from ..errors import ConfigError

SCALARS = (str, int, float, bool, type(None))
LOG_SPAN = 100.0  # a positive range at least this wide (high / low) is searched on a log scale


def canonical_space(space: Any) -> dict[str, dict[str, Any]]:
    """The explicit form of `space`, every entry checked (names, bounds, choices)."""
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("space must be a non-empty dict of setting -> choices or range, e.g. "
                          "{'lr': (1e-4, 1e-1), 'optimizer': ['adamw', 'sgd']}.")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"space key {name!r} must be a setting name such as 'lr' or 'weight_decay'.")
        out[name] = _entry(name, spec)
    return out


def _entry(name: str, spec: Any) -> dict[str, Any]:
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, SCALARS) for v in spec):
            raise ConfigError(f"space[{name!r}]: a list is the choices and must hold plain values (str, number, bool, "
                              f"None), at least one; got {spec!r}.")
        if len({repr(v) for v in spec}) != len(spec):
            raise ConfigError(f"space[{name!r}] lists a choice twice: {spec!r}.")
        return {"choices": list(spec)}
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ConfigError(f"space[{name!r}]: a tuple is a range (low, high); got {spec!r}. Use a list for choices.")
        low, high = spec
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
        log = _number(name, low) > 0 and _number(name, high) / _number(name, low) >= LOG_SPAN
        spec = {"low": low, "high": high, "log": log, "int": ints}
    if isinstance(spec, Mapping):
        if "choices" in spec:
            if set(spec) != {"choices"} or not isinstance(spec["choices"], list):
                raise ConfigError(f"space[{name!r}]: {{'choices': [...]}} takes a list and nothing else.")
            return _entry(name, list(spec["choices"]))
        unknown = sorted(set(spec) - {"low", "high", "log", "int"})
        if unknown or not {"low", "high"} <= set(spec):
            raise ConfigError(f"space[{name!r}]: a range is {{'low': .., 'high': .., 'log': bool, 'int': bool}}; "
                              f"got {dict(spec)!r}.")
        low, high = _number(name, spec["low"]), _number(name, spec["high"])
        log, ints = spec.get("log", False), spec.get("int", False)
        if not isinstance(log, bool) or not isinstance(ints, bool):
            raise ConfigError(f"space[{name!r}]: 'log' and 'int' are True or False.")
        if not low < high:
            raise ConfigError(f"space[{name!r}]: low ({low}) must be below high ({high}).")
        if log and low <= 0:
            raise ConfigError(f"space[{name!r}]: a log range needs low > 0; got {low}.")
        if ints and not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(f"space[{name!r}]: an int range needs whole bounds; got {low}, {high}.")
        return {"low": int(low) if ints else float(low), "high": int(high) if ints else float(high), "log": log, "int": ints}
    raise ConfigError(f"space[{name!r}] = {spec!r}: use a list of choices, a (low, high) range or "
                      "{'low': .., 'high': .., 'log': True}.")


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v):
        raise ConfigError(f"space[{name!r}]: range bounds must be finite numbers; got {v!r}.")
    return float(v)


def check_settings(space: dict[str, dict[str, Any]], config) -> None:
    """Every name is a setting and every bound / choice a valid value for it (TrainConfig checks)."""
    for name, spec in space.items():
        values = spec["choices"] if "choices" in spec else [spec["low"], spec["high"]]
        for v in values:
            try:
                config.replace(**{name: v})
            except ConfigError as exc:
                raise ConfigError(f"space[{name!r}] holds {v!r}, which the session refuses: {exc}") from None


def suggest_params(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one value per setting from an Optuna trial."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["int"]:
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
    return params
