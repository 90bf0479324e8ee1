"""`wb.load_exported(folder)`: a predictor from an exported folder, built by workbench itself.

No library loader is pointed at the folder (transformers' from_pretrained looks for remote code,
adapters and pickled weights; timm's for other checkpoint files): every part is checked by
export_trust.py first, then workbench builds the model from the checked config with its own code
(its copies of loader.py and modeling_workbench.py, never the folder's), loads the weights with
safetensors, and reads the tokenizer from a private copy of the files it listed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, MissingDependencyError
from . import export_trust as trust

NOT_TOKENIZER = (".safetensors", ".onnx", ".data", ".py", ".md")  # listed files a tokenizer never needs


def _hf_config(cfg: dict[str, Any]) -> Any:
    """The transformers config of the checked config.json, by the class transformers defines for its
    model_type (never a class the folder names)."""
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[cfg["model_type"]].from_dict({k: v for k, v in cfg.items() if k != "model_type"})


def _builder(meta: dict[str, Any], cfg: dict[str, Any]):
    """A function that builds the (random-init) model config.json describes, on the current device."""
    k = len(meta["classes"])
    library = meta["library"]
    if library == "timm":
        import timm

        args = {a: v for a, v in cfg.get("model_args", {}).items() if a != "num_classes"}  # checked: k
        return lambda: timm.create_model(cfg["architecture"], pretrained=False, num_classes=k, **args)
    if library == "transformers":
        config = _hf_config(cfg)
        if "auto_map" in cfg:
            from .exported_modeling import WorkbenchForSequenceClassification

            return lambda: WorkbenchForSequenceClassification(config)
        from transformers import AutoModelForSequenceClassification

        return lambda: AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)
    from .exported_loader import build, set_module

    def torchvision_model() -> nn.Module:
        import torchvision

        module = torchvision.models.get_model(cfg["architecture"], weights=None, num_classes=k, **cfg.get("model_args", {}))
        for r in cfg.get("replace", []):
            set_module(module, r["path"], build(r["spec"]))
        return module

    return torchvision_model


def _module_shapes(module: nn.Module, cfg: dict[str, Any], file: Path) -> None:
    """Your own module with workbench's plain layers in place of its head must fit the weights file
    (the layers are built on the meta device for the check)."""
    import torch

    from .exported_loader import build

    paths = [r["path"] for r in cfg.get("replace", [])]
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()
                if not any(k.startswith(p + ".") for p in paths)}
    for r in cfg.get("replace", []):
        with torch.device("meta"):
            layer = build(r["spec"])
        expected.update({f"{r['path']}.{k}": tuple(v.shape) for k, v in layer.state_dict().items()})
    saved = trust.weight_shapes(file)
    if saved != expected:
        wrong = sorted(set(saved) ^ set(expected)) or [k for k in saved if saved[k] != expected[k]]
        raise ConfigError(f"{file} does not fit the module you passed ({wrong[:2]} differ): pass the module built as when "
                          "it was trained, wb.load_exported(folder, module=MyNet()).")


def load_model(root: Path, meta: dict[str, Any], cfg: dict[str, Any], module: nn.Module | None) -> nn.Module:
    """The fine-tuned model in eval mode: sizes checked against the weights' header on the meta device,
    then built and loaded (safetensors only)."""
    weights = root / "model.safetensors"
    if "model.safetensors" not in meta["files"]:
        raise trust.refuse(weights, "not on workbench.json's list of files")
    if meta["library"] == "module":
        if module is None:
            raise ConfigError("This export holds your own module's weights: pass the module, built as when it was "
                              "trained, wb.load_exported(folder, module=MyNet()).")
        _module_shapes(module, cfg, weights)
        from .exported_loader import load

        return load(module, folder=root)
    build = _builder(meta, cfg)
    tied = trust.fits_weights(build, weights, f"{meta['library']} model")
    return trust.load_weights(build(), weights, tied)


def load_tokenizer(root: Path, meta: dict[str, Any]) -> Any:
    """The tokenizer from a private copy of the listed files (a library scanning the folder itself
    could pick up a file workbench did not write)."""
    from transformers import AutoTokenizer

    file = root / "tokenizer_config.json"
    if "tokenizer_config.json" in meta["files"]:
        trust._no_remote_code(trust.read_json(file), file, allow_auto_map=False)
    with tempfile.TemporaryDirectory(prefix="workbench-tokenizer-") as tmp:
        for name in meta["files"]:
            if "/" not in name and not name.lower().endswith(NOT_TOKENIZER):
                shutil.copyfile(root / name, Path(tmp) / name)
        try:
            return AutoTokenizer.from_pretrained(tmp, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"The tokenizer files in {root} cannot be read ({type(exc).__name__}: {str(exc)[:100]}); "
                              f"{trust.AGAIN}.") from exc


def load(folder, module: nn.Module | None = None, backend: str = "torch"):
    """A Predictor for `folder` (see export.load_exported), everything checked before it is built."""
    from .export import Predictor

    if backend not in ("torch", "onnx"):
        raise ConfigError(f"backend={backend!r} is unknown: use 'torch' or 'onnx'.")
    root = Path(folder).expanduser()
    meta = trust.read_meta(root)
    if backend == "onnx" and "model.onnx" not in meta["files"]:
        raise ConfigError(f"{str(root)!r} has no model.onnx; export with format='onnx'.")
    trust.check_files(root, meta)
    tokenizer = load_tokenizer(root, meta) if meta["kind"] == "text" else None
    if backend == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingDependencyError("backend='onnx' needs onnxruntime: pip install onnxruntime") from err
        return Predictor(None, meta, tokenizer, ort.InferenceSession(str(root / "model.onnx")))
    cfg = trust.check_config(root, meta)
    loaded = load_model(root, meta, cfg, module)
    if "quantized" in meta:  # an int8 export (models/compress.py): its listed, checked int8 state, weights only
        from .compress import INT8_FILE, load_quantized

        if INT8_FILE not in meta["files"]:
            raise trust.refuse(root / INT8_FILE, "not on workbench.json's list of files")
        loaded = load_quantized(root, meta, loaded)
    return Predictor(loaded, meta, tokenizer)
