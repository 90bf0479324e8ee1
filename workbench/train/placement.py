"""Where a Session's tensors live and how passes run there: device, memory format, the data
pipeline, mixed precision, forward-only batch size and per-device seeding."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable

import torch

from .config import TrainConfig, resolve_device
from .pipeline import Pipeline

# Forward-only passes (evaluation, the feature cache): big batches keep a GPU busy, while on this
# kind of CPU 64 images ran 1.3x faster per image than 256 (cache-sized activations; text 1.05x).
EVAL_BATCH = {"cuda": 256, "cpu": 64}


def place_model(model, device: torch.device, channels_last: bool) -> None:
    """Move the model's module to `device`, in channels_last for image models when asked."""
    model.module.to(device)
    if model.kind == "image":
        model.module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class Placement:
    """The device and the pipeline that feeds it. Build a new one to move; the old stays valid."""

    def __init__(self, data, model, config: TrainConfig, device: torch.device | None = None,
                 progress: Callable[[str, int], Callable[[int], None]] | None = None) -> None:
        self.device = device if device is not None else resolve_device(config.device)
        self.channels_last = config.channels_last
        self.pipeline = Pipeline(data, model, self.device, config.channels_last, progress)
        self.amp_measured = {}

    def same(self, config: TrainConfig) -> bool:
        """True when `config` needs no move: same device and memory format."""
        return resolve_device(config.device) == self.device and config.channels_last == self.channels_last

    def mixed_precision(self, config: TrainConfig, key: tuple | None = None) -> Callable[[], contextlib.AbstractContextManager]:
        """A context-manager factory for mixed precision, decided once per pass: reading
        `device.type` builds a string in C++ each call, which cost ~8 us a batch in the loop.
        amp="auto": off on the CPU (bf16 ran 1.7x slower there); on CUDA bf16, unless measuring
        this training step (`key`) found float32 faster (see measure_autocast)."""
        if config.amp == "off" or (config.amp == "auto" and self.device.type != "cuda"):
            return contextlib.nullcontext
        if config.amp == "auto" and key is not None and self.amp_measured.get(key, (True, ""))[0] is False:
            return contextlib.nullcontext
        return functools.partial(torch.autocast, self.device.type, dtype=torch.bfloat16)

    amp_measured: dict[tuple, tuple[bool, str]]  # training step -> (bf16 faster?, the measurement in words)

    def needs_amp_measurement(self, config: TrainConfig, key: tuple) -> bool:
        return config.amp == "auto" and self.device.type == "cuda" and key not in self.amp_measured

    def eval_batch(self, config: TrainConfig) -> int:
        return config.eval_batch_size or EVAL_BATCH.get(self.device.type, 64)

    def seed(self, seed: int) -> None:
        """Seed the CPU generator and this device. Not torch.manual_seed: with CUDA built in but
        unused it formats a stack trace per call for lazy init (~0.2 ms, every epoch)."""
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            with torch.cuda.device(self.device):
                torch.cuda.manual_seed(seed)

    def rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []


def measure_autocast(step: Callable[[Callable[[], contextlib.AbstractContextManager]], None], device: torch.device,
                     buffers: list[torch.Tensor], params: list[torch.Tensor], repeats: int = 3) -> tuple[bool, str]:
    """Time a training step's forward and backward with bf16 autocast and without, and say which
    is faster. Measured on an H200: bf16 made small, launch-bound models (EfficientNet-Lite0 at
    64 px, MiniLM at batch 32) 1.8-2.4x slower than float32 (a cast kernel per layer), and
    ResNet-50 / ViT-B at 224 px much faster. `step(autocast)` runs one forward and backward; the
    BatchNorm buffers and gradients it touched are given back, the weights are not stepped."""
    saved = [b.clone() for b in buffers]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    bf16 = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    times = {}
    try:
        for name, autocast in (("bf16", bf16), ("float32", contextlib.nullcontext)) * 2:  # the first round warms up
            sync()
            start = time.perf_counter()
            for _ in range(repeats):
                step(autocast)
            sync()
            times[name] = time.perf_counter() - start
    finally:
        for b, s in zip(buffers, saved):
            b.copy_(s)
        for p in params:
            p.grad = None
    faster = times["bf16"] < times["float32"]
    ratio = times["float32"] / times["bf16"] if faster else times["bf16"] / times["float32"]
    return faster, f"{'bf16' if faster else 'float32'} measured {ratio:.2f}x faster for this training step"
