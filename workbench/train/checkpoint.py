"""Checkpoint files: a Session's state dict to a folder and back, with no pickle of arbitrary objects.

A checkpoint is a folder:
  model.safetensors   the module's weights
  best.safetensors    early stopping's best weights, when there are any
  state.pt            optimizer state and predictions: tensors and plain values only, so it loads
                      with torch.load(weights_only=True)
  session.json        backbone, data, settings, freeze plan, pending changes, history

Saving is atomic: the files are written into a temporary folder beside the target, which then
takes the target's place, so a save that fails part-way (a full disk, an interrupt) leaves the
previous checkpoint as it was. session.json lists the other files with their SHA-256
(workbench/owned.py): a save replaces only a folder holding nothing but a checkpoint's files,
unchanged, and a load refuses a listed file that changed. Loading validates the files here,
session.json's parts in checkpoint_checks.py and the whole state in `state.check_state` before
anything is built from it. This module never touches a Session.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, WorkbenchError
from ..owned import digest, foreign, swap_in
from .checkpoint_checks import check_meta
from .state import KEYS, STATE_FORMAT

FILES = ("model.safetensors", "state.pt", "session.json")
WEIGHT_FILES = ("model.safetensors", "best.safetensors", "state.pt")  # listed with their SHA-256 in session.json
TENSOR_KEYS = ("optimizer", "predictions", "previous_predictions")  # -> state.pt
OPTIONAL_TENSOR_KEYS = ("dynamics",)  # -> state.pt when present (older checkpoints have none)


def save(sd: dict[str, Any], path) -> Path:
    """Write the state dict `sd` (from Session.state_dict()) as a checkpoint folder at `path`."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{str(folder)!r} exists and is a file; a checkpoint is a folder. Choose another path.")
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"Cannot create the folder {str(parent)!r} for the checkpoint ({exc.strerror or exc}). "
                              "Save to a folder you can write to, e.g. session.save('run.wb').") from exc
    owned = _owned_files(folder) if folder.exists() else []
    tmp = parent / f".{folder.name}.saving-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        _write(sd, tmp)
        swap_in(tmp, folder, owned)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"Could not write the checkpoint {str(folder)!r} ({exc.strerror or exc}); any earlier "
                              "checkpoint there is unchanged. Free some disk space or choose another path.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _write(sd: dict[str, Any], folder: Path) -> None:
    save_file(_contiguous(sd["model"]), str(folder / "model.safetensors"))
    best = sd["early_stopping"]
    if best is not None:
        save_file(_contiguous(best["weights"]), str(folder / "best.safetensors"))
    tensors: dict[str, Any] = {k: sd[k] for k in (*TENSOR_KEYS, *OPTIONAL_TENSOR_KEYS) if k in sd}
    tensors["best_predictions"] = None if best is None else best["predictions"]
    torch.save(tensors, folder / "state.pt")
    meta = {k: v for k, v in sd.items() if k not in (*TENSOR_KEYS, *OPTIONAL_TENSOR_KEYS, "model", "early_stopping")}
    meta["early_stopping"] = None if best is None else {"valid_loss": best["valid_loss"], "epoch": best["epoch"]}
    meta["files"] = {f: digest(folder / f) for f in WEIGHT_FILES if (folder / f).is_file()}
    (folder / "session.json").write_text(json.dumps(meta, indent=1))
    for f in folder.iterdir():  # on disk before the swap, not only in the page cache
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _owned_files(folder: Path) -> list[str]:
    """The files of the checkpoint at `folder` that a save may replace: CheckpointError when the
    folder holds anything else (a save never removes a file workbench did not write)."""
    if not folder.is_dir():
        raise CheckpointError(f"{str(folder)!r} exists and is a file; a checkpoint is a folder. Choose another path.")
    listed: dict[str, str | None] = {}
    try:
        meta = json.loads((folder / "session.json").read_text()) if (folder / "session.json").is_file() else None
    except (OSError, ValueError):
        meta = None
    ours = isinstance(meta, dict) and "format" in meta and "backbone" in meta  # a checkpoint's session.json
    if ours:
        files = meta.get("files")
        listed = dict(files) if isinstance(files, dict) else {f: None for f in WEIGHT_FILES}  # older: names only
    bad = foreign(folder, listed, also=["session.json"] if ours else [])
    if bad:
        raise CheckpointError(
            f"{str(folder)!r} holds {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}: a save replaces only a checkpoint "
            "folder workbench wrote, and never deletes other files. Save to a new path (e.g. session.save('run.wb')), or "
            "move those files out first.")
    return [*listed, "session.json"] if ours else []


def load(path) -> dict[str, Any]:
    """Read a checkpoint folder back into a state dict (files and JSON schema checked here; the
    state's fit to a model and data is checked by state.check_state)."""
    folder = Path(path).expanduser()
    if not (folder / "session.json").is_file() and (folder / "checkpoint" / "session.json").is_file():
        folder = folder / "checkpoint"  # a run folder written by a launched script (train/launch.py)
    if not folder.is_dir():
        raise CheckpointError(f"No checkpoint folder at {str(folder)!r}. Pass the path given to session.save().")
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{str(folder)!r} is not a complete checkpoint: {', '.join(missing)} missing. Save it again.")
    try:
        meta = json.loads((folder / "session.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / 'session.json'} is corrupt ({exc}). Use another checkpoint.") from exc
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{str(folder)!r} has checkpoint format {found!r}; this workbench reads {STATE_FORMAT}. "
                              "Save it again with this version.")
    expected = [k for k in KEYS if k not in (*TENSOR_KEYS, "model")]
    absent = [k for k in expected if k not in meta]
    if absent:
        raise CheckpointError(f"{folder / 'session.json'} lacks {', '.join(absent)}: the checkpoint is incomplete "
                              "or was edited. Use another checkpoint.")
    meta = check_meta(meta, folder / "session.json")
    files = meta.pop("files", None)
    try:
        weights = load_file(str(folder / "model.safetensors"))
        best_file = folder / "best.safetensors"
        best = load_file(str(best_file)) if best_file.is_file() else None
        tensors = torch.load(folder / "state.pt", weights_only=True, map_location="cpu")
    except Exception as exc:  # safetensors and torch raise several types for a damaged file
        raise CheckpointError(f"The checkpoint in {str(folder)!r} is corrupt ({type(exc).__name__}: {exc}). "
                              "Use another checkpoint.") from exc
    if not isinstance(tensors, dict) or any(k not in tensors for k in TENSOR_KEYS):
        raise CheckpointError(f"{folder / 'state.pt'} is incomplete. Use another checkpoint.")
    _check_digests(folder, files)
    sd = {**meta, "model": weights, **{k: tensors[k] for k in (*TENSOR_KEYS, *OPTIONAL_TENSOR_KEYS) if k in tensors},
          "source": str(folder)}
    es = meta["early_stopping"]
    if es is not None:
        if best is None:
            raise CheckpointError(f"{str(folder)!r} names a best epoch but best.safetensors is missing. Save it again.")
        sd["early_stopping"] = {**es, "weights": best, "predictions": tensors.get("best_predictions")}
    return sd


def _check_digests(folder: Path, files: Any) -> None:
    """The weight files session.json lists are the ones saved with it (older checkpoints list none)."""
    if files is None:
        return
    if not isinstance(files, dict) or any(f not in WEIGHT_FILES or not isinstance(h, str) for f, h in files.items()):
        raise CheckpointError(f"{folder / 'session.json'} lists files that are not a checkpoint's. The file was edited: "
                              "use another checkpoint.")
    changed = [f for f, h in files.items() if not (folder / f).is_file() or digest(folder / f) != h]
    if changed:
        raise CheckpointError(f"{folder / changed[0]} is not the file saved with this checkpoint (missing, or its SHA-256 "
                              "differs from session.json's list): it was replaced or damaged. Use another checkpoint, or "
                              "save the session again.")


def reload_data(meta: dict[str, Any], source: str = "The checkpoint"):
    """The data a checkpoint names, made again from its recipe (or a bundled set by name);
    data built in memory must be passed in. `source` names the checkpoint in errors."""
    from ..data import list_datasets, load_data
    from ..data.recipes import replay

    name = meta.get("name")
    fix = "pass the data it was trained on: wb.Session.load(path, data=...)."
    try:
        if meta.get("recipe"):
            data = replay(meta["recipe"])  # the calls that made it: the same splits
            made = "made again from its recipe"
        elif name in list_datasets():
            data, made = load_data(name), f"the whole bundled {name!r} (the checkpoint records no subset)"
        else:
            raise CheckpointError(f"{source} was trained on data {name!r}, which was built in memory: {fix}")
    except CheckpointError:
        raise
    except WorkbenchError as exc:
        raise CheckpointError(f"{source} was trained on data {name!r}, which cannot be made again here ({exc}): "
                              f"{fix}") from exc
    sizes = (len(data.train), len(data.valid))
    if sizes != (meta.get("train"), meta.get("valid")):
        raise CheckpointError(
            f"{source} was trained on {name!r} with {meta.get('train')} train / {meta.get('valid')} valid samples; "
            f"{made} it has {sizes[0]} / {sizes[1]}: {fix}"
        )
    return data


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
