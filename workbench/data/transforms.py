"""Turning a split into model-ready batches: preprocessing, augmentation, batch order.

Speed decisions, measured on a 2-core CPU (see benchmarks/): images are resized once into a
uint8 tensor (the decode/resize work is not repeated every epoch) and batches are normalised on
the fly, in channels_last for CNNs; texts are tokenised once and batched by similar length, so
padding costs little (Rotten Tomatoes snippets average 27 of 64 tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..validate import boolean, number
from .streaming import Decoder, Prefetch, worker_count

# Image files whose resized pixels take more than this are streamed (decoded by workers each
# pass) instead of held in memory, so memory does not grow with the folder's size.
FILE_PRELOAD_LIMIT_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class Augment:
    """Random image augmentation for training (torchvision.transforms.v2), per sample.

    flip: horizontal flip (wrong for digits and text-like images: a lesson in itself);
    crop: random resized crop, keeping `crop_scale` of the area at least;
    rotation: up to this many degrees either way; color: brightness/contrast/saturation jitter.
    """

    flip: bool = False
    crop: bool = False
    crop_scale: float = 0.6
    rotation: float = 0.0
    color: float = 0.0

    @property
    def active(self) -> bool:
        return self.flip or self.crop or self.rotation > 0 or self.color > 0

    def validate(self) -> Augment:
        """This augmentation with every field checked and in its plain type (ConfigError otherwise)."""
        return Augment(
            flip=boolean("augment flip", self.flip), crop=boolean("augment crop", self.crop),
            crop_scale=number("augment crop_scale", self.crop_scale, low=0, high=1, low_open=True,
                              hint="The smallest share of the image a random crop keeps, e.g. 0.6."),
            rotation=number("augment rotation", self.rotation, low=0, high=180, hint="Degrees either way, e.g. 10."),
            color=number("augment color", self.color, low=0, high=1, hint="Jitter strength, e.g. 0.2."),
        )

    def transform(self, size: int):  # -> torchvision.transforms.v2.Compose | None
        if not self.active:
            return None
        from torchvision.transforms import v2

        steps = []
        if self.crop:
            steps.append(v2.RandomResizedCrop(size, scale=(self.crop_scale, 1.0), antialias=True))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        if self.rotation:
            steps.append(v2.RandomRotation(self.rotation))
        if self.color:
            steps.append(v2.ColorJitter(brightness=self.color, contrast=self.color, saturation=self.color))
        return v2.Compose(steps)


def _to_chw3(images: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W) or (N,H,W,C) -> uint8 (N,3,H,W)."""
    t = torch.from_numpy(np.require(images, requirements=["C", "W"]))  # copies only if read-only
    if t.ndim == 3:
        t = t[:, None]
    else:
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    elif t.shape[1] == 4:
        t = t[:, :3]
    return t


def resize_square(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` and centre-crop a square (uint8 in, uint8 out)."""
    h, w = pixels.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        pixels = F.interpolate(pixels.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        pixels = pixels[..., top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)
    return pixels


class ImageBatches:
    """A split's images at the model's input size, as uint8; `batch()` normalises on the fly.

    In-memory images are resized once. Image files are decoded once into memory when their
    resized pixels fit FILE_PRELOAD_LIMIT_BYTES (in parallel, by DataLoader workers), else
    streamed: each pass decodes its batches in worker processes ahead of the model (`prefetch`).
    """

    def __init__(self, split, size: int, mean: Sequence[float], std: Sequence[float], channels_last: bool = True,
                 progress: Callable[[int], None] | None = None, pin_memory: bool = False):
        self.split, self.size, self.channels_last = split, size, channels_last
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self._norm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.pin_memory = pin_memory
        self._decoder: Decoder | None = None
        self._prefetch: Prefetch | None = None
        n = len(split)
        self.pixels: torch.Tensor | None = None
        if split.images is not None:
            chunks = [resize_square(_to_chw3(split.images[i : i + 512]), size) for i in range(0, n, 512)]
            self.pixels = torch.cat(chunks) if chunks else torch.empty(0, 3, size, size, dtype=torch.uint8)
        elif n * 3 * size * size <= FILE_PRELOAD_LIMIT_BYTES:
            self.pixels = self._decode_all(progress or (lambda done: None)) if n else None

    @property
    def streams(self) -> bool:
        """True when batches are decoded per pass (the files do not fit in memory)."""
        return self.pixels is None

    def _load(self, i: int) -> torch.Tensor:
        try:
            image = self.split.item(i)
            array = np.asarray(image.convert("RGB"))
        except DataError as exc:  # the file's own error: it names the file and the fix
            raise DataError(f"Could not read sample {i}: {exc}") from exc
        except Exception as exc:
            raise DataError(
                f"Could not read sample {i} ({self.split.sample_id(i)}): {type(exc).__name__}: {exc}. "
                "Replace or delete that file, then build the Data again."
            ) from exc
        return resize_square(_to_chw3(array[None]), self.size)

    def _decode_all(self, progress: Callable[[int], None]) -> torch.Tensor:
        """Every image, decoded by worker processes (one pass), into one uint8 tensor."""
        n = len(self.split)
        order = list(torch.arange(n).split(128))
        out = torch.empty((n, 3, self.size, self.size), dtype=torch.uint8)
        workers = worker_count() if n > 128 else 0
        stream = Decoder(self._load, workers, persistent=False).run(order) if workers else (self.raw(idx) for idx in order)
        progress(0)
        for b, (idx, pixels) in enumerate(zip(order, stream)):
            out[idx] = pixels
            progress(b + 1)
        return out

    def prefetch(self, order: Sequence[torch.Tensor]) -> None:
        """Start decoding the batches of the coming pass, in `order`, in worker processes."""
        if self.pixels is not None:
            return
        if self._prefetch is not None:
            self._prefetch.close()
        if self._decoder is None:
            self._decoder = Decoder(self._load, worker_count(), self.pin_memory)
        self._prefetch = Prefetch(order, self._decoder.run(order))

    def raw(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,S,S) for these sample positions."""
        if self.pixels is not None:
            return self.pixels[idx]
        if self._prefetch is not None:
            pixels = self._prefetch.take(idx)
            if pixels is not None:
                return pixels
        return torch.cat([self._load(int(i)) for i in idx])

    def batch(self, idx: torch.Tensor, augment=None, device: torch.device | None = None) -> torch.Tensor:
        pixels = self.raw(idx)
        if augment is not None:  # per sample: v2 on a batch tensor would draw one set of params for all
            pixels = torch.stack([augment(p) for p in pixels])
        if device is not None:
            pixels = pixels.to(device, non_blocking=True)
        if pixels.device not in self._norm:  # on the GPU once, not a host-to-device copy per batch
            self._norm[pixels.device] = (self.mean.to(pixels.device), self.std.to(pixels.device))
        mean, std = self._norm[pixels.device]
        x = (pixels.float() - mean) / std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class TextBatches:
    """A split's texts tokenised once; `batch()` pads to the longest text in the batch only."""

    def __init__(self, split, tokenizer, max_length: int):
        texts = split.texts
        if texts is None:
            raise DataError("This split holds no texts; a text backbone needs text data (kind='text').")
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        self.lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        width = int(self.lengths.max()) if len(encoded) else 1
        self.ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            self.ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)

    def batch(self, idx: torch.Tensor, augment=None, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        lengths = self.lengths[idx]
        width = int(lengths.max())
        ids = self.ids[idx, :width]
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        if device is not None:
            ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        return {"input_ids": ids, "attention_mask": mask}


def batch_order(
    n: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    lengths: torch.Tensor | None = None,
    sample_weights: torch.Tensor | None = None,
    drop_single: bool = False,
) -> list[torch.Tensor]:
    """Index batches for one pass over n samples.

    shuffle: a fresh permutation from `generator`; sample_weights: draw n samples with
    replacement in proportion to them (the class-balanced sampler); lengths: group similar
    lengths (chunks of 50 batches sorted by length, then the batches shuffled) so text batches
    carry little padding; drop_single: drop a final batch of one sample (BatchNorm cannot train
    on it).
    """
    if sample_weights is not None:
        order = torch.multinomial(sample_weights, n, replacement=True, generator=generator)
    elif shuffle:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if lengths is not None:
        if shuffle or sample_weights is not None:
            chunk = batch_size * 50
            parts = []
            for start in range(0, n, chunk):
                part = order[start : start + chunk]
                parts.append(part[torch.argsort(lengths[part], stable=True, descending=True)])
            order = torch.cat(parts) if parts else order
        else:
            order = order[torch.argsort(lengths[order], stable=True, descending=True)]
    batches = list(torch.split(order, batch_size))
    if lengths is not None and (shuffle or sample_weights is not None) and len(batches) > 1:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    if drop_single and len(batches) > 1:
        batches = [b for b in batches if len(b) > 1]
    return batches
