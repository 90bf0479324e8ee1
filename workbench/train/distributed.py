"""A Session as one of several processes, through Hugging Face Accelerate (PyTorch DDP).

`session.distribute(accelerator)` makes the session's own epoch loop distributed-aware; nothing
else changes (the same loop trains in a notebook and under `accelerate launch`):

- sharded sampling: every process draws the same seeded batch order, and takes its share of each
  batch (`tensor_split`), so the shards of an epoch are disjoint and a global batch of
  `batch_size` samples is split across the processes: the same gradient step as one process takes;
- gradient sync: the module that trains (the head alone on cached features, else the whole model)
  goes through `Accelerator.prepare`, i.e. DistributedDataParallel, which averages the gradients
  and keeps BatchNorm buffers in step; it is prepared again whenever the trainable set changes;
  BatchNorm that trains across CUDA processes becomes SyncBatchNorm;
- the epoch's numbers (losses, accuracy) and the valid predictions are summed across processes,
  so every process records the same history; a non-finite loss on any process stops them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


class Distributed:
    """The share of one process in a distributed run (`accelerator` from accelerate.Accelerator)."""

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.device = accelerator.device
        self._wrapped: tuple[Any, frozenset[int], nn.Module] | None = None
        self.last_shards: list[torch.Tensor] = []

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # ---- sampling ----------------------------------------------------------------------------
    def shard(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        """This process's part of each batch. Batches too small to give every process two samples
        are left out on all of them (equal batch counts keep the gradient syncs in step)."""
        if self.active:
            batches = [b.tensor_split(self.world)[self.rank] for b in batches if len(b) >= 2 * self.world]
        self.last_shards = batches  # for a run's shard log
        return batches

    def shard_order(self, order: list[torch.Tensor]) -> list[torch.Tensor]:
        """Forward-only passes: whole batches, dealt round-robin."""
        return order[self.rank :: self.world] if self.active else order

    # ---- gradient sync -----------------------------------------------------------------------
    def forward(self, model, module: nn.Module, head_only: bool) -> Callable[[Any], torch.Tensor]:
        """A forward through `module` prepared by Accelerate (DDP: gradients averaged). Prepared
        again when the parameters that train changed (DDP hooks the ones that train when built)."""
        if not self.active:
            return model.head if head_only else model.logits
        trainable = frozenset(id(p) for p in module.parameters() if p.requires_grad)
        if self._wrapped is None or self._wrapped[0] is not module or self._wrapped[1] != trainable:
            from accelerate.utils import DistributedDataParallelKwargs

            self.accelerator.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=True)
            self._wrapped = (module, trainable, self.accelerator.prepare(module))
        wrapped = self._wrapped[2]
        if head_only:
            return wrapped
        return lambda inputs: model.logits(inputs, module=wrapped)

    def sync_batchnorm(self, model) -> None:
        """BatchNorm that trains across CUDA processes uses the statistics of the whole batch
        (torch's SyncBatchNorm needs CUDA; on CPU processes DDP keeps rank 0's statistics)."""
        if self.active and self.device.type == "cuda":
            model.module = nn.SyncBatchNorm.convert_sync_batchnorm(model.module)  # same Parameter objects
            model.modules_changed()

    # ---- numbers summed across processes ---------------------------------------------------------
    def all_finite(self, loss: torch.Tensor) -> bool:
        """Is the loss finite on every process? (one small all-reduce: all stop or none)"""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        if self.active:
            dist.all_reduce(bad)
        return bool(bad.item() == 0)

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def combine(self, outcome) -> None:
        """Train loss and accuracy over every process's samples; per-batch losses averaged."""
        if not self.active:
            return
        n = outcome.samples
        loss = outcome.loss * n if n else 0.0
        correct = outcome.accuracy * n if n else 0.0
        total_n, total_loss, total_correct = self.sum([float(n), loss, correct])
        batch = self.sum(list(outcome.batch_losses))
        outcome.samples = int(round(total_n))
        outcome.loss = total_loss / max(total_n, 1)
        outcome.accuracy = total_correct / max(total_n, 1)
        outcome.batch_losses = [b / self.world for b in batch]

    def merge(self, logits: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Valid logits and losses: each process filled the rows of its batches (zeros elsewhere)."""
        if not self.active:
            return logits, losses
        both = torch.from_numpy(np.concatenate([logits, losses[:, None]], axis=1)).double()
        both = both.to(self.device) if self.device.type == "cuda" else both
        dist.all_reduce(both)
        both = both.cpu().float().numpy()
        return both[:, :-1], both[:, -1]

    def check(self, session) -> None:
        """The settings a distributed run needs."""
        if self.active and session.config.batch_size < 2 * self.world:
            raise ConfigError(f"batch_size={session.config.batch_size} cannot be split across {self.world} processes "
                              f"(at least 2 samples each): use batch_size >= {2 * self.world}.")
