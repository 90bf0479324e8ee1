"""What a model costs: parameters, bytes on disk, CPU latency, and its logits on a split.

Shared by distillation (teacher vs student) and compression (original vs compressed): every
contender is measured in the same call, alternating, so a noisy machine slows them alike.
"""

from __future__ import annotations

import gzip
import io
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

LATENCY_BATCH = 32  # samples per timed forward: throughput, as when a split is predicted
LATENCY_SINGLES = 8  # samples timed one at a time (batch of 1): latency, as when requests come one by one
LATENCY_REPEATS = 5  # timed forwards per contender (median), after one warm-up each


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows whose highest logit is the label."""
    return float((logits.argmax(1) == labels).mean())


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement: the share of rows where two models' logits pick the same class."""
    return float((a.argmax(1) == b.argmax(1)).mean())


def parameter_count(module: nn.Module) -> int:
    """Parameters, counting packed int8 weights of quantized Linear layers as their elements."""
    total = sum(p.numel() for p in module.parameters())
    for m in module.modules():
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() + (bias.numel() if bias is not None else 0)
    return total


def state_bytes(module: nn.Module) -> tuple[int, int]:
    """(bytes, gzip bytes) of the module's weights as torch.save writes them: what a checkpoint of
    it weighs, and how much of that is redundancy (pruned zeros compress; dense floats barely)."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    raw = buf.getvalue()
    return len(raw), len(gzip.compress(raw, compresslevel=6))


def cpu_latency_ms(forwards: Mapping[str, Callable[[], Any]], repeats: int = LATENCY_REPEATS) -> dict[str, float]:
    """Median milliseconds of each no-argument `forward`, timed in turns (a, b, a, b, ...) after one
    warm-up each, so background load falls on every contender alike."""
    times: dict[str, list[float]] = {name: [] for name in forwards}
    with torch.inference_mode():
        for fn in forwards.values():
            fn()
        for _ in range(repeats):
            for name, fn in forwards.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def split_inputs(data, model, split: str = "valid", batch_size: int = 64) -> list[tuple[torch.Tensor, Any]]:
    """(positions, model inputs on the CPU) per batch of `split`, prepared as the session prepares
    its valid split for `model` (no augmentation)."""
    from ..train.pipeline import Pipeline

    pipeline = Pipeline(data, model, torch.device("cpu"), channels_last=False)
    order = pipeline.order(split, batch_size, None, shuffle=False, by_length=True)
    return [(idx, pipeline.batch(split, idx)) for idx in order]


def logits_on(module: nn.Module, kind: str, batches: list[tuple[torch.Tensor, Any]], n: int,
              progress: Callable[[int], None] = lambda done: None) -> np.ndarray:
    """The module's logits (n, K) for every sample, in sample order, in eval mode."""
    out: np.ndarray | None = None
    progress(0)
    with torch.inference_mode():
        for b, (idx, x) in enumerate(batches):
            y = module(x) if kind == "image" else module(**x)
            y = (y if isinstance(y, torch.Tensor) else y.logits).float().numpy()
            if out is None:
                out = np.empty((n, y.shape[1]), dtype=np.float32)
            out[idx.numpy()] = y
            progress(b + 1)
    assert out is not None, "no batches"
    return out


def latency_input(data, model, size: int = LATENCY_BATCH, split: str = "valid") -> Any:
    """The first `size` samples of `split` prepared for `model` on the CPU: what it is timed on
    (in sample order, so texts of every length, as they come)."""
    from ..train.pipeline import Pipeline

    pipeline = Pipeline(data, model, torch.device("cpu"), channels_last=False)
    return pipeline.batch(split, torch.arange(min(size, len(getattr(data, split)))))


def single_inputs(data, model, size: int = LATENCY_SINGLES, split: str = "valid") -> list[Any]:
    """The first `size` samples of `split`, each prepared alone (a batch of 1, no padding): what
    a model meets when requests come one at a time."""
    from ..train.pipeline import Pipeline

    pipeline = Pipeline(data, model, torch.device("cpu"), channels_last=False)
    return [pipeline.batch(split, torch.tensor([i])) for i in range(min(size, len(getattr(data, split))))]


def forward_fn(module: nn.Module, kind: str, x: Any) -> Callable[[], Any]:
    return (lambda: module(x)) if kind == "image" else (lambda: module(**x))


def forward_each_fn(module: nn.Module, kind: str, xs: list[Any]) -> Callable[[], Any]:
    """One call that runs the module on each input in turn (batch-of-1 latency, summed)."""
    forwards = [forward_fn(module, kind, x) for x in xs]
    return lambda: [f() for f in forwards]
