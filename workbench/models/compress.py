"""Compress a fine-tuned model for the CPU: dynamic int8 quantization or magnitude pruning.

- method="int8": torch's own dynamic quantization (`torch.ao.quantization.quantize_dynamic`): every
  `nn.Linear` gets int8 weights (one scale per output channel), and its inputs are quantized batch by
  batch at run time. torch 2.x marks `torch.ao.quantization` deprecated in favour of torchao's
  `quantize_` (whose int8 CPU kernels pay off under torch.compile); the eager API still works in
  torch 2.14, needs no other package and is what ran here (its deprecation warnings are silenced).
  A transformer's time is mostly in Linear layers, so it runs faster; by how much depends on the
  CPU and the batch (benchmarks/compression.py, MiniLM on 2 AVX2 threads: 1.53x one review at a
  time, where int8 weights cut the bytes read; 1.45x in batches of 32, where the products dominate:
  there AVX2 int8 products are ~1.6x float ones and attention, GELU and LayerNorm, ~20% of the
  float time, stay float. An AVX-512 machine measured 2.56x in batches). CNNs keep their
  convolutions in float (only their classifier is Linear), so they barely change.
- method="prune": global magnitude pruning (`torch.nn.utils.prune.global_unstructured` with L1
  magnitude) of `amount` of the weights of every Linear and Conv layer, made permanent
  (`prune.remove`): a plain float model whose smallest weights are zeros. Dense kernels do not skip
  zeros, so it is no faster and the same size on disk; the zeros compress (the table's gzip column).

Both work on a float32 CPU copy: the session's own model is never changed. The result predicts and
exports like a session (`predict`, `export`) and compares itself with the original (`table()`):
size on disk, CPU latency one sample at a time and per batch, valid accuracy and agreement with the
original's predictions.
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, suggest
from .measure import (LATENCY_BATCH, accuracy, agreement, cpu_latency_ms, forward_each_fn, forward_fn, latency_input,
                      logits_on, parameter_count, single_inputs, state_bytes)

METHODS = ("int8", "prune")
INT8_FILE = "model_int8.pt"


@contextmanager
def _quiet_quantization():
    """torch.ao.quantization's deprecation notices (it still works; see the module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.ao")
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")  # torch.load of int8 weights
        yield


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every nn.Linear of `module` (a float32 CPU module, changed in place)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    # per output channel: one scale per row of each weight. On MiniLM / Rotten Tomatoes the per-tensor
    # default flipped 11.5% of valid predictions (accuracy -0.012), per channel 6.5% (+0.015), at the same speed.
    with _quiet_quantization():
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig},
                                                      dtype=torch.qint8, inplace=True)


def prunable(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """(layer, "weight") for every Linear and Conv layer: what magnitude pruning ranks together."""
    return [(m, "weight") for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


def prune_magnitude(module: nn.Module, amount: float) -> float:
    """Zero the `amount` fraction of Linear/Conv weights with the smallest magnitude (ranked across
    all of them), permanently. Returns the share of those weights that are zero afterwards."""
    from torch.nn.utils import prune

    targets = prunable(module)
    module.to(memory_format=torch.contiguous_format)  # channels-last weights: prune ranks them as flat views
    with torch.no_grad():
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        for layer, name in targets:
            prune.remove(layer, name)
    return sparsity(module)


def sparsity(module: nn.Module) -> float:
    """The share of zeros among the weights of the Linear and Conv layers."""
    weights = [layer.weight for layer, _ in prunable(module)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(total, 1)


def check_method(method: Any, amount: Any) -> float | None:
    """Validate (method, amount) before anything is copied; returns the amount to prune."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown.{suggest(str(method), METHODS)} Use 'int8' (dynamic int8 "
                          "quantization of the Linear layers) or 'prune' (magnitude pruning, amount=0.5).")
    if method == "int8":
        if amount is not None:
            raise ConfigError("amount applies to method='prune' (the share of weights set to zero); int8 takes none.")
        return None
    from ..validate import number

    amount = 0.5 if amount is None else amount
    return number("amount", amount, low=0, high=1, low_open=True, high_open=True,
                  hint="The share of Linear/Conv weights set to zero, in (0, 1), e.g. 0.5.")


def compress(model, data, method: str = "int8", *, amount: float | None = None, measure: bool = True) -> Compressed:
    """A compressed float32 CPU copy of `model` (a workbench Model), measured on `data`'s valid split
    against the original when `measure` (see the module docstring)."""
    from .export import cpu_copy

    amount = check_method(method, amount)
    original = cpu_copy(model.module).eval()
    module = cpu_copy(model.module).eval()
    if method == "int8":
        if not any(isinstance(m, nn.Linear) for m in module.modules()):
            raise ConfigError(f"{model.name} has no nn.Linear layer, so dynamic int8 quantization changes nothing; "
                              "use method='prune'.")
        module = quantize_int8(module)
    else:
        if not prunable(module):
            raise ConfigError(f"{model.name} has no Linear or Conv layer to prune.")
        prune_magnitude(module, amount)
    compressed = Compressed(model, _with_module(model, module), data.classes, method, amount, original)
    if measure:
        compressed.measure(data)
    return compressed


def _with_module(model, module: nn.Module):
    """A shallow copy of the workbench Model around `module` (same preprocessing, head path, recipe)."""
    twin = copy.copy(model)
    twin.module = module
    twin._pooled = None  # a library's pooled-features function is bound to the original module
    twin.modules_changed()
    return twin


@dataclass
class CompressionReport:
    """Original vs compressed on the valid split, on the CPU (float32 vs the compressed copy)."""

    method: str
    amount: float | None
    labels: np.ndarray
    original_logits: np.ndarray
    compressed_logits: np.ndarray
    original_bytes: tuple[int, int]  # (torch.save bytes, gzip bytes)
    compressed_bytes: tuple[int, int]
    original_latency_ms: float  # ms per batch of LATENCY_BATCH samples (throughput)
    compressed_latency_ms: float
    original_latency_one_ms: float  # ms per sample when samples come one at a time (latency)
    compressed_latency_one_ms: float
    original_params: int
    sparsity: float | None

    @property
    def original_accuracy(self) -> float:
        return accuracy(self.original_logits, self.labels)

    @property
    def compressed_accuracy(self) -> float:
        return accuracy(self.compressed_logits, self.labels)

    @property
    def agreement(self) -> float:
        """The share of valid samples where the compressed model predicts what the original predicts."""
        return agreement(self.original_logits, self.compressed_logits)

    @property
    def speedup(self) -> float:
        """Original time / compressed time for a batch of LATENCY_BATCH samples (throughput)."""
        return self.original_latency_ms / max(self.compressed_latency_ms, 1e-9)

    @property
    def speedup_one(self) -> float:
        """Original time / compressed time per sample when samples come one at a time (latency).
        It can differ a lot from `speedup`: with one sample the weights are most of the memory
        traffic, and int8 weights are a quarter of it; in a batch the matrix products dominate, and
        how much faster int8 products are depends on the CPU's integer instructions."""
        return self.original_latency_one_ms / max(self.compressed_latency_one_ms, 1e-9)

    @property
    def size_ratio(self) -> float:
        """Compressed bytes / original bytes, as torch.save writes them."""
        return self.compressed_bytes[0] / max(self.original_bytes[0], 1)

    def table(self):
        """A DataFrame, one row per model: MB on disk (and gzipped); CPU ms per sample one at a time
        and per batch, each with its speed-up (timed in turns with the original); accuracy, agreement.
        Compare speed-ups across tables, not ms: each table times its own pair."""
        import pandas as pd

        label = "int8 (dynamic)" if self.method == "int8" else f"pruned {self.amount:.0%}"
        rows = {
            "original (float32)": (self.original_bytes, self.original_latency_one_ms, 1.0, self.original_latency_ms,
                                   1.0, self.original_accuracy, 1.0),
            label: (self.compressed_bytes, self.compressed_latency_one_ms, self.speedup_one, self.compressed_latency_ms,
                    self.speedup, self.compressed_accuracy, self.agreement),
        }
        return pd.DataFrame.from_dict(
            {k: {"size_mb": b[0] / 1e6, "gzip_mb": b[1] / 1e6, "cpu_ms_1": one, "speedup_1": speed_one,
                 f"cpu_ms_per_{LATENCY_BATCH}": ms, f"speedup_{LATENCY_BATCH}": speed, "accuracy": acc,
                 "agreement": agree} for k, (b, one, speed_one, ms, speed, acc, agree) in rows.items()},
            orient="index")

    def summary(self) -> str:
        what = "int8" if self.method == "int8" else f"pruned ({self.sparsity:.0%} of Linear/Conv weights zero)"
        return (f"{what}: accuracy {self.compressed_accuracy:.3f} vs {self.original_accuracy:.3f}, agrees on "
                f"{self.agreement:.1%}; {self.speedup_one:.2f}x the original's CPU speed one sample at a time, "
                f"{self.speedup:.2f}x in batches of {LATENCY_BATCH}; "
                f"{self.compressed_bytes[0] / 1e6:.1f} MB vs {self.original_bytes[0] / 1e6:.1f} MB "
                f"(gzip {self.compressed_bytes[1] / 1e6:.1f} vs {self.original_bytes[1] / 1e6:.1f})")


class Compressed:
    """A compressed copy of a model: `predict(items)`, `export(folder)`, and `report` / `table()`
    comparing it with the original (see the module docstring)."""

    def __init__(self, source, model, classes, method: str, amount: float | None, original: nn.Module) -> None:
        self.source = source  # the workbench Model it was made from (left as it was)
        self.model = model  # the compressed Model (CPU, float32 or int8 Linear layers)
        self.classes = [str(c) for c in classes]
        self.method, self.amount = method, amount
        self._original = original  # the float32 CPU copy it was made from: the export's float weights
        self.report: CompressionReport | None = None

    @property
    def module(self) -> nn.Module:
        return self.model.module

    @property
    def sparsity(self) -> float | None:
        return sparsity(self.module) if self.method == "prune" else None

    def measure(self, data) -> CompressionReport:
        """Valid accuracy, agreement, size and CPU latency of the original and this copy, in one go."""
        from .measure import split_inputs

        batches = split_inputs(data, self.model, "valid")
        n, kind = len(data.valid), self.model.kind
        x = latency_input(data, self.model, LATENCY_BATCH)
        latency = cpu_latency_ms({"original": forward_fn(self._original, kind, x),
                                  "compressed": forward_fn(self.module, kind, x)})
        singles = single_inputs(data, self.model)
        one = cpu_latency_ms({"original": forward_each_fn(self._original, kind, singles),
                              "compressed": forward_each_fn(self.module, kind, singles)})
        self.report = CompressionReport(
            method=self.method, amount=self.amount, labels=np.asarray(data.valid.labels, dtype=np.int64),
            original_logits=logits_on(self._original, kind, batches, n),
            compressed_logits=logits_on(self.module, kind, batches, n),
            original_bytes=state_bytes(self._original), compressed_bytes=state_bytes(self.module),
            original_latency_ms=latency["original"], compressed_latency_ms=latency["compressed"],
            original_latency_one_ms=one["original"] / len(singles),
            compressed_latency_one_ms=one["compressed"] / len(singles),
            original_params=parameter_count(self._original), sparsity=self.sparsity)
        return self.report

    def table(self):
        if self.report is None:
            raise ConfigError("Nothing measured yet: call compressed.measure(data) (or compress with measure=True).")
        return self.report.table()

    def predict(self, items):
        """Labels and probabilities for new items, prepared as the valid split (on the CPU)."""
        from .export import predict

        return predict(self.model, self.classes, items, device="cpu")

    def export(self, folder, format: str = "native") -> Path:
        """Write it loadable without workbench. Pruned: the library's own format (the zeros are in the
        weights). int8: the library's format holds float weights only, so the folder gets the float
        model it was made from plus `model_int8.pt` (the int8 state dict, torch.save; load it with
        weights_only=True into quantize_dynamic(float model)); wb.load_exported gives the int8 model.
        ONNX cannot hold torch's dynamically quantized layers: for an int8 ONNX file export the float
        model with format='onnx' and quantize that file with onnxruntime.quantization.quantize_dynamic."""
        from .export import _dummy, _forward, export, same_logits

        if self.method == "prune":
            return export(self.model, self.classes, folder, format=format)
        if format == "onnx":
            raise ConfigError("torch's dynamically quantized (int8) layers do not export to ONNX. Export the float "
                              "model instead (session.export(folder, format='onnx')) and quantize model.onnx with "
                              "onnxruntime.quantization.quantize_dynamic(model_input, model_output).")
        return export(_with_module(self.source, self._original), self.classes, folder, format=format,
                      extra=self._add_int8)

    def _add_int8(self, folder: Path, meta: dict[str, Any]) -> str:
        """In the export being written: the int8 state of the module as the library rebuilds it (its
        own parameter names; quantizing the same float weights gives the same int8 weights), loaded
        back the way wb.load_exported loads it and checked against this model's logits. Listed in
        the manifest like every file workbench writes."""
        from ..owned import manifest
        from .export import _dummy, _forward, same_logits
        from .export_load import load_model

        written = {**meta, "files": manifest(folder)}  # the float files, hashed once
        cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}

        def float_module() -> nn.Module:  # a fresh one each time: quantize_int8 changes its module in place
            own = copy.deepcopy(self._original) if meta["library"] == "module" else None
            return load_model(folder, written, cfg, own)

        torch.save(quantize_int8(float_module().to("cpu", torch.float32).eval()).state_dict(), folder / INT8_FILE)
        meta["quantized"] = {"method": "dynamic int8", "layers": "torch.nn.Linear", "file": INT8_FILE}
        x = _dummy(self.model)
        same_logits(_forward(self.module, x), _forward(load_quantized(folder, meta, float_module()), x), "int8 model")
        return INT8_README

    def _repr_html_(self) -> str:
        if self.report is None:
            return f"<pre>{self!r}</pre>"
        return self.report.table().to_html(float_format=lambda v: f"{v:.3f}")

    def __repr__(self) -> str:
        what = self.report.summary() if self.report is not None else "not measured"
        return f"Compressed({self.source.name}, {self.method}: {what})"


INT8_README = f"""
## The int8 model

The files above hold the float32 model it was made from. `{INT8_FILE}` holds the dynamically quantized
(int8 nn.Linear) state dict. To get the int8 model without workbench, build the float model as above, then:

```python
import torch
model = torch.ao.quantization.quantize_dynamic(model, {{torch.nn.Linear}}, dtype=torch.qint8)
model.load_state_dict(torch.load("{INT8_FILE}", weights_only=True))
```
"""


def load_quantized(root: Path, meta: dict[str, Any], module: nn.Module) -> nn.Module:
    """The int8 model of an export (`meta["quantized"]`): the float module quantized, then its int8
    state loaded (weights_only: tensors and plain values, no code)."""
    spec = meta["quantized"]
    if not isinstance(spec, dict) or spec.get("method") != "dynamic int8" or spec.get("file") != INT8_FILE:
        raise ConfigError(f"{root}/workbench.json names a quantization this workbench does not read: {spec!r}.")
    module = quantize_int8(module.to("cpu", torch.float32).eval())
    with _quiet_quantization():
        state = torch.load(root / INT8_FILE, weights_only=True, map_location="cpu")
        module.load_state_dict(state)
    return module
