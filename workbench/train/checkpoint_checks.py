"""What a checkpoint's session.json may hold, checked before anything is built from it.

session.json names the backbone to build (and its options), the data to make again (its recipe)
and the recording that `to_code()` writes as code. A file can be edited, so each part is data to
check: the backbone's options are keyword arguments `load_backbone` takes, with sizes in range
(checked before a model is allocated), the data recipe only the loaders' calls (data/recipes.py),
the recording only known ops with known fields (recording.OPS). Each refusal is a CheckpointError
naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, WorkbenchError
from .codegen import plain

# the largest sizes a checkpoint may ask a model to be built with: far above any real run, and
# small enough that building one cannot exhaust memory (a ViT's position table grows with image_size**2)
MAX_IMAGE_SIZE = 4096
MAX_LENGTH = 1_000_000
MAX_CLASSES = 1_000_000


def _options(options: Any, file: Path) -> dict[str, Any]:
    """The backbone options as keyword arguments load_backbone takes (name, num_classes and
    pretrained aside), sizes in range."""
    from ..models import load_backbone

    if not isinstance(options, dict):
        raise CheckpointError(f"{file}: the backbone options must be a dict, got {type(options).__name__}. The file was "
                              "edited or is damaged: use another checkpoint.")
    params = inspect.signature(load_backbone).parameters
    allowed = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise CheckpointError(f"{file}: the backbone option {str(unknown[0])[:40]!r} is not one load_backbone takes "
                              f"({', '.join(allowed)}). The file was edited or written by another version: remove that "
                              "option from session.json's backbone, or use another checkpoint.")
    try:
        options = plain(options, "the backbone options")
    except WorkbenchError as exc:
        raise CheckpointError(f"{file}: {exc} Use another checkpoint.") from exc
    for key, top in (("image_size", MAX_IMAGE_SIZE), ("max_length", MAX_LENGTH)):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top):
            raise CheckpointError(f"{file}: the backbone option {key}={str(value)[:40]} is not a size from 1 to {top}; "
                                  "no model is built with it. The file was edited or is damaged: use another checkpoint.")
    return options


def check_meta(meta: dict[str, Any], file: Path) -> dict[str, Any]:
    """session.json's backbone, data and recording checked (see the module docstring); returns meta
    with each part as plain data."""
    from ..data.recipes import check as check_recipe
    from .recording import check_recording

    backbone, data = meta.get("backbone"), meta.get("data")
    if not isinstance(backbone, dict) or not isinstance(backbone.get("name"), str):
        raise CheckpointError(f"{file}: the backbone must be a dict with a name. The file was edited or is damaged: "
                              "use another checkpoint.")
    k = backbone.get("num_classes")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_CLASSES:
        raise CheckpointError(f"{file}: the backbone's num_classes {str(k)[:40]} is not a number of classes from 2 to "
                              f"{MAX_CLASSES}. The file was edited or is damaged: use another checkpoint.")
    backbone = {**backbone, "options": _options(backbone.get("options", {}), file)}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("classes"), list):
        raise CheckpointError(f"{file}: the data must be a dict with a name and classes. The file was edited or is "
                              "damaged: use another checkpoint.")
    if not all(isinstance(c, str) for c in data["classes"]) or len(data["classes"]) != k:
        raise CheckpointError(f"{file}: the data's classes must be {k} strings, one per output of the backbone. The "
                              "file was edited or is damaged: use another checkpoint.")
    if data.get("recipe") is not None:
        try:
            data = {**data, "recipe": check_recipe(data["recipe"], "the data recipe")}
        except WorkbenchError as exc:
            raise CheckpointError(f"{file}: {exc} The file was edited or is damaged: use another checkpoint.") from exc
    return {**meta, "backbone": backbone, "data": data, "recording": check_recording(meta.get("recording"), str(file))}
