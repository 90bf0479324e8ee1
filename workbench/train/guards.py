"""What an epoch may change, and what the user is told when it goes wrong.

The Session copies the tensors an epoch can change before it starts (so weights that end
non-finite roll back to the epoch's start) and turns a fault into one error that names the cause,
says which weights the model kept, and gives the fix.
"""

from __future__ import annotations

import torch

from ..errors import DataError, TrainingError
from ..models import Model
from .config import TrainConfig


def changeable_state(model: Model, fast: bool) -> dict[str, torch.Tensor]:
    """Copies of what an epoch can change: trainable parameters and buffers (BN statistics).
    On the fast path only the head trains, so only the head is copied."""
    if fast:
        prefix = model.head_path + "."
        return {prefix + k: v.detach().clone() for k, v in model.head.state_dict().items()}
    trainable = {n for b in model.blocks if b.trainable for n in b.parameter_names}
    params = {n for n, _ in model.module.named_parameters()}
    return {k: v.detach().clone() for k, v in model.module.state_dict().items() if k in trainable or k not in params}


def weights_finite(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> bool:
    """Optimized parameters and `module`'s float buffers (BN statistics) all finite: one sync.

    Each tensor's min and max are finite exactly when all of it is (aminmax propagates NaN): one
    read pass and no tensor-sized mask, 7x faster than isfinite().all() on MiniLM's 22M weights.
    """
    tensors = [p for g in optimizer.param_groups for p in g["params"]]
    tensors += [b for b in module.buffers() if b.is_floating_point()]
    bounds = [bound for t in tensors if t.numel() for bound in torch.aminmax(t.detach())]
    return bool(torch.isfinite(torch.stack(bounds)).all()) if bounds else True


def fault_error(reason: str, error: BaseException | None, config: TrainConfig, epoch: int) -> Exception:
    """The exception `fit` raises for a fault: cause, the weights kept, and the fix."""
    if error is not None and "out of memory" in reason:
        smaller = max(1, config.batch_size // 2)
        msg = (f"Training ran out of memory ({reason}). The weights are those of the last completed step. "
               f"Try a smaller batch: session.configure(batch_size={smaller}).")
    elif isinstance(error, DataError):
        msg = f"{reason}. The weights are those of the last completed step."
    elif error is not None:
        msg = f"Training failed: {reason}. The weights are those of the last completed step."
    elif "rolled back" in reason:
        msg = f"Training stopped: the {reason}. Lower the learning rate, e.g. session.configure(lr={config.lr / 10:g})."
    else:
        msg = (f"Training stopped: {reason} of epoch {epoch}. The weights are those of the last good step (before "
               f"that batch). Lower the learning rate, e.g. session.configure(lr={config.lr / 10:g}).")
    exc = DataError(msg) if isinstance(error, DataError) else TrainingError(msg)
    exc.__cause__ = error
    return exc
