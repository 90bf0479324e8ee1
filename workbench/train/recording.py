"""The session as code: its recording of changes turned into a Python cell that rebuilds the run.

A Session appends every change that took effect to `session.recording`, in order: how the data
and the backbone were made, the settings and freeze plan it started with, settings and freeze
plans as they were applied (changes queued during an epoch are recorded where they took effect),
runs of epochs, LR range tests, exact head fits and relabels of train samples. Epochs are seeded from (seed, epoch), so on the
CPU the cell reproduces the weights and the history bit for bit.

A recording also comes from files (checkpoints), so it is data to check, never code: `OPS` is the
one table of what an entry may be (its op, its fields and their checks, the statements it becomes,
the calls those may make). `check_recording` refuses anything else before it is loaded, and
`to_code` writes every value as a literal through codegen, which parses the cell back and checks
it holds only those statements. A new kind of entry (a sweep, a distillation run) is a new row.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError, WorkbenchError
from .codegen import Line, Ref, assign, call, expr, literal, method, plain, render

# default keyword values left out of the printed calls
_DEFAULT_KWARGS = {"valid_fraction": 0.2, "seed": 0, "pretrained": True, "granularity": "stages", "head_dropout": 0.0,
                   "download": True}

Check = Callable[[Any, str], Any]  # (value, where) -> the value as plain data; ValueError naming the problem


# ----------------------------------------------------------------------------------- field checks
def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {type(value).__name__}")
    return str(value)


def whole(low: int) -> Check:
    def check(value: Any, where: str) -> int:
        value = plain(value, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{where} must be a whole number >= {low}, got {str(value)[:40]!r}")
        return value
    return check


def number(value: Any, where: str) -> float | int:
    value = plain(value, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {str(value)[:40]!r}")
    return value


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be True or False, got {str(value)[:40]!r}")
    return value


def optional(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def settings(value: Any, where: str) -> dict[str, Any]:
    """Settings by name: each a TrainConfig field (their values are checked in order, see below)."""
    from .config import TrainConfig

    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a dict of settings, got {type(value).__name__}")
    names = TrainConfig.__dataclass_fields__
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValueError(f"{where} names {str(unknown[0])[:40]!r}, which is not a setting")
    return plain(value, where)


def freeze_spec(value: Any, where: str) -> Any:
    """"head", "full", a list of block names, or a dict for wb.last(n) / wb.progressive(every, start)."""
    if value in ("head", "full"):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    plan = isinstance(value, dict) and value.get("kind") in ("last", "progressive")
    if plan and set(value) <= {"kind", "n", "every", "start"}:
        out = {"kind": value["kind"]}
        for key, low in (("n", 0), ("every", 1), ("start", 0)):
            if key in value:
                out[key] = whole(low)(value[key], f"{where}[{key!r}]")
        return out
    raise ValueError(f"{where} must be 'head', 'full', a list of block names or a last / progressive plan, got "
                     f"{str(value)[:60]!r}")


def relabels(value: Any, where: str) -> list[list[Any]]:
    """[[train sample id, class name], ...]: train label overrides from the next epoch (train/review.py)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of [sample id, class name] pairs")
    out = []
    for k, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{where}[{k}] must be a [sample id, class name] pair, got {str(pair)[:40]!r}")
        out.append([whole(0)(pair[0], f"{where}[{k}][0]"), text(pair[1], f"{where}[{k}][1]")])
    return out


def epoch_and_batch(value: Any, where: str) -> list[int]:
    """[epoch >= 1, batch >= 0]: where a stopped run stopped (a distillation's stop_at)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{where} must be [epoch, batch], got {str(value)[:40]!r}")
    return [whole(1)(value[0], f"{where}[0]"), whole(0)(value[1], f"{where}[1]")]


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any, where: str) -> str:
        if value not in choices:
            raise ValueError(f"{where} must be one of {', '.join(choices)}, got {str(value)[:40]!r}")
        return str(value)
    return check


def sweep_space(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """A sweep's search space in its explicit form, each name a setting and each value one it takes."""
    from .config import TrainConfig
    from .space import canonical_space, check_settings

    try:
        space = canonical_space(plain(value, where))
        check_settings(space, TrainConfig())
    except WorkbenchError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return space


def trial_steps(value: Any, where: str) -> list[dict[str, Any]]:
    """The entries an adopted trial ran after the sweep's base session (no session, no nested sweep)."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of entries, got {type(value).__name__}")
    out = [check_entry(e, k + 1) for k, e in enumerate(value)]
    if any(e["op"] == "sweep" for e in out):
        raise ValueError(f"{where} holds a sweep inside a sweep")
    return out


def data_recipe(value: Any, where: str) -> list[dict[str, Any]] | None:
    from ..data.recipes import check

    if value is None:
        return None
    try:
        return check(value, where)
    except WorkbenchError as exc:
        raise ValueError(str(exc)) from exc


def model_recipe(value: Any, where: str) -> dict[str, Any] | None:
    """wb.load_backbone(name, num_classes, **options), its arguments bound against its signature."""
    from ..models import load_backbone

    if value is None:
        return None
    if not isinstance(value, dict) or value.get("call") != "wb.load_backbone" or set(value) - {"call", "args", "kwargs"}:
        raise ValueError(f"{where} must be a wb.load_backbone call, got {str(value)[:80]!r}")
    args, kwargs = plain(value.get("args", []), where), plain(value.get("kwargs", {}), where)
    if not isinstance(args, list) or not isinstance(kwargs, dict) or len(args) != 2 or not isinstance(args[0], str):
        raise ValueError(f"{where} must name a backbone and a number of classes, got args {str(args)[:60]!r}")
    try:
        inspect.signature(load_backbone).bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: wb.load_backbone does not take these arguments ({exc})") from exc
    return {"call": "wb.load_backbone", "args": args, "kwargs": kwargs}


# ----------------------------------------------------------------------------------- code per op
def _kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that differ from the call's default (False is not the default 0)."""
    default = _DEFAULT_KWARGS.get
    return {k: v for k, v in kwargs.items() if k not in _DEFAULT_KWARGS or (type(v), v) != (type(default(k)), default(k))}


def _freeze(spec: Any) -> Any:
    if isinstance(spec, dict):
        if spec["kind"] == "last":
            return call("wb.last", spec.get("n", 0))
        start = {"start": spec["start"]} if spec.get("start") else {}
        return call("wb.progressive", every=spec.get("every", 1), **start)
    return spec


def _data(recipe: list[dict[str, Any]] | None, name: str) -> Line:
    """`data = ...` for a data recipe; a placeholder to fill in when the data was built in memory."""
    if not recipe:
        return Line(assign("data", ast.Constant(...)), f"{name!r} was built in memory (from_texts / from_arrays / "
                                                        "from_dataframe): build it here the same way")
    first, *rest = recipe
    code = call(first["call"], *first.get("args", []), **_kwargs(first.get("kwargs", {})))
    for step in rest:
        code = method(code, step["call"], **{k: v for k, v in step.get("kwargs", {}).items() if v is not None})
    return Line(assign("data", code))


def _model(recipe: dict[str, Any] | None, name: str, target: str = "model") -> Line:
    if not recipe:
        return Line(assign(target, ast.Constant(...)), f"{name!r} is your own module: build it here, then "
                                                          "wb.Model.from_module(module, num_classes=..., kind=...)")
    backbone = recipe["args"][0]
    return Line(assign(target, call("wb.load_backbone", backbone, Ref("data.num_classes"), **_kwargs(recipe["kwargs"]))))


def _session(e: dict[str, Any]) -> list[Line]:
    return [_data(e["data"], e["data_name"]), _model(e["model"], e["model_name"]),
            Line(assign("session", call("wb.Session", Ref("data"), Ref("model"), freeze=_freeze(e["freeze"]),
                                        **e["settings"])))]


def _fit(e: dict[str, Any]) -> list[Line]:
    if e.get("stop_after") is not None:
        return [Line(expr(call("session.fit", e["epochs"], stop_after=e["stop_after"])), e.get("stopped") or "stopped")]
    return [Line(expr(call("session.fit", e["epochs"])))]


def _sweep(e: dict[str, Any]) -> list[Line]:
    """A sweep run from the session, then its trial adopted (train/sweep.py). Trials after the
    adopted one cannot change it (the sampler and the pruner only look back), so the replay runs
    `trial + 1` of them."""
    number = e["trial"]
    options = {"space": e["space"], "trials": number + 1, "epochs": e["epochs"], "metric": e["metric"],
               "pruner": None if e["pruner"] == "none" else e["pruner"], "sampler": e["sampler"], "seed": e["seed"],
               "startup_trials": e["startup_trials"], "warmup_epochs": e["warmup_epochs"], "name": e["name"]}
    params = ", ".join(f"{k}={v!r}" for k, v in e["params"].items())
    return [Line(assign("sweep", call("wb.sweep", Ref("session"), **options))),
            Line(assign("session", call("sweep.adopt", number)), f"trial {number} of {e['trials']}, {e['state']}: {params}")]


def _distil(e: dict[str, Any]) -> list[Line]:
    """`session = session.distil(student_model, ...).student`: the student, trained on the teacher's
    logits, becomes the session the lines after it change (train/distil.py). A student trained on
    other data (a transfer set) gets `data = ...` first, and `data=data`."""
    transfer = "data_name" in e
    kwargs = {"temperature": e["temperature"], "alpha": e["alpha"], "epochs": e["epochs"], "freeze": _freeze(e["freeze"]),
              "name": e["name"], **({"data": Ref("data")} if transfer else {}), **e["settings"]}
    if e.get("stop_at") is not None:
        kwargs["stop_at"] = ast.Tuple([literal(v) for v in e["stop_at"]], ast.Load())
    distil = call("session.distil", Ref("student_model"), **kwargs)
    return [*([_data(e.get("data"), e["data_name"])] if transfer else []), _model(e["model"], e["model_name"], "student_model"),
            Line(assign("session", ast.Attribute(distil, "student", ast.Load())), e.get("stopped"))]


def _relabel(e: dict[str, Any]) -> list[Line]:
    """session.relabel({id: 'class', ...}): a dict literal keyed by whole numbers."""
    pairs = ast.Dict([literal(i) for i, _ in e["labels"]], [literal(c) for _, c in e["labels"]])
    return [Line(expr(call("session.relabel", pairs)))]


@dataclass(frozen=True)
class Op:
    """One kind of recording entry: its fields and their checks, the fields it must have, the code
    lines it becomes, and every call those lines may make."""

    fields: dict[str, Check]
    code: Callable[[dict[str, Any]], list[Line]]
    calls: frozenset[str]
    required: tuple[str, ...] | None = None  # None: every field
    first: bool = False  # the entry that starts a recording

    def needed(self) -> tuple[str, ...]:
        return tuple(self.fields) if self.required is None else self.required


_FREEZE_CALLS = frozenset({"wb.last", "wb.progressive"})
_DATA_CALLS = frozenset({"wb.load_data", "wb.Data.from_folder", "wb.Data.from_torchvision", "wb.Data.from_hf",
                         "().subset", "().with_label_noise"})
OPS: dict[str, Op] = {
    "session": Op({"data": data_recipe, "data_name": text, "model": model_recipe, "model_name": text,
                   "freeze": freeze_spec, "settings": settings}, _session, first=True,
                  calls=_DATA_CALLS | frozenset({"wb.load_backbone", "wb.Session"}) | _FREEZE_CALLS),
    "freeze": Op({"spec": freeze_spec}, lambda e: [Line(expr(call("session.freeze", _freeze(e["spec"]))))],
                 calls=frozenset({"session.freeze"}) | _FREEZE_CALLS),
    "configure": Op({"settings": settings}, lambda e: [Line(expr(call("session.configure", **e["settings"])))],
                    calls=frozenset({"session.configure"})),
    "fit": Op({"epochs": whole(1), "stop_after": optional(whole(0)), "stopped": optional(text), "closed": flag},
              _fit, calls=frozenset({"session.fit"}), required=("epochs",)),
    "find_lr": Op({"start": number, "end": number, "steps": whole(1)},
                  lambda e: [Line(expr(call("session.find_lr", start=e["start"], end=e["end"], steps=e["steps"])),
                                  "restores the weights")], calls=frozenset({"session.find_lr"})),
    "relabel": Op({"labels": relabels}, _relabel,
                  calls=frozenset({"session.relabel"})),
    "sweep": Op({"name": text, "space": sweep_space, "trials": whole(1), "epochs": whole(1),
                 "metric": one_of(("valid_accuracy", "valid_macro_f1", "valid_loss")),
                 "pruner": one_of(("quartile", "median", "none")),
                 "sampler": one_of(("tpe", "random")), "seed": whole(0), "startup_trials": whole(0),
                 "warmup_epochs": whole(0), "trial": whole(0), "state": text, "params": settings, "steps": trial_steps},
                _sweep, calls=frozenset({"wb.sweep", "sweep.adopt"})),
    "distil": Op({"model": model_recipe, "model_name": text, "temperature": number, "alpha": number, "epochs": whole(1),
                  "freeze": freeze_spec, "name": text, "settings": settings, "stop_at": optional(epoch_and_batch),
                  "stopped": optional(text), "data": data_recipe, "data_name": text}, _distil,
                 calls=_DATA_CALLS | frozenset({"wb.load_backbone", "session.distil"}) | _FREEZE_CALLS,
                 required=("model", "model_name", "temperature", "alpha", "epochs", "freeze", "name", "settings")),
    "fit_head": Op({"C": optional(number)},
                   lambda e: [Line(expr(call("session.fit_head", **({} if e.get("C") is None else {"C": e["C"]}))))],
                   calls=frozenset({"session.fit_head"}), required=()),
}


# ----------------------------------------------------------------------------------------- checks
def check_entry(entry: Any, index: int) -> dict[str, Any]:
    """One entry checked against its row of OPS: a plain dict of known fields, or ValueError."""
    if not isinstance(entry, dict):
        raise ValueError(f"entry {index} must be a dict, got {type(entry).__name__}")
    op = OPS.get(entry.get("op")) if isinstance(entry.get("op"), str) else None
    if op is None:
        raise ValueError(f"entry {index} has op {str(entry.get('op'))[:40]!r}; known ops: {', '.join(OPS)}")
    if op.first != (index == 0):
        raise ValueError(f"entry {index} is a {entry['op']!r} entry, " +
                         ("which only starts a recording" if op.first else "but a recording starts with 'session'"))
    unknown = [k for k in entry if k != "op" and k not in op.fields]
    missing = [k for k in op.needed() if k not in entry]
    if unknown or missing:
        raise ValueError(f"entry {index} ({entry['op']}) " + (f"has the unknown field {str(unknown[0])[:40]!r}" if unknown
                                                             else f"lacks {', '.join(missing)}"))
    out = {"op": entry["op"]}
    for key, value in entry.items():
        if key != "op":
            out[key] = op.fields[key](value, f"entry {index} ({entry['op']}) field {key!r}")
    return out


def check_recording(recording: Any, source: str = "the session state") -> list[dict[str, Any]]:
    """Every entry checked against OPS, and the settings it records applied in order (each a known
    setting with a value TrainConfig accepts). CheckpointError naming `source`, the entry and the fix."""
    from .config import TrainConfig

    fix = (f"The recording in {source} was edited or is damaged, so workbench will not load it or write it as "
           "code. Use another checkpoint, or the one you saved before.")
    try:
        if not isinstance(recording, list) or not recording:
            raise ValueError(f"it must be a non-empty list of entries, got {type(recording).__name__}")
        entries = [check_entry(e, i) for i, e in enumerate(recording)]
        config = TrainConfig()
        for i, e in enumerate(entries):
            if "settings" in e:
                try:
                    config = config.replace(**e["settings"])
                except WorkbenchError as exc:
                    raise ValueError(f"entry {i} ({e['op']}) records settings workbench refuses ({exc})") from exc
    except (ValueError, WorkbenchError) as exc:
        raise CheckpointError(f"{fix} ({exc})") from exc
    return entries


# ------------------------------------------------------------------------------------------- code
def to_code(recording: list[dict[str, Any]]) -> str:
    """A Python cell that rebuilds the recorded run from nothing (every value a literal; the cell is
    parsed back and must hold exactly the statements of its entries)."""
    entries = check_recording(recording, "this session")
    lines = [Line(ast.Import([ast.alias("workbench", "wb")])), Line()]
    allowed: set[str] = set()
    for entry in entries:
        op = OPS[entry["op"]]
        lines += op.code(entry)
        allowed |= op.calls
    return render(lines, allowed, "cell (session.to_code())")


def steps(recording: list[dict[str, Any]], ops: tuple[str, ...]) -> list[dict[str, Any]]:
    """The checked entries after the first whose op is one of `ops` (what a script replays); an
    adopted sweep trial stands for the steps that trial took (its settings, its epochs)."""
    entries = check_recording(recording, "this session")[1:]
    return [t for e in entries for t in (e["steps"] if e["op"] == "sweep" else [e]) if t["op"] in ops]

