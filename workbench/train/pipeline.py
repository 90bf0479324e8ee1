"""The Session's view of the data: model-ready batches per split, built once and kept."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data.transforms import ImageBatches, TextBatches, batch_order

# Small image sets are held on the GPU as uint8 (a 5k x 3 x 64 x 64 set is 61 MB): no host copies.
GPU_RESIDENT_BYTES = 1024**3


class Pipeline:
    """Turns `data`'s splits into inputs for `model` on `device`."""

    def __init__(self, data, model, device: torch.device, channels_last: bool = True,
                 progress: Callable[[str, int], Callable[[int], None]] | None = None) -> None:
        self.data, self.model, self.device = data, model, device
        self.channels_last = channels_last and model.kind == "image"
        self.progress = progress  # (task, total) -> done(n): reports decoding image files
        self._batchers: dict[str, ImageBatches | TextBatches] = {}
        self._labels: dict[str, torch.Tensor] = {}

    @property
    def image_size(self) -> int:
        return self.model.preprocess.size

    def signature(self) -> tuple:
        """What the inputs depend on: part of the feature-cache key."""
        p = self.model.preprocess
        if self.model.kind == "image":
            return ("image", p.size, tuple(p.mean), tuple(p.std))
        return ("text", getattr(p.tokenizer, "name_or_path", ""), p.max_length)

    def batcher(self, split: str) -> ImageBatches | TextBatches:
        if split not in self._batchers:
            source = getattr(self.data, split)
            p = self.model.preprocess
            if self.model.kind == "image":
                n = len(source)
                report = self.progress(f"decoding images ({split})", -(-n // 128)) if self.progress else None
                b = ImageBatches(source, p.size, p.mean, p.std, channels_last=self.channels_last, progress=report,
                                 pin_memory=self.device.type == "cuda")
                if self.device.type == "cuda" and b.pixels is not None and b.pixels.numel() <= GPU_RESIDENT_BYTES:
                    b.pixels = b.pixels.to(self.device)
            else:
                b = TextBatches(source, p.tokenizer, p.max_length)
            self._batchers[split] = b
        return self._batchers[split]

    def batch(self, split: str, idx: torch.Tensor, augment=None):
        return self.batcher(split).batch(idx, augment, device=self.device)

    def prefetch(self, split: str, order: list[torch.Tensor]) -> None:
        """Tell the split's batcher the coming pass's batch order: streamed image files are then
        decoded ahead, in worker processes (nothing to do for data held in memory)."""
        b = self.batcher(split)
        if isinstance(b, ImageBatches):
            b.prefetch(order)

    def labels(self, split: str) -> torch.Tensor:
        if split not in self._labels:
            labels = torch.as_tensor(getattr(self.data, split).labels, dtype=torch.long)
            self._labels[split] = labels.to(self.device)
        return self._labels[split]

    def order(self, split: str, batch_size: int, generator: torch.Generator | None, *, shuffle: bool,
              sample_weights: torch.Tensor | None = None, by_length: bool = False) -> list[torch.Tensor]:
        lengths = None
        if by_length and self.model.kind == "text":
            lengths = self.batcher(split).lengths
        n = len(getattr(self.data, split))
        return batch_order(n, batch_size, generator=generator, shuffle=shuffle, lengths=lengths,
                           sample_weights=sample_weights, drop_single=shuffle)
