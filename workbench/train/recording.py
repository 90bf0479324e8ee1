"""The session as code: its recording of changes turned into a Python cell that rebuilds the run.

A Session appends every change that took effect to `session.recording`, in order: how the data
and the backbone were made, the settings and freeze plan it started with, settings and freeze
plans as they were applied (changes queued during an epoch are recorded where they took effect),
runs of epochs, LR range tests and exact head fits. Epochs are seeded from (seed, epoch), so on the
CPU the cell reproduces the weights and the history bit for bit.
"""

from __future__ import annotations

from typing import Any

# default keyword values left out of the printed calls
_DEFAULT_KWARGS = {"valid_fraction": 0.2, "seed": 0, "pretrained": True, "granularity": "stages", "head_dropout": 0.0,
                   "download": True}


def _value(v: Any) -> str:
    """A Python literal for a JSON value; float formatting that round-trips exactly."""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dict):
        return "dict(" + ", ".join(f"{k}={_value(x)}" for k, x in v.items()) + ")" if all(
            isinstance(k, str) and k.isidentifier() for k in v) else repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _call(name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [_value(a) for a in args]
    parts += [f"{k}={_value(v)}" for k, v in kwargs.items() if _DEFAULT_KWARGS.get(k, object()) != v]
    return f"{name}({', '.join(parts)})"


def _freeze(spec: Any) -> str:
    if isinstance(spec, dict):
        if spec.get("kind") == "last":
            return f"wb.last({spec['n']})"
        extra = f", start={spec['start']}" if spec.get("start") else ""
        return f"wb.progressive(every={spec.get('every', 1)}{extra})"
    return _value(spec)


def data_code(recipe: list[dict[str, Any]] | None, name: str) -> str:
    """`data = ...` for a data recipe; a placeholder to fill in when the data was built in memory."""
    if not recipe:
        return (f"data = ...  # {name!r} was built in memory (from_texts / from_arrays / from_dataframe): "
                "build it here the same way")
    first, *rest = recipe
    code = _call(first["call"], first.get("args", []), first.get("kwargs", {}))
    for step in rest:
        kwargs = {k: v for k, v in step.get("kwargs", {}).items() if v is not None}
        code += "." + _call(step["call"], [], kwargs)
    return f"data = {code}"


def model_code(recipe: dict[str, Any] | None, name: str) -> str:
    if not recipe:
        return (f"model = ...  # {name!r} is your own module: build it here, then "
                "wb.Model.from_module(module, num_classes=..., kind=...)")
    kwargs = dict(recipe.get("kwargs", {}))
    args = list(recipe.get("args", []))
    if len(args) > 1:
        args[1] = "NUM_CLASSES"
    code = _call(recipe["call"], args, kwargs).replace("'NUM_CLASSES'", "data.num_classes")
    return f"model = {code}"


def to_code(recording: list[dict[str, Any]]) -> str:
    """A Python cell that rebuilds the recorded run from nothing."""
    start, *steps = recording
    lines = ["import workbench as wb", "", data_code(start["data"], start["data_name"]),
             model_code(start["model"], start["model_name"])]
    settings = ", ".join(f"{k}={_value(v)}" for k, v in start["settings"].items())
    lines.append(f"session = wb.Session(data, model, freeze={_freeze(start['freeze'])}{', ' if settings else ''}{settings})")
    for step in steps:
        op = step["op"]
        if op == "freeze":
            lines.append(f"session.freeze({_freeze(step['spec'])})")
        elif op == "configure":
            lines.append("session.configure(" + ", ".join(f"{k}={_value(v)}" for k, v in step["settings"].items()) + ")")
        elif op == "fit":
            if step.get("stop_after") is not None:
                lines.append(f"session.fit({step['epochs']}, stop_after={step['stop_after']})  # {step.get('stopped', 'stopped')}")
            else:
                lines.append(f"session.fit({step['epochs']})")
        elif op == "find_lr":
            lines.append(f"session.find_lr(start={step['start']!r}, end={step['end']!r}, steps={step['steps']})  # restores the weights")
        elif op == "fit_head":
            lines.append(f"session.fit_head({'' if step.get('C') is None else 'C=' + _value(step['C'])})")
        elif op == "distil":
            lines.extend(distil_code(step))
    return "\n".join(lines) + "\n"


def distil_code(step: dict[str, Any]) -> list[str]:
    """`session = session.distil(...).student`: the student, trained on the teacher's logits, becomes
    the session the lines after it change (train/distil.py)."""
    build = model_code(step["model"], step["model_name"]).replace("model = ", "student_model = ", 1)
    kwargs = {"temperature": step["temperature"], "alpha": step["alpha"], "epochs": step["epochs"],
              "freeze": step["freeze"], "name": step["name"], **step.get("settings", {})}
    args = ", ".join(f"{k}={_freeze(v) if k == 'freeze' else _value(v)}" for k, v in kwargs.items())
    stop = f", stop_at={tuple(step['stop_at'])!r}" if step.get("stop_at") else ""
    note = "  # " + " ".join(str(step["stopped"]).split()) if step.get("stopped") else ""  # one comment line
    return [build, f"session = session.distil(student_model, {args}{stop}).student{note}"]
