"""Blocks follow the forward pass: which parameter is used first, on one dummy input.

`trace` runs the module once (eval mode, no grad) and records, by parameter *object*, the order in
which parameters are first used, and the input shape of every module with parameters. It runs
shape-only first (meta-device stand-ins for the weights: no arithmetic, ~50 ms for a CNN, where a
first real forward costs ~1 s of oneDNN set-up here) and falls back to a real forward on the module's device when the
forward needs values (data-dependent ops such as T5's end-of-sequence check).

`arrange` turns a library's description of its structure (units of parameters, possibly
overlapping where modules are shared) into the final blocks: each parameter object in exactly
one block (a shared one in the first block in forward order that holds it), blocks in forward
order, lone parameters joined to the block that consumes them, norm-only and unused units folded
into a neighbour, "stem" first and "head" last, the others named by their module paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, *(
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))  # fmt: skip


@dataclass
class Trace:
    """What one dummy forward showed. Times count parameters: `first_use[id(p)] = i` means p was the
    i-th parameter to be used; `spans[path] = (a, b)` means that module's first call began when
    a parameters had been used and ended when b had."""

    first_use: dict[int, int]  # id(parameter) -> index of its first use
    input_shapes: dict[str, tuple[int, ...]]  # module path (modules with parameters) -> first input's shape
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    output: Any = None  # the forward's result (meta tensors when shape-only)

    def when(self, params: Iterable[nn.Parameter]) -> float:
        """The first use of any of `params` (inf when none is used)."""
        return min((self.first_use.get(id(p), math.inf) for p in params), default=math.inf)


class _FirstUse(TorchFunctionMode):
    """Records the first torch call that receives each watched tensor (directly or in a list)."""

    def __init__(self, watched: dict[int, int]) -> None:
        super().__init__()
        self.watched = watched  # id(tensor the forward sees) -> id(real parameter)
        self.first: dict[int, int] = {}

    def _see(self, value: Any) -> None:
        real = self.watched.get(id(value))
        if real is not None and real not in self.first:
            self.first[real] = len(self.first)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            if isinstance(value, (list, tuple)):
                for item in value:
                    self._see(item)
            else:
                self._see(value)
        return func(*args, **kwargs)


def _module_device(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _to(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {k: _to(value[k], device) for k in value.keys()}  # noqa: SIM118 - BatchEncoding is no dict
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def trace(module: nn.Module, args: tuple = (), kwargs: dict | None = None, real: bool = False) -> Trace:
    """One forward of `module(*args, **kwargs)` recording first uses, module spans, input shapes.

    Shape-only unless `real`; a shape-only pass that fails is retried for real. A module built
    on the meta device whose forward needs values gives an empty trace (blocks then follow
    registration order; only shape-only builds such as the picker's parameter counts do that).
    The train/eval flags are restored afterwards.
    """
    kwargs = kwargs or {}
    modes = [(m, m.training) for m in module.modules()]
    rec = _Recorder()
    handles = []
    for path, m in module.named_modules():
        handles += [m.register_forward_pre_hook(rec.before(path, m)), m.register_forward_hook(rec.after(path))]
    module.eval()
    try:
        device = _module_device(module)
        if not real and device.type != "meta":
            try:
                return _shape_only(module, args, kwargs, rec)
            except Exception:  # noqa: BLE001 - any failure of the cheap pass: do it for real
                rec.clear()
        rec.mode = _FirstUse({id(p): id(p) for p in module.parameters()})
        try:
            with torch.no_grad(), rec.mode:
                out = module(*_to(args, device), **_to(kwargs, device))
        except Exception:
            if device.type != "meta":
                raise
            return Trace({}, {})
        return rec.result(out)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training


class _Recorder:
    """Forward hooks: each module's first span and, for modules with parameters, first input shape."""

    def __init__(self) -> None:
        self.mode: _FirstUse | None = None
        self.clear()

    def clear(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.starts: dict[str, int] = {}
        self.spans: dict[str, tuple[int, int]] = {}

    def _now(self) -> int:
        return len(self.mode.first) if self.mode is not None else 0

    def before(self, path: str, module: nn.Module) -> Callable:
        has_params = any(True for _ in module.parameters(recurse=False))

        def hook(_module: nn.Module, args: tuple) -> None:
            if path not in self.starts:
                self.starts[path] = self._now()
                if has_params and args and isinstance(args[0], torch.Tensor):
                    self.shapes[path] = tuple(args[0].shape)

        return hook

    def after(self, path: str) -> Callable:
        def hook(_module: nn.Module, _args: tuple, _out: Any) -> None:
            if path not in self.spans and path in self.starts:
                self.spans[path] = (self.starts[path], self._now())

        return hook

    def result(self, out: Any) -> Trace:
        return Trace(dict(self.mode.first), dict(self.shapes), dict(self.spans), out)


def _shape_only(module: nn.Module, args: tuple, kwargs: dict, rec: _Recorder) -> Trace:
    """The forward with meta-device stand-ins for every parameter and buffer, swapped in and back.

    (torch.func.functional_call would do this, but it leaves the stand-ins in place in a module
    registered under two names, such as a head shared by two classifiers: torch 2.14.)
    """
    saved: list[tuple[dict, str, torch.Tensor]] = []
    made: dict[int, torch.Tensor] = {}
    watched: dict[int, int] = {}
    try:
        for m in module.modules():
            for table in (m._parameters, m._buffers):  # what nn.Module attribute lookup reads
                for name, value in table.items():
                    if value is None:
                        continue
                    if id(value) not in made:
                        stand_in = torch.empty_like(value, device="meta")
                        if isinstance(value, nn.Parameter):
                            stand_in = nn.Parameter(stand_in, requires_grad=value.requires_grad)
                            watched[id(stand_in)] = id(value)
                        made[id(value)] = stand_in
                    saved.append((table, name, value))
                    table[name] = made[id(value)]
        rec.mode = _FirstUse(watched)
        with torch.no_grad(), rec.mode:
            out = module(*_to(args, "meta"), **_to(kwargs, "meta"))
        return rec.result(out)
    finally:
        for table, name, value in reversed(saved):
            table[name] = value


# ------------------------------------------------------------------------------ arrangement
@dataclass
class Unit:
    """A candidate block from a library's description: its parameters (by identity) and its role.

    role: "stem" (merged into the first block), "stage" (a block of its own), "extra" (a block
    of its own unless norm-only or unused), "lone" (direct parameters, e.g. a class token: joined
    to the next block in forward order).
    """

    params: list[nn.Parameter]
    role: str = "stage"
    label: str | None = None  # a fixed name (else named from module paths)
    _ids: set[int] = field(default_factory=set, repr=False)


def aliases(module: nn.Module) -> dict[str, nn.Parameter]:
    """Every name a parameter has (shared modules give one object several names)."""
    return dict(module.named_parameters(remove_duplicate=False))


def owners(module: nn.Module) -> dict[int, nn.Module]:
    """id(parameter) -> the first module that holds it directly."""
    out: dict[int, nn.Module] = {}
    for m in module.modules():
        for p in m.parameters(recurse=False):
            out.setdefault(id(p), m)
    return out


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORMS) or "norm" in type(module).__name__.lower()


def arrange(
    module: nn.Module,
    units: Sequence[Unit],
    head: Sequence[nn.Parameter],
    traced: Trace,
    strip: str = "",
) -> dict[str, tuple[str, ...]]:
    """Final blocks {name: canonical parameter names}, stem first, head last (see module doc)."""
    canonical = {id(p): n for n, p in module.named_parameters()}
    position = {pid: i for i, pid in enumerate(canonical)}
    head_ids = {id(p) for p in head}
    owner = owners(module)

    # 1. a parameter listed in several units stays in the one used first in the forward
    candidates = [u for u in units if u.params]
    for u in candidates:  # (a description read before the classifier was replaced names its old weights)
        u._ids = {id(p) for p in u.params if id(p) in canonical} - head_ids
    when = {id(u): _when(u, traced, position) for u in candidates}
    taken: set[int] = set()
    for u in sorted(candidates, key=lambda u: when[id(u)]):
        u._ids -= taken
        taken |= u._ids
    missing = [pid for pid in canonical if pid not in taken and pid not in head_ids]
    if missing:
        raise ConfigError(
            f"Block discovery failed: {len(missing)} parameters belong to no block (e.g. {canonical[missing[0]]!r})."
        )
    units = [u for u in candidates if u._ids]
    for u in units:
        when[id(u)] = _when(u, traced, position)
    _check_head_last(head_ids, taken, traced, canonical)

    # 2. forward order; units never used keep their place after the unit registered before them
    used = sorted((u for u in units if when[id(u)][0] < math.inf), key=lambda u: when[id(u)])
    for u in sorted((u for u in units if when[id(u)][0] == math.inf), key=lambda u: when[id(u)][1]):
        before = [i for i, v in enumerate(used) if when[id(v)][1] < when[id(u)][1]]
        used.insert(before[-1] + 1 if before else 0, u)
        u.role = "unused"

    # 3. merge: stem units into one; lone parameters into the next unit; norm-only / unused into the previous
    merged: list[Unit] = []
    for u in used:
        if merged and u.role == "stem" and merged[-1].role == "stem":
            merged[-1]._ids |= u._ids
        else:
            merged.append(u)
    merged = _join_lone(merged)
    out: list[Unit] = []
    for u in merged:
        foldable = u.role == "unused" or (u.role == "extra" and all(is_norm(owner[p]) for p in u._ids))
        if out and foldable:
            out[-1]._ids |= u._ids
        else:
            out.append(u)
    return _named(module, out, head_ids, canonical, strip)


def _check_head_last(head: set[int], body: set[int], traced: Trace, canonical: dict[int, str]) -> None:
    """The classifier must be the last layer with parameters: the model's output is its output."""
    start = min((traced.first_use.get(pid, math.inf) for pid in head), default=math.inf)
    later = [pid for pid in body if traced.first_use.get(pid, -1) > start]
    if later:
        raise ConfigError(
            f"Block discovery failed: {canonical[later[0]]!r} (and {len(later) - 1} more) run after the "
            f"classifier {canonical[next(iter(head))]!r}, so the classifier's output is not the model's "
            "output (an auxiliary head, or layers after the classifier) and it cannot be given a new head."
        )


def _when(u: Unit, traced: Trace, position: dict[int, int]) -> tuple[float, int]:
    first = min((traced.first_use.get(pid, math.inf) for pid in u._ids), default=math.inf)
    return first, min((position[pid] for pid in u._ids), default=0)


def _join_lone(units: list[Unit]) -> list[Unit]:
    """Lone parameters (a class token, a position embedding) join the stem while no other block
    has run yet, else the next block: the one that consumes them."""
    out: list[Unit] = []
    pending: set[int] = set()
    for u in units:
        if u.role == "lone":
            if out and out[-1].role == "stem" and len(out) == 1:
                out[-1]._ids |= u._ids
            else:
                pending |= u._ids
            continue
        u._ids |= pending
        pending = set()
        out.append(u)
    if pending:
        if not out:
            out.append(Unit([], role="stem", _ids=pending))
        else:
            out[-1]._ids |= pending
    return out


def roots(group: Sequence[str], owner: dict[str, object], spans: dict[str, set] | None = None) -> list[str]:
    """Highest module paths whose parameters all belong to `group`'s owner, in order of appearance.

    Used to name a group of parameters: ``blocks.6.0.conv_pw.weight`` .. ``bn2.bias`` -> ["blocks.6",
    "conv_head", "bn2"] when blocks.6, conv_head and bn2 lie wholly in that group.
    """
    spans = spans if spans is not None else _prefix_owners(owner)
    out: list[str] = []
    for name in group:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if len(spans[prefix]) == 1:
                if prefix not in out:
                    out.append(prefix)
                break
    return out


def _prefix_owners(owner: dict[str, object]) -> dict[str, set]:
    """Module path -> the set of groups its parameters belong to (one pass over all names)."""
    out: dict[str, set] = {}
    for name, key in owner.items():
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            out.setdefault(".".join(parts[:i]), set()).add(key)
    return out


def _named(module: nn.Module, units: list[Unit], head_ids: set[int], canonical: dict[int, str],
           strip: str) -> dict[str, tuple[str, ...]]:  # fmt: skip
    order = list(canonical)
    groups = [[canonical[pid] for pid in order if pid in u._ids] for u in units]
    head = [canonical[pid] for pid in order if pid in head_ids]
    owner = {n: i for i, g in enumerate(groups) for n in g}
    owner.update({n: "head" for n in head})
    spans = _prefix_owners(owner)
    blocks: dict[str, tuple[str, ...]] = {}
    for i, (u, g) in enumerate(zip(units, groups)):
        name = "stem" if i == 0 else u.label or _label(roots(g, owner, spans), strip)
        if name in blocks or name == "head":  # e.g. a module called "head" that is not the classifier
            name = _label(list(dict.fromkeys(n.rpartition(".")[0] or n for n in g)), strip)
        if name in blocks or name == "head":
            raise ConfigError(f"Block discovery failed: two blocks would be called {name!r}.")
        blocks[name] = tuple(g)
    if not head:
        raise ConfigError("Block discovery failed: the head has no parameters.")
    blocks["head"] = tuple(head)
    return blocks


def _label(paths: Sequence[str], strip: str) -> str:
    if strip:
        paths = [p[len(strip) + 1 :] if p.startswith(strip + ".") else p for p in paths]
    return "+".join(paths)
