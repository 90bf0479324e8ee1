"""Early stopping's own small state: the best epoch's valid loss, weights and predictions."""

from __future__ import annotations

from typing import Any

import torch

from .records import EpochResult, Predictions
from .state import cpu_copy, predictions_to_dict


class EarlyStopping:
    """Keeps the best epoch (lowest valid loss) and says when patience has run out."""

    def __init__(self, best: tuple[float, int, dict[str, torch.Tensor], Predictions | None] | None = None) -> None:
        self.best = best  # (valid loss, epoch, weights on the CPU, that epoch's predictions)

    def track(self, result: EpochResult, module: torch.nn.Module, predictions: Predictions | None) -> None:
        """Remember this epoch if its valid loss is the lowest so far (weights copied to the CPU)."""
        if result.valid_loss is None:
            return
        if self.best is None or result.valid_loss < self.best[0]:
            weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            self.best = (result.valid_loss, result.epoch, weights, predictions)

    def due(self, patience: int | None, epoch: int) -> bool:
        """True when `patience` epochs have passed since the best one."""
        return patience is not None and self.best is not None and epoch - self.best[1] >= patience

    def restore(self, module: torch.nn.Module) -> Predictions | None:
        """Put the best epoch's weights back; returns its predictions."""
        assert self.best is not None
        with torch.no_grad():
            module.load_state_dict(self.best[2])
        return self.best[3]

    def to_dict(self) -> dict[str, Any] | None:
        """The best epoch as plain values and CPU tensors (part of Session.state_dict())."""
        if self.best is None:
            return None
        loss, epoch, weights, predictions = self.best
        return {"valid_loss": loss, "epoch": epoch, "weights": cpu_copy(weights),
                "predictions": predictions_to_dict(predictions)}
