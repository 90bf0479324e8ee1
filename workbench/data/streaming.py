"""Decoding image files in worker processes (torch.utils.data.DataLoader), ahead of the model.

Image folders too big to hold resized in memory are decoded per batch; in the training thread
that made a GPU wait on JPEG decoding, one file at a time. Here persistent DataLoader workers
decode and resize the next batches of the order the epoch already knows, while the model runs
(pinned memory on CUDA). Decoding has no randomness (augmentation stays in the training thread),
so the pixels are the same bytes with or without workers: runs stay seeded and bit-identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError


def worker_count() -> int:
    """Decode workers: the cores this process may use, at most 8, 0 on a single core.
    WORKBENCH_DECODE_WORKERS overrides it (0 decodes in the training thread)."""
    override = os.environ.get("WORKBENCH_DECODE_WORKERS")
    if override is not None and override.strip().isdigit():
        return int(override)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(cores, 8)


class _Decode(Dataset):
    """sample position -> (position, uint8 (3, S, S) pixels) or (position, why it failed)."""

    def __init__(self, load: Callable[[int], torch.Tensor]) -> None:
        self.load = load

    def __len__(self) -> int:  # positions come from the batch sampler only
        return 0

    def __getitem__(self, i: int):
        try:
            return i, self.load(i)[0]
        except DataError as exc:  # passed back as text: a worker's exception arrives wrapped and garbled
            return i, str(exc)


def _collate(items: list) -> tuple[list[int], torch.Tensor | str]:
    positions = [i for i, _ in items]
    bad = next((x for _, x in items if isinstance(x, str)), None)
    return positions, bad if bad is not None else torch.stack([x for _, x in items])


class _Batches:
    """A batch sampler whose batches are set for each pass (the persistent workers stay)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Decoder:
    """Decodes batches of one split's files in worker processes, in a given order."""

    def __init__(self, load: Callable[[int], torch.Tensor], workers: int, pin_memory: bool = False,
                 persistent: bool = True) -> None:
        self.sampler = _Batches()
        self.workers = workers
        # its own generator: each pass's iterator draws a worker seed, which must not move the
        # global RNG that augmentation draws from (that made streamed runs differ from preloaded ones)
        self.loader = DataLoader(_Decode(load), batch_sampler=self.sampler, num_workers=workers,
                                 collate_fn=_collate, pin_memory=pin_memory, persistent_workers=persistent and workers > 0,
                                 prefetch_factor=4 if workers > 0 else None, generator=torch.Generator())

    def run(self, order: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """uint8 pixels for each batch of `order`, decoded ahead by the workers."""
        self.sampler.batches = [[int(i) for i in idx] for idx in order]
        for positions, pixels in self.loader:
            if isinstance(pixels, str):
                raise DataError(pixels)
            yield pixels


class Prefetch:
    """The batches of one pass, in order: `take(idx)` returns the next one when `idx` is the
    batch the pass planned (the same tensor), else None (the caller decodes it itself)."""

    def __init__(self, order: Sequence[torch.Tensor], stream: Iterator[torch.Tensor]) -> None:
        self.order, self.stream, self.next = list(order), stream, 0

    def take(self, idx: torch.Tensor) -> torch.Tensor | None:
        if self.next < len(self.order) and self.order[self.next] is idx:
            self.next += 1
            return next(self.stream)
        return None

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
