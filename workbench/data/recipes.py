"""Data made again from its recipe: the calls that built it (`data.recipe`), replayed.

wb.load_data, Data.from_folder, from_torchvision and from_hf record themselves, and so does
`.subset` and `.with_label_noise`; a checkpoint, `session.to_code()` and a launched script rebuild
the same data from them. A recipe read from a file names only the calls in `calls()` with arguments
those calls take (`check` says which is wrong before anything runs).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError


METHODS = ("subset", "with_label_noise")  # Data methods a recipe applies after its loader


def calls() -> dict[str, Callable[..., Any]]:
    """The calls a recipe may name: its first step one of the loaders, then any number of METHODS."""
    from . import Data, load_data

    return {"wb.load_data": load_data, "wb.Data.from_folder": Data.from_folder,
            "wb.Data.from_torchvision": Data.from_torchvision, "wb.Data.from_hf": Data.from_hf,
            "subset": Data.subset, "with_label_noise": Data.with_label_noise}


def check(recipe: Any, where: str = "The data recipe") -> list[dict[str, Any]]:
    """The recipe as plain data, each step a known call whose arguments it takes (bound against its
    signature, nothing run). ConfigError naming the step and what is wrong."""
    from ..train.codegen import plain

    known = calls()
    if not isinstance(recipe, list) or not recipe:
        raise ConfigError(f"{where} must be a non-empty list of calls, got {type(recipe).__name__}.")
    out = []
    for i, step in enumerate(recipe):
        if not isinstance(step, dict) or set(step) - {"call", "args", "kwargs"}:
            raise ConfigError(f"{where}, step {i}, must be a dict of call, args and kwargs; got {str(step)[:80]!r}.")
        name, args, kwargs = step.get("call"), step.get("args", []), step.get("kwargs", {})
        first = i == 0
        if name not in known or (name in METHODS) == first:
            allowed = ("a loader (" + ", ".join(k for k in known if k not in METHODS) + ")" if first
                       else " or ".join(repr(m) for m in METHODS))
            raise ConfigError(f"{where}, step {i}, calls {str(name)[:60]!r}; that step can only be {allowed}.")
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ConfigError(f"{where}, step {i} ({name}): args must be a list and kwargs a dict.")
        args, kwargs = plain(args, f"{where}, step {i}, args"), plain(kwargs, f"{where}, step {i}, kwargs")
        try:
            inspect.signature(known[name]).bind(*(([None] if name in METHODS else []) + args), **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}, step {i}: {name} does not take these arguments ({exc}).") from exc
        out.append({"call": name, "args": args, "kwargs": kwargs} if "args" in step else {"call": name, "kwargs": kwargs})
    return out


def replay(recipe: list[dict[str, Any]]):
    """The Data the recipe describes (same splits: every call is seeded)."""
    known = calls()
    data = None
    for step in check(recipe):
        if step["call"] in METHODS:
            data = getattr(data, step["call"])(**step["kwargs"])
        else:
            data = known[step["call"]](*step.get("args", []), **step["kwargs"])
    return data
