"""Where a Session's tensors live and how passes run there: device, memory format, the data
pipeline, mixed precision, forward-only batch size and per-device seeding."""

from __future__ import annotations

import contextlib
import functools
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

    def same(self, config: TrainConfig) -> bool:
        """True when `config` needs no move: same device and memory format."""
        return resolve_device(config.device) == self.device and config.channels_last == self.channels_last

    def mixed_precision(self, config: TrainConfig) -> Callable[[], contextlib.AbstractContextManager]:
        """A context-manager factory for mixed precision, decided once per pass: reading
        `device.type` builds a string in C++ each call, which cost ~8 us a batch in the loop."""
        if config.amp == "off" or (config.amp == "auto" and self.device.type != "cuda"):
            return contextlib.nullcontext
        return functools.partial(torch.autocast, self.device.type, dtype=torch.bfloat16)

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
