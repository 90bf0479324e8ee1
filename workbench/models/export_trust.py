"""What `wb.load_exported(folder)` trusts in a folder: only what workbench wrote, checked, and never code.

An exported folder can come from anyone (a colleague, a download), so load_exported treats it as
data. Before anything is built it
- reads workbench.json and checks every field it uses (kind, library, classes, preprocessing sizes,
  the manifest of files with their SHA-256);
- checks every file on the manifest (present, a plain file, the same SHA-256) and refuses a Python
  file or a pickle the manifest does not list; other files it did not write are never read;
- reads config.json through an allow-list per library: a timm or torchvision architecture by its
  registry name with only the arguments workbench writes, a transformers config of a model type
  transformers itself defines; it refuses `trust_remote_code` anywhere and any `auto_map` but the
  one workbench writes (it never imports that file either: its own copy of the code builds the model);
- builds the model on PyTorch's meta device first (no memory) and compares every tensor's shape
  with the weights file's header, so an absurd size in a config is refused before it is allocated;
- reads weights with safetensors only (no pickle).
Each refusal is a ConfigError naming the file, what is wrong and the fix (export it again).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..owned import digest, files_under

META = "workbench.json"
META_FORMAT = 2  # 2: workbench.json lists the files it wrote, with their SHA-256
MAX_IMAGE_SIZE = 4096
MAX_LENGTH = 1_000_000
MAX_CLASSES = 1_000_000
MAX_WIDTH = 1 << 20  # in / out features of a layer described in config.json
# files that can carry code: Python, native libraries, and formats that unpickle (torch.load of .bin / .pt)
CODE_OR_PICKLE = (".py", ".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib", ".pkl", ".pickle", ".bin", ".pt", ".pth",
                  ".ckpt", ".joblib", ".npy")
# the one auto_map workbench writes (export_formats._pooled_transformers), for transformers' own loaders
AUTO_MAP = {"AutoModelForSequenceClassification": "modeling_workbench.WorkbenchForSequenceClassification"}
POOLING_MODES = ("mean", "cls", "max", "mean-sqrt-len", "weighted-mean", "last-token", "last-non-padding", "pooler")
AGAIN = "export it again from the session (session.export(folder))"


def refuse(file: Path, problem: str) -> ConfigError:
    return ConfigError(f"{file}: {problem}. load_exported loads only what workbench wrote there; {AGAIN}.")


def read_json(file: Path) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise refuse(file, "missing") from None
    except (OSError, ValueError) as exc:
        raise refuse(file, f"not readable JSON ({type(exc).__name__}: {str(exc)[:80]})") from exc
    if not isinstance(value, dict):
        raise refuse(file, f"holds a {type(value).__name__}, not a JSON object")
    return value


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_meta(root: Path) -> dict[str, Any]:
    """workbench.json, every field load_exported uses checked."""
    file = root / META
    if not file.is_file():
        raise ConfigError(f"{str(root)!r} holds no {META}: it is not a folder written by session.export(). "
                          "Pass the folder you exported to.")
    meta = read_json(file)
    if meta.get("format") != META_FORMAT:
        raise ConfigError(f"{file} has format {str(meta.get('format'))[:20]}; this workbench reads {META_FORMAT} "
                          f"(format 2 lists the files it wrote, with their SHA-256): {AGAIN}.")
    classes, pre = meta.get("classes"), meta.get("preprocess")
    libraries = ("timm", "transformers", "torchvision", "module")
    if meta.get("kind") not in ("image", "text") or meta.get("library") not in libraries:
        raise refuse(file, f"kind {str(meta.get('kind'))[:20]!r} / library {str(meta.get('library'))[:20]!r} is not one "
                           "workbench writes")
    if (not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)):
        raise refuse(file, "the classes must be a list of 2 or more different strings")
    if not isinstance(pre, dict):
        raise refuse(file, "the preprocessing must be a JSON object")
    if meta["kind"] == "image":
        ok = (_whole(pre.get("size"), 1, MAX_IMAGE_SIZE) and all(
            isinstance(pre.get(k), list) and len(pre[k]) == 3 and all(_finite(v) for v in pre[k]) for k in ("mean", "std"))
            and all(v > 0 for v in pre["std"]))
        if not ok:
            raise refuse(file, f"the preprocessing needs a size from 1 to {MAX_IMAGE_SIZE} and 3 finite means and "
                               "positive standard deviations")
    elif not _whole(pre.get("max_length"), 1, MAX_LENGTH):
        raise refuse(file, f"the preprocessing needs a max_length from 1 to {MAX_LENGTH}")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(isinstance(f, str) and isinstance(h, str) and len(h) == 64
                                              for f, h in files.items()):
        raise refuse(file, "the list of files workbench wrote (\"files\") is missing or damaged")
    return meta


def check_files(root: Path, meta: dict[str, Any]) -> None:
    """Every file on the manifest is there, a plain file, unchanged; no code or pickle beside them
    that workbench did not write."""
    listed = meta["files"]
    for name, sha in listed.items():
        path = root / name
        if name.startswith("/") or ".." in Path(name).parts or not path.is_file() or path.is_symlink():
            raise refuse(path, "missing (or not a plain file in the folder)")
        if digest(path) != sha:
            raise refuse(path, "changed since workbench wrote it (its SHA-256 differs from workbench.json's list)")
    for name in files_under(root):
        if name not in listed and name != META and name.lower().endswith(CODE_OR_PICKLE):
            raise ConfigError(f"{root / name} is not a file workbench wrote, and it could hold code (a Python file or a "
                              "pickle). load_exported never runs code from a folder, and refuses one that carries code "
                              f"it did not write: delete that file if you know where it comes from, or {AGAIN}.")


def _no_remote_code(value: Any, file: Path, allow_auto_map: bool) -> None:
    """No `trust_remote_code` anywhere in a config; an `auto_map` only where workbench writes its own."""
    if isinstance(value, dict):
        for key, v in value.items():
            if key == "trust_remote_code":
                raise ConfigError(f"{file} asks for trust_remote_code: load_exported never runs code from a folder, and "
                                  f"workbench never writes that key. {AGAIN[0].upper() + AGAIN[1:]}.")
            if key == "auto_map" and not (allow_auto_map and v == AUTO_MAP):
                raise ConfigError(f"{file} names code to import (auto_map {str(v)[:80]}) that workbench did not write: "
                                  f"load_exported never imports code from a folder. {AGAIN[0].upper() + AGAIN[1:]}.")
            _no_remote_code(v, file, False)  # workbench's auto_map is a top-level key
    elif isinstance(value, list):
        for v in value:
            _no_remote_code(v, file, False)


def _args(args: Any, allowed: Mapping[str, Callable[[Any], bool]], file: Path) -> dict[str, Any]:
    """Model arguments from config.json: only the names workbench writes, each of its type and size."""
    if not isinstance(args, dict):
        raise refuse(file, "model_args must be a JSON object")
    for key, value in args.items():
        if key not in allowed or not allowed[key](value):
            raise refuse(file, f"model_args {str(key)[:40]}={str(value)[:40]} is not an argument workbench writes "
                               f"(it writes {', '.join(allowed)} only, each a bounded number or a flag)")
    return dict(args)


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _size(v: Any) -> bool:
    return _whole(v, 1, MAX_IMAGE_SIZE)


def _sizes(v: Any) -> bool:
    return _size(v) or (isinstance(v, list) and len(v) == 2 and all(map(_size, v)))


# what workbench passes to timm.create_model, and what timm's save_for_hf adds (the model's traits)
TIMM_ARGS = {"img_size": _sizes, "use_aux_head": _flag, "num_classes": lambda v: _whole(v, 2, MAX_CLASSES),
             "in_chans": lambda v: _whole(v, 1, 64),
             "global_pool": lambda v: isinstance(v, str) and len(v) <= 32 and v.replace("_", "").isalnum() or v == ""}
TORCHVISION_ARGS = {"aux_logits": _flag, "transform_input": _flag, "image_size": _size, "init_weights": _flag}


def check_layer(spec: Any, file: Path, depth: int = 0) -> dict[str, Any]:
    """A layer description (exported_loader.build) with known types and bounded sizes."""
    fields: dict[str, dict[str, Callable[[Any], bool]]] = {
        "Linear": {"in": lambda v: _whole(v, 1, MAX_WIDTH), "out": lambda v: _whole(v, 1, MAX_WIDTH), "bias": _flag},
        "Conv1x1": {"in": lambda v: _whole(v, 1, MAX_WIDTH), "out": lambda v: _whole(v, 1, MAX_WIDTH), "bias": _flag},
        "AdaptiveAvgPool2d": {"size": lambda v: _whole(v, 1, MAX_IMAGE_SIZE) or (
            isinstance(v, list) and len(v) == 2 and all(_whole(x, 1, MAX_IMAGE_SIZE) for x in v))},
        "Flatten": {"start": lambda v: _whole(v, 0, 8)}, "Dropout": {"p": lambda v: _finite(v) and 0 <= v < 1},
        "ReLU": {}, "Identity": {}, "Sequential": {"children": lambda v: isinstance(v, list) and len(v) <= 64}}
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in fields or depth > 8 or set(spec) != {"type", *fields[kind]} or not all(
            check(spec[k]) for k, check in fields[kind].items()):
        raise refuse(file, f"the layer {str(spec)[:80]} is not one workbench describes")
    for child in spec.get("children", []):
        check_layer(child, file, depth + 1)
    return spec


def check_config(root: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """config.json read through the allow-list of its library (see the module docstring)."""
    file = root / "config.json"
    cfg = read_json(file)
    library, k = meta["library"], len(meta["classes"])
    _no_remote_code(cfg, file, allow_auto_map=library == "transformers")
    if library == "timm":
        import timm

        arch = cfg.get("architecture")
        if not isinstance(arch, str) or ":" in arch or arch not in timm.list_models():
            raise refuse(file, f"architecture {str(arch)[:60]!r} is not a timm model name")
        args = _args(cfg.get("model_args", {}), TIMM_ARGS, file)
        if cfg.get("num_classes") != k or args.get("num_classes", k) != k:
            raise refuse(file, f"num_classes {str(cfg.get('num_classes'))[:20]} differs from workbench.json's {k} classes")
    elif library == "transformers":
        from transformers import CONFIG_MAPPING

        if cfg.get("model_type") not in CONFIG_MAPPING:
            raise refuse(file, f"model_type {str(cfg.get('model_type'))[:40]!r} is not one transformers defines")
        pooled = "auto_map" in cfg
        modes, kwargs = cfg.get("workbench_pooling"), cfg.get("workbench_encoder_kwargs", {})
        known_modes = isinstance(modes, list) and 1 <= len(modes) <= len(POOLING_MODES) and all(m in POOLING_MODES for m in modes)
        known_kwargs = isinstance(kwargs, dict) and set(kwargs) <= {"add_pooling_layer"} and all(map(_flag, kwargs.values()))
        if pooled and not (known_modes and known_kwargs and _whole(cfg.get("workbench_feature_size"), 1, MAX_WIDTH)):
            raise refuse(file, "the pooled classifier's settings (workbench_pooling, workbench_encoder_kwargs, "
                               "workbench_feature_size) are not ones workbench writes")
        if not pooled and any(key.startswith("workbench_") for key in cfg):
            raise refuse(file, "it has workbench's pooling settings but no pooled classifier")
    else:
        if library == "torchvision":
            import torchvision

            if cfg.get("architecture") not in torchvision.models.list_models():
                raise refuse(file, f"architecture {str(cfg.get('architecture'))[:60]!r} is not a torchvision model name")
            _args(cfg.get("model_args", {}), TORCHVISION_ARGS, file)
        replace = cfg.get("replace", [])
        if not isinstance(replace, list) or not all(isinstance(r, dict) and set(r) == {"path", "spec"} and r["path"]
                                                    and isinstance(r["path"], str) for r in replace):
            raise refuse(file, "'replace' must list layers by path and description")
        for r in replace:
            check_layer(r["spec"], file)
        if cfg.get("num_classes") != k:
            raise refuse(file, f"num_classes {str(cfg.get('num_classes'))[:20]} differs from workbench.json's {k} classes")
    return cfg


def weight_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header (nothing loaded; a file that is not safetensors, e.g.
    a pickle, is refused)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged header
        raise refuse(file, f"not a safetensors file ({type(exc).__name__}: {str(exc)[:80]})") from exc


def fits_weights(build: Callable[[], nn.Module], file: Path, what: str) -> set[str]:
    """Build the model on the meta device (no memory) and compare every tensor's shape with the
    weights file's header before the real model is allocated. Returns the names that may be absent
    from the file because they share another tensor (tied weights)."""
    saved = weight_shapes(file)
    try:
        with torch.device("meta"):
            module = build()
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, AssertionError) as exc:
        raise refuse(file.parent / "config.json", f"it does not describe a model workbench can build ({type(exc).__name__}: "
                                                  f"{str(exc)[:100]})") from exc
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    distinct = {*dict(module.named_parameters()), *dict(module.named_buffers())}
    tied = {k for k in expected if k not in distinct}
    missing = [k for k in expected if k not in saved and k not in tied]
    unexpected = [k for k in saved if k not in expected]
    wrong = [f"{k} {saved[k]} vs {expected[k]}" for k in expected if k in saved and saved[k] != expected[k]]
    if missing or unexpected or wrong:
        raise refuse(file, f"it does not fit the {what} that config.json describes ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected and {len(wrong)} misshapen tensors, e.g. "
                           f"{(wrong + missing + unexpected)[:2]})")
    return tied


def load_weights(module: nn.Module, file: Path, tied: set[str]) -> nn.Module:
    """The weights from safetensors into `module` (every tensor it has; tied ones come with their twin)."""
    from safetensors.torch import load_file

    result = module.load_state_dict(load_file(str(file)), strict=False)
    if result.unexpected_keys or set(result.missing_keys) - tied:
        raise refuse(file, f"it does not fit the model ({result.missing_keys[:2]} missing, {result.unexpected_keys[:2]} "
                           "unexpected)")
    return module.eval()
