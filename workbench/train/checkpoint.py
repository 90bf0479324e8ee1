"""Save and resume a Session: no pickle of arbitrary objects.

A checkpoint is a folder:
  model.safetensors   the module's weights
  best.safetensors    early stopping's best weights, when there are any
  state.pt            optimizer state, predictions: tensors and plain values only, so it loads
                      with torch.load(weights_only=True)
  session.json        backbone, classes, data, settings, freeze state, history

Per-epoch seeding (see Session._run_epoch) makes the RNG state a function of (seed, epoch), so
resuming after epoch k and training to n gives bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, DataError
from .config import TrainConfig
from .freezing import FreezeSpec
from .records import EpochResult, Predictions

FORMAT = 1


def save(session, path) -> Path:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} exists and is a file; a checkpoint is a folder. Choose another path.")
    if session.running:
        raise CheckpointError("Cannot save while training is running; stop or wait for the epoch to end.")
    folder.mkdir(parents=True, exist_ok=True)
    model = session.model
    save_file(_contiguous(model.module.state_dict()), str(folder / "model.safetensors"))
    if session._best is not None:
        save_file(_contiguous(session._best[2]), str(folder / "best.safetensors"))
    state: dict[str, Any] = {"optimizer": session.optimizer.state_dict()}
    for name in ("predictions", "previous_predictions"):
        p = getattr(session, name)
        if p is not None:
            state[name] = {k: torch.from_numpy(np.asarray(getattr(p, k))) for k in ("logits", "labels", "losses", "ids")}
            state[name]["epoch"] = p.epoch
    if session._best is not None and session._best[3] is not None:
        best_p = session._best[3]
        state["best_predictions"] = {k: torch.from_numpy(np.asarray(getattr(best_p, k))) for k in ("logits", "labels", "losses", "ids")}
        state["best_predictions"]["epoch"] = best_p.epoch
    torch.save(state, folder / "state.pt")
    meta = {
        "format": FORMAT,
        "backbone": model.name,
        "backbone_options": model.options,
        "num_classes": model.num_classes,
        "classes": list(session.data.classes),
        "data": {"name": session.data.name, "kind": session.data.kind,
                 "train": len(session.data.train), "valid": len(session.data.valid)},
        "config": session.config.to_dict(),
        "freeze": freeze_spec_to_json(session._freeze_spec),
        "trainable": session.trainable,
        "optimizer_groups": [g["name"] for g in session.optimizer.param_groups],
        "global_step": session.global_step,
        "body_version": session._body_version,
        "best": None if session._best is None else {"valid_loss": session._best[0], "epoch": session._best[1]},
        "history": [r.to_dict() for r in session.history],
    }
    (folder / "session.json").write_text(json.dumps(meta, indent=1))
    return folder


def read_meta(path) -> dict[str, Any]:
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"No checkpoint folder at {folder}. Pass the path given to session.save().")
    missing = [f for f in ("model.safetensors", "state.pt", "session.json") if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a complete checkpoint: {', '.join(missing)} missing. Save it again.")
    try:
        meta = json.loads((folder / "session.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / 'session.json'} is corrupt ({exc}). Use another checkpoint.") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder} has checkpoint format {meta.get('format')!r}; this workbench reads {FORMAT}.")
    return meta


def _read_tensors(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor] | None]:
    try:
        weights = load_file(str(folder / "model.safetensors"))
        best = load_file(str(folder / "best.safetensors")) if (folder / "best.safetensors").is_file() else None
        state = torch.load(folder / "state.pt", weights_only=True, map_location="cpu")
    except Exception as exc:  # safetensors and torch raise several types for a damaged file
        raise CheckpointError(f"The checkpoint in {folder} is corrupt ({type(exc).__name__}: {exc}). Use another checkpoint.") from exc
    return weights, state, best


def load(path, data=None):
    """Rebuild the Session saved at `path`. `data` may be omitted for the bundled datasets."""
    from ..models import load_backbone
    from .session import Session

    folder = Path(path)
    meta = read_meta(folder)
    weights, state, best = _read_tensors(folder)
    if data is None:
        data = _reload_data(meta)
    if list(data.classes) != meta["classes"]:
        raise CheckpointError(
            f"The data's classes {list(data.classes)[:5]}... differ from the checkpoint's {meta['classes'][:5]}...; "
            "pass the data the session was trained on."
        )
    model = load_backbone(meta["backbone"], meta["num_classes"], pretrained=False, **meta["backbone_options"])
    config = TrainConfig.from_dict(meta["config"])
    session = Session(data, model, freeze=freeze_spec_from_json(meta["freeze"]), **config.to_dict())
    restore(session, folder, meta=meta, tensors=(weights, state, best))
    return session


def restore(session, path, *, meta=None, tensors=None) -> None:
    """Load a checkpoint into an existing, compatible session (same backbone and classes).

    Everything is checked before anything is changed: a mismatch raises CheckpointError and the
    session keeps its weights and history.
    """
    folder = Path(path)
    meta = meta or read_meta(folder)
    weights, state, best = tensors or _read_tensors(folder)
    if meta["backbone"] != session.model.name:
        raise CheckpointError(
            f"This checkpoint is from backbone {meta['backbone']!r}, but the session trains {session.model.name!r}. "
            f"Use wb.Session.load({str(folder)!r}) to rebuild its own session."
        )
    if meta["classes"] != list(session.data.classes):
        raise CheckpointError("The checkpoint's classes differ from this session's data; load it with its own data.")
    own = session.model.module.state_dict()
    bad = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
    if bad or len(weights) != len(own):
        raise CheckpointError(
            f"The checkpoint's weights do not fit this model ({len(bad)} mismatched tensors, e.g. {bad[:2]}); "
            "was it saved with other backbone options (image size, head)?"
        )
    # -- checks done; now change the session --
    session.model.module.load_state_dict(weights)
    session._freeze_spec = freeze_spec_from_json(meta["freeze"])
    session.optimizer = session._build_optimizer(meta["optimizer_groups"])
    session.optimizer.load_state_dict(state["optimizer"])
    session._sync_freeze(meta["trainable"])
    session.history = [EpochResult.from_dict(d) for d in meta["history"]]
    session.global_step = meta["global_step"]
    session._body_version = meta.get("body_version", 0) + 1
    session.cache.invalidate()
    session.predictions = _predictions(state.get("predictions"))
    session.previous_predictions = _predictions(state.get("previous_predictions"))
    session._best = None
    if meta.get("best") and best is not None:
        session._best = (meta["best"]["valid_loss"], meta["best"]["epoch"], best, _predictions(state.get("best_predictions")))


def _predictions(d: dict[str, Any] | None) -> Predictions | None:
    if d is None:
        return None
    return Predictions(d["logits"].numpy(), d["labels"].numpy(), d["losses"].numpy(), d["ids"].numpy(), int(d["epoch"]))


def _reload_data(meta: dict[str, Any]):
    from ..data import list_datasets, load_data

    name = meta["data"]["name"]
    if name not in list_datasets():
        raise CheckpointError(
            f"The checkpoint was trained on data {name!r}, which is not bundled; pass it: wb.Session.load(path, data=...)."
        )
    data = load_data(name)
    sizes = (len(data.train), len(data.valid))
    if sizes != (meta["data"]["train"], meta["data"]["valid"]):
        raise DataError(
            f"Reloaded {name!r} has train/valid sizes {sizes}, the checkpoint {meta['data']['train']}/{meta['data']['valid']}; "
            "pass the exact data it was trained on: wb.Session.load(path, data=...)."
        )
    return data


def freeze_spec_to_json(spec: Any) -> Any:
    """"head" / "full" / [names] stay as they are; a FreezeSpec becomes a dict."""
    if isinstance(spec, FreezeSpec):
        return {"kind": spec.kind, "n": spec.n, "every": spec.every, "start": spec.start}
    return spec if isinstance(spec, str) else list(spec)


def freeze_spec_from_json(value: Any) -> Any:
    return FreezeSpec(**value) if isinstance(value, dict) else value


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors stores each tensor once: contiguous copies, tied weights cloned apart."""
    out, seen = {}, set()
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        if t.data_ptr() in seen:
            t = t.clone()
        seen.add(t.data_ptr())
        out[k] = t
    return out
