"""A Session's state as plain values, and the checks a state must pass before it is loaded.

`Session.state_dict()` builds the dict with the helpers here; `Session.load_state_dict()` calls
`check_state` first, which reads and validates every part against the session's model and data
and returns the parts already parsed, so that nothing can fail once the session starts to change.
checkpoint.py turns the same dict into files and back; it never touches a Session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, WorkbenchError
from .config import TrainConfig
from .freezing import FreezeSpec, trainable_blocks
from .recording import check_recording
from .records import EpochResult, Predictions

STATE_FORMAT = 2
KEYS = ("format", "backbone", "data", "model", "optimizer", "optimizer_groups", "config", "freeze", "trainable",
        "pending", "history", "predictions", "previous_predictions", "early_stopping", "recording")
PREDICTION_ARRAYS = ("logits", "labels", "losses", "ids")


def freeze_spec_to_json(spec: Any) -> Any:
    """"head" / "full" / [names] stay as they are; a FreezeSpec becomes a dict."""
    if isinstance(spec, FreezeSpec):
        return {"kind": str(spec.kind), "n": int(spec.n), "every": int(spec.every), "start": int(spec.start)}
    return str(spec) if isinstance(spec, str) else [str(name) for name in spec]  # numpy strings as plain ones


def freeze_spec_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            return FreezeSpec(**value)
        except TypeError as exc:
            raise CheckpointError(f"The saved freeze plan {value!r} is not understood ({exc}).") from exc
    return value


def predictions_to_dict(p: Predictions | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {k: torch.from_numpy(np.array(getattr(p, k))) for k in PREDICTION_ARRAYS}
    out["epoch"] = int(p.epoch)
    return out


def predictions_from_dict(d: Any, n_valid: int, num_classes: int, what: str) -> Predictions | None:
    if d is None:
        return None
    try:
        arrays = {k: (d[k].numpy() if isinstance(d[k], torch.Tensor) else np.asarray(d[k])) for k in PREDICTION_ARRAYS}
        epoch = int(d["epoch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"The saved {what} are incomplete ({type(exc).__name__}: {exc}).") from exc
    if arrays["logits"].shape != (n_valid, num_classes) or any(len(arrays[k]) != n_valid for k in PREDICTION_ARRAYS):
        raise CheckpointError(
            f"The saved {what} cover {len(arrays['labels'])} samples and {arrays['logits'].shape[-1]} classes, the "
            f"valid split has {n_valid} and {num_classes}: the checkpoint belongs to other data."
        )
    return Predictions(arrays["logits"].astype(np.float32), arrays["labels"].astype(np.int64),
                       arrays["losses"].astype(np.float32), arrays["ids"].astype(np.int64), epoch)


def cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached and on the CPU (a state that shares no storage)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


@dataclass
class CheckedState:
    """The parts of a state dict, parsed and checked against one model and one data."""

    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    optimizer_groups: list[str]
    config: TrainConfig
    freeze: Any
    trainable: list[str]
    pending: dict[str, Any]
    history: list[EpochResult]
    predictions: Predictions | None
    previous_predictions: Predictions | None
    recording: list[dict[str, Any]]
    best: tuple[float, int, dict[str, torch.Tensor], Predictions | None] | None
    schedule_start: int = 0  # the step the LR schedule started at (train/lr_plan.py)


def check_state(sd: Any, model, data) -> CheckedState:
    """Validate a whole state dict (schema, classes, shapes, optimizer groups) before anything is
    built from it: CheckpointError naming the first problem (and the checkpoint's folder, for a
    state read by checkpoint.load: its "source")."""
    source = sd.get("source") if isinstance(sd, dict) and isinstance(sd.get("source"), str) else None
    try:
        return _check_state(sd, model, data, source)
    except CheckpointError as exc:
        if source is None or source in str(exc):
            raise
        message = str(exc)
        raise CheckpointError(f"The checkpoint {source!r} does not fit: {message[:1].lower()}{message[1:]}") from exc


def _check_state(sd: Any, model, data, source: str | None) -> CheckedState:
    if not isinstance(sd, dict):
        raise CheckpointError(f"A session state must be a dict (from session.state_dict()), got {type(sd).__name__}.")
    missing = [k for k in KEYS if k not in sd]
    if missing:
        raise CheckpointError(f"The session state lacks {', '.join(missing)}: it is incomplete or from another "
                              "version. Use a state from session.state_dict() or a complete checkpoint.")
    if sd["format"] != STATE_FORMAT:
        raise CheckpointError(f"The state has format {sd['format']!r}; this workbench reads {STATE_FORMAT}.")
    backbone, saved_data = _dict(sd, "backbone"), _dict(sd, "data")
    if backbone.get("name") != model.name or backbone.get("num_classes") != model.num_classes:
        raise CheckpointError(
            f"It is from backbone {backbone.get('name')!r} with {backbone.get('num_classes')} classes, but the "
            f"session trains {model.name!r} with {model.num_classes}. Load it into a session of that backbone, or "
            "rebuild its own session: wb.Session.load(path) (without model=)."
        )
    if list(saved_data.get("classes", [])) != list(data.classes):
        raise CheckpointError(
            f"The state's classes {list(saved_data.get('classes', []))[:5]}... differ from the data's "
            f"{list(data.classes)[:5]}...: pass the data it was trained on."
        )
    weights = _check_weights(sd["model"], model, "model")
    config = _parse(lambda: TrainConfig.from_dict(sd["config"]), "settings")
    freeze = freeze_spec_from_json(sd["freeze"])
    history = _parse(lambda: [EpochResult.from_dict(d) for d in sd["history"]], "history")
    trainable = _parse(lambda: trainable_blocks(model, list(sd["trainable"])), "trainable blocks")
    _parse(lambda: trainable_blocks(model, freeze, epoch=len(history)), "freeze plan")
    groups = _parse(lambda: [str(g) for g in sd["optimizer_groups"]], "optimizer groups")  # the order they joined in
    _parse(lambda: trainable_blocks(model, groups), "optimizer groups")  # every name a block of this model
    if len(set(groups)) != len(groups):
        raise CheckpointError(f"The saved optimizer groups {groups} name a block twice.")
    check_optimizer_state(sd["optimizer"], model, groups)
    pending = _check_pending(sd["pending"], model, config, len(history))
    n, k = len(data.valid), data.num_classes
    best = None
    if sd["early_stopping"] is not None:
        es = _dict(sd, "early_stopping")
        best = (float(es["valid_loss"]), int(es["epoch"]), _check_weights(es["weights"], model, "best weights"),
                predictions_from_dict(es.get("predictions"), n, k, "best epoch's predictions"))
    return CheckedState(
        weights=weights, optimizer=sd["optimizer"], optimizer_groups=groups, config=config, freeze=freeze,
        trainable=trainable, pending=pending, history=history,
        predictions=predictions_from_dict(sd["predictions"], n, k, "predictions"),
        previous_predictions=predictions_from_dict(sd["previous_predictions"], n, k, "previous predictions"), best=best,
        recording=check_recording(sd["recording"], source or "the session state"),
        schedule_start=_schedule_start(sd.get("schedule"), sum(r.batches for r in history)),
    )


def _schedule_start(value: Any, steps: int) -> int:
    """Where the LR schedule started: a step 0..steps (a state without it, from before: 0)."""
    if value is None:
        return 0
    start = value.get("start_step") if isinstance(value, dict) else None
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= steps:
        raise CheckpointError(f"The saved LR schedule position {value!r} is not understood: it must be "
                              f"{{'start_step': a step 0..{steps}}}, the history's steps.")
    return start


def _dict(sd: dict, key: str) -> dict:
    if not isinstance(sd[key], dict):
        raise CheckpointError(f"The state's {key!r} must be a dict, got {type(sd[key]).__name__}.")
    return sd[key]


def _parse(fn, what: str):
    try:
        return fn()
    except CheckpointError:
        raise
    except (WorkbenchError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"The saved {what} cannot be read ({type(exc).__name__}: {exc}).") from exc


def _check_weights(weights: Any, model, what: str) -> dict[str, torch.Tensor]:
    own = model.module.state_dict()
    if not isinstance(weights, dict):
        raise CheckpointError(f"The saved {what} must be a dict of tensors.")
    bad = [k for k, v in weights.items()
           if k not in own or not isinstance(v, torch.Tensor) or own[k].shape != v.shape]
    missing = [k for k in own if k not in weights]
    if bad or missing:
        raise CheckpointError(
            f"The saved {what} do not fit this model, {model.name!r} ({len(bad)} mismatched and {len(missing)} missing "
            f"tensors, e.g. {(bad + missing)[:2]}): they were trained with another backbone or other options (image size, "
            "head) than the ones named (was session.json edited?). Use the checkpoint as saved, or pass model= built as "
            "it was trained."
        )
    return weights


def check_optimizer_state(state: Any, model, groups: list[str]) -> None:
    """The optimizer state fits one group per block in `groups`: group count, parameters per group,
    and every state tensor's shape (torch checks only the counts, and a wrong shape would fail at
    the next step, after the session had changed)."""
    try:
        saved_groups, saved_state = state["param_groups"], state["state"]
    except (TypeError, KeyError) as exc:
        raise CheckpointError("The saved optimizer state is incomplete (no param_groups or state).") from exc
    if len(saved_groups) != len(groups):
        raise CheckpointError(f"The saved optimizer has {len(saved_groups)} parameter groups, the freeze plan "
                              f"{len(groups)} ({', '.join(groups)}): the checkpoint is inconsistent.")
    for block, group in zip(groups, saved_groups):
        params = model.parameters_of(block)
        ids = group.get("params", []) if isinstance(group, dict) else []
        if len(ids) != len(params):
            raise CheckpointError(f"The saved optimizer group for block {block!r} has {len(ids)} parameters, the "
                                  f"model's block {len(params)}: the checkpoint belongs to another architecture.")
        for pid, param in zip(ids, params):
            for name, value in (saved_state.get(pid, {}) if isinstance(saved_state, dict) else {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise CheckpointError(f"The saved optimizer state {name!r} of block {block!r} has shape "
                                          f"{tuple(value.shape)}, the parameter {tuple(param.shape)}.")


def _check_pending(pending: Any, model, config: TrainConfig, epochs: int) -> dict[str, Any]:
    if not isinstance(pending, dict) or set(pending) - {"config", "freeze"}:
        raise CheckpointError(f"The saved pending changes {pending!r} are not understood.")
    out: dict[str, Any] = {}
    if "config" in pending:
        _parse(lambda: config.replace(**pending["config"]), "pending settings")
        out["config"] = dict(pending["config"])
    if "freeze" in pending:
        spec = freeze_spec_from_json(pending["freeze"])
        _parse(lambda: trainable_blocks(model, spec, epoch=epochs), "pending freeze plan")
        out["freeze"] = spec
    return out
