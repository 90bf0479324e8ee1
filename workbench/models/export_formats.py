"""The files of an export, per library (see export.py): each writer builds the library's own model,
loads the fine-tuned weights into it, checks its logits against the session model's, writes it, and
loads it back as a user would, checking again. Returns what workbench.json records about it."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, MissingDependencyError
from .export import ONNX_TOL, _forward, cpu_copy, native_state, same_logits
from .heads import Head, set_module

HERE = Path(__file__).resolve().parent


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"The fine-tuned weights do not fit {what} ({str(err).splitlines()[0]}).") from err


def _source(model) -> str:
    from .registry import resolve

    return resolve(model.name).source


# ------------------------------------------------------------------------------------------ timm
def write_timm(model, classes: list[str], folder: Path, x: Any, expected: torch.Tensor) -> dict[str, Any]:
    import timm
    from timm.models import save_for_hf

    module = model.module
    arch = getattr(module, "pretrained_cfg", {}).get("architecture") or _source(model)
    args: dict[str, Any] = {}
    cfg = timm.get_pretrained_cfg(arch)
    if cfg is not None and cfg.fixed_input_size and int(cfg.input_size[-1]) != model.preprocess.size:
        args["img_size"] = model.preprocess.size
    if "use_aux_head" in inspect.signature(type(module).__init__).parameters:
        args["use_aux_head"] = getattr(module, "aux_head", None) is not None
    k = len(classes)
    plain = timm.create_model(arch, pretrained=False, num_classes=k, **args)
    _load_strict(plain, native_state(module), f"timm's {arch} with {k} classes")
    same_logits(expected, _forward(plain, x), f"timm model {arch}")
    pre = model.preprocess
    data_config = {"input_size": (3, pre.size, pre.size), "mean": tuple(pre.mean), "std": tuple(pre.std),
                   "crop_pct": 1.0, "interpolation": "bilinear"}
    save_for_hf(plain, str(folder), model_config={"label_names": classes}, model_args=args,
                safe_serialization=True, data_config=data_config)  # fmt: skip
    file = folder / "model.safetensors"
    loaded = timm.create_model(arch, pretrained=True, num_classes=k, pretrained_cfg_overlay=dict(file=str(file), num_classes=k),
                               **args)  # fmt: skip
    same_logits(expected, _forward(loaded, x), f"timm model {arch} (reloaded)")
    return {"architecture": arch, "model_args": args, "load": (
        f"timm.create_model({arch!r}, pretrained=True, num_classes={k}, "
        f"pretrained_cfg_overlay=dict(file='FOLDER/model.safetensors', num_classes={k})"
        + "".join(f", {a}={v!r}" for a, v in args.items()) + ")  # or timm.create_model('local-dir:FOLDER', pretrained=True)")}


# ----------------------------------------------------------------------------------- transformers
def write_transformers(model, classes: list[str], folder: Path, x: Any, expected: torch.Tensor) -> dict[str, Any]:
    from .pooling import SentenceClassifier

    module = model.module
    config = _labelled_config(module.config, classes)
    tokenizer = _tokenizer_copy(model)
    native_error = None
    if not isinstance(module, SentenceClassifier):
        try:
            return _native_transformers(model, config, tokenizer, folder, x, expected)
        except ConfigError as err:  # e.g. a new head with a bias where the library's has none
            native_error = err
            for f in folder.iterdir():
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    return _pooled_transformers(model, config, tokenizer, folder, x, expected, native_error)


def _labelled_config(config: Any, classes: list[str]) -> Any:
    import copy

    config = copy.deepcopy(config)
    config.num_labels = len(classes)
    config.id2label = dict(enumerate(classes))
    config.label2id = {c: i for i, c in enumerate(classes)}
    return config


def _tokenizer_copy(model) -> Any:
    import copy

    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.model_max_length = model.preprocess.max_length  # truncation without arguments matches ours
    return tokenizer


def _native_transformers(model, config: Any, tokenizer: Any, folder: Path, x: Any, expected: torch.Tensor) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_config(config)
    _load_strict(plain, native_state(model.module), f"{type(plain).__name__}")
    same_logits(expected, _forward(plain, x), type(plain).__name__)
    plain.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    loaded = AutoModelForSequenceClassification.from_pretrained(str(folder))
    same_logits(expected, _forward(loaded, x), f"{type(plain).__name__} (reloaded)")
    return {"architecture": type(plain).__name__, "load": "AutoModelForSequenceClassification.from_pretrained(FOLDER)"}


def _pooled_transformers(model, config: Any, tokenizer: Any, folder: Path, x: Any, expected: torch.Tensor,
                         native_error: Exception | None) -> dict[str, Any]:  # fmt: skip
    """The encoder, the model's pooling and its head as `exported_modeling.WorkbenchForSequenceClassification`."""
    from .common import path_of
    from .exported_modeling import WorkbenchForSequenceClassification
    from .pooling import SentenceClassifier

    module = model.module
    encoder = module.base_model
    base = path_of(module, encoder)
    if isinstance(module, SentenceClassifier):
        modes = list(module.modes)
    else:
        modes = {"last-token": ["last-non-padding"], "pooler": ["pooler"], "cls": ["cls"], "mean": ["mean"]}.get(model.pooling)
        if modes is None:
            raise ConfigError(f"{model.name} pools with {model.pooling!r}, which the exported model cannot repeat "
                              f"({native_error}); save the session instead (session.save(path)).")
    heads = [p for p, m in module.named_modules() if isinstance(m, Head)]
    state, rest = {}, []
    for key, value in native_state(module).items():
        if base and key.startswith(base + "."):
            state["encoder." + key[len(base) + 1:]] = value
        elif heads and key.startswith(heads[0] + "."):
            state["classifier." + key[len(heads[0]) + 1:]] = value
        else:
            rest.append(key)
    if rest or len(heads) != 1:
        raise ConfigError(f"{model.name}'s classifier holds layers besides its head ({rest[:3]}) that the exported "
                          f"model cannot hold ({native_error}); save the session instead (session.save(path)).")
    kwargs = {}
    if getattr(encoder, "pooler", None) is None and "add_pooling_layer" in inspect.signature(type(encoder).__init__).parameters:
        kwargs["add_pooling_layer"] = False
    config.workbench_pooling = modes
    config.workbench_encoder_kwargs = kwargs
    config.workbench_feature_size = int(state["classifier.weight"].shape[1])
    config.architectures = ["WorkbenchForSequenceClassification"]
    config.auto_map = {"AutoModelForSequenceClassification": "modeling_workbench.WorkbenchForSequenceClassification"}
    built = WorkbenchForSequenceClassification(config)
    _load_strict(built, state, "the exported pooled classifier")
    same_logits(expected, _forward(built, x), "pooled classifier")
    built.save_pretrained(str(folder))
    shutil.copyfile(HERE / "exported_modeling.py", folder / "modeling_workbench.py")
    tokenizer.save_pretrained(str(folder))
    loaded = _pooled_from(folder)
    same_logits(expected, _forward(loaded, x), "pooled classifier (reloaded)")
    return {"architecture": "WorkbenchForSequenceClassification", "pooling_modes": modes,
            "load": "AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True)  "
                    "# modeling_workbench.py: encoder, " + "+".join(modes) + " pooling, classifier"}


# -------------------------------------------------------------------- torchvision and your modules
def spec(module: nn.Module) -> dict[str, Any]:
    """A plain description of a small layer stack (loader.build makes it again); a workbench Head is
    written as the Linear (or 1x1 convolution) it computes in eval mode."""
    if isinstance(module, Head):
        linear = module[1]
        kind = "Conv1x1" if module.channels_first else "Linear"
        return {"type": kind, "in": linear.in_features, "out": linear.out_features, "bias": linear.bias is not None}
    if isinstance(module, nn.Sequential):
        return {"type": "Sequential", "children": [spec(m) for m in module]}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in": module.in_features, "out": module.out_features, "bias": module.bias is not None}
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return {"type": "AdaptiveAvgPool2d", "size": module.output_size}
    if isinstance(module, nn.Flatten):
        return {"type": "Flatten", "start": module.start_dim}
    if isinstance(module, nn.Dropout):
        return {"type": "Dropout", "p": module.p}
    if isinstance(module, (nn.ReLU, nn.Identity)):
        return {"type": type(module).__name__}
    raise ConfigError(f"{type(module).__name__} around the head cannot be described for the exported loader.")


def _loader_files(model, classes: list[str], folder: Path, cfg: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from .export import base_meta

    save_file(native_state(model.module), str(folder / "model.safetensors"))
    meta = base_meta(model, classes)
    cfg = {**cfg, "kind": model.kind, "num_classes": len(classes), "classes": classes, "preprocess": meta["preprocess"]}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    shutil.copyfile(HERE / "exported_loader.py", folder / "loader.py")
    if model.kind == "text" and hasattr(model.tokenizer, "save_pretrained"):
        _tokenizer_copy(model).save_pretrained(str(folder))


def write_torchvision(model, classes: list[str], folder: Path, x: Any, expected: torch.Tensor) -> dict[str, Any]:
    import torchvision

    from .exported_loader import build, load

    module = model.module
    arch = _source(model)
    accepted = inspect.signature(type(module).__init__).parameters
    args = {a: getattr(module, a) for a in ("aux_logits", "transform_input", "image_size") if a in accepted and hasattr(module, a)}
    if "init_weights" in accepted:
        args["init_weights"] = False  # the weights are loaded: skip the init (and its FutureWarning)
    k = len(classes)
    head_paths = [p for p, m in module.named_modules() if isinstance(m, Head)]
    parents = [p.rpartition(".")[0] for p in head_paths]
    candidates = [[], head_paths, parents if all(parents) else None]
    error: Exception | None = None
    for paths in candidates:  # the library's own classifier first; else the layers workbench put there
        if paths is None:
            continue
        try:
            replace = [{"path": p, "spec": spec(module.get_submodule(p))} for p in paths]
            built = torchvision.models.get_model(arch, weights=None, num_classes=k, **args)
            for r in replace:
                set_module(built, r["path"], build(r["spec"]))
            _load_strict(built, native_state(module), f"torchvision's {arch} with {k} classes")
            same_logits(expected, _forward(built, x), f"torchvision model {arch}")
            break
        except (ConfigError, ValueError, AttributeError) as err:
            error = err
    else:
        raise ConfigError(f"{model.name} cannot be exported as torchvision's {arch}: {error}") from error
    cfg = {"library": "torchvision", "architecture": arch, "model_args": args, "replace": replace}
    _loader_files(model, classes, folder, cfg)
    same_logits(expected, _forward(load(folder=folder), x), f"torchvision model {arch} (reloaded)")
    return {"architecture": arch, "model_args": args,
            "load": "import loader; model = loader.load()  # loader.py in FOLDER (torchvision.models.get_model + safetensors)"}


def write_module(model, classes: list[str], folder: Path, x: Any, expected: torch.Tensor) -> dict[str, Any]:
    """Your own module: its weights; the loader puts a plain Linear where workbench put its head."""
    from .exported_loader import build

    module = model.module
    seen: set[int] = set()
    replace = []
    for p, m in module.named_modules():
        if isinstance(m, Head) and id(m) not in seen:
            seen.add(id(m))
            replace.append({"path": p, "spec": spec(m)})
    check = cpu_copy(module)  # what loader.load(module) does to a module built as at training time
    for r in replace:
        set_module(check, r["path"], build(r["spec"]))
    _load_strict(check, native_state(module), "your module with a plain classifier")
    same_logits(expected, _forward(check, x), f"module {model.name}")
    _loader_files(model, classes, folder, {"library": "module", "architecture": model.name, "replace": replace})
    return {"architecture": model.name,
            "load": "import loader; model = loader.load(YourModule(...))  # loader.py in FOLDER; build your module "
                    "as when it was trained"}


# ------------------------------------------------------------------------------------------- ONNX
def require_onnx() -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise MissingDependencyError("format='onnx' needs onnx (and onnxscript for torch's current exporter): "
                                     "pip install onnx onnxscript onnxruntime")


class _ImageLogits(nn.Module):
    """The module as ONNX sees it: one named input, the logits out."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.module(pixel_values)
        return out if isinstance(out, torch.Tensor) else out.logits


class _TextLogits(_ImageLogits):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = self.module(input_ids=input_ids, attention_mask=attention_mask)
        return out if isinstance(out, torch.Tensor) else out.logits


def write_onnx(model, folder: Path, x: Any, expected: torch.Tensor, reference: nn.Module) -> dict[str, Any]:
    """model.onnx (dynamic batch, and sequence length for texts), checked with onnxruntime when it is
    installed. torch's current exporter (torch.export, needs onnxscript) first; the TorchScript one
    when that is missing or cannot trace the model. reference: the model's float32 CPU copy."""
    import importlib.util
    import warnings

    if model.kind == "image":
        wrapper: nn.Module = _ImageLogits(reference).eval()
        args, names = (x,), ["pixel_values"]
    else:
        wrapper = _TextLogits(reference).eval()
        args, names = (x["input_ids"], x["attention_mask"]), ["input_ids", "attention_mask"]
    axes = {0: "batch"} if model.kind == "image" else {0: "batch", 1: "sequence"}
    path = folder / "model.onnx"
    errors = []
    exporters = (["torch.export"] if importlib.util.find_spec("onnxscript") else []) + ["torchscript"]
    for exporter in exporters:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                if exporter == "torch.export":
                    dims = {i: torch.export.Dim.AUTO for i in axes}
                    big = sum(p.numel() * p.element_size() for p in wrapper.parameters()) > 1.8e9  # protobuf's 2 GB
                    torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["logits"],
                                      dynamic_shapes=tuple(dims for _ in names), dynamo=True, external_data=big,
                                      verbose=False)  # fmt: skip
                else:
                    torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["logits"],
                                      dynamic_axes={n: axes for n in names}, dynamo=False, opset_version=18)  # fmt: skip
            break
        except Exception as err:  # noqa: BLE001 - the exporters raise many types; the next one is tried
            errors.append(f"{exporter}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            path.unlink(missing_ok=True)
    else:
        raise ConfigError(f"{model.name} could not be exported to ONNX ({'; '.join(errors)}); export format='native'.")
    record: dict[str, Any] = {"file": "model.onnx", "inputs": names, "output": "logits", "exporter": exporter}
    try:
        import onnxruntime as ort
    except ImportError:
        record["checked"] = "not checked: onnxruntime is not installed"
        return record
    session = ort.InferenceSession(str(path))
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    got = torch.from_numpy(session.run(["logits"], feeds)[0])
    record["max_abs_diff"] = same_logits(expected, got, "ONNX model", rtol=ONNX_TOL, atol=ONNX_TOL)
    record["checked"] = f"onnxruntime {ort.__version__}"
    return record


# ---------------------------------------------------------------------------------- loading back
def _pooled_from(folder: Path) -> nn.Module:
    """The pooled classifier from our own copy of its code (what trust_remote_code would run), with
    the config of the encoder's own type (AutoConfig reads model_type): the export-time check of the
    folder just written (wb.load_exported builds it itself, export_load.py)."""
    from transformers import AutoConfig

    from .exported_modeling import WorkbenchForSequenceClassification

    config = AutoConfig.from_pretrained(str(folder))
    return WorkbenchForSequenceClassification.from_pretrained(str(folder), config=config)


def readme(meta: dict[str, Any]) -> str:
    """How to load the folder, in words and code (FOLDER stands for its path)."""
    lines = [f"# {meta['name']}, fine-tuned with workbench", "",
             f"{meta['kind']} classifier, {len(meta['classes'])} classes: {', '.join(meta['classes'][:20])}"
             + (" ..." if len(meta["classes"]) > 20 else ""), "",
             "Load it without workbench:", "", "```python", meta["load"].replace("FOLDER", "folder"), "```", "",
             f"Preprocessing (as the validation split): {json.dumps(meta['preprocess'])}", ""]  # fmt: skip
    if "onnx" in meta:
        lines += [f"ONNX: model.onnx, inputs {meta['onnx']['inputs']}, output logits ({meta['onnx']['checked']}).", ""]
    lines += ["With workbench: `wb.load_exported(folder).predict(items)`.", ""]
    return "\n".join(lines)
