"""Freezing: which blocks train, what frozen BatchNorm does, and one LR per block.

Session-free functions over a `Model`; the training Session calls them. ARCHITECTURE.md rule 5: a frozen
block gets requires_grad_(False), stays out of the optimizer, and (policy "frozen") its BatchNorm
layers stay in eval mode so their running statistics do not drift. `module.train()` switches them
back (Lightning issue #15062), so `apply_bn_policy` must run after every `module.train()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from ..errors import ConfigError, suggest
from ..validate import integer

if TYPE_CHECKING:
    from ..models import Model

PRESETS = ("head", "full")
BN_POLICIES = ("frozen", "train")


@dataclass(frozen=True)
class FreezeSpec:
    """A freezing plan: kind "last" (head + the last n blocks below it) or "progressive"
    (head at first, then one more block from the top every `every` epochs after `start`)."""

    kind: str
    n: int = 0
    every: int = 1
    start: int = 0

    def __str__(self) -> str:
        if self.kind == "last":
            return f"last({self.n})"
        return f"progressive(every={self.every}, start={self.start})"


FreezeLike = Union[str, FreezeSpec, Sequence[str]]


def _int(label: str, value: Any, minimum: int) -> int:
    return integer(label, value, low=minimum)


def last(n: int) -> FreezeSpec:
    """Train the head plus the last `n` blocks below it (last(0) is the head alone)."""
    return FreezeSpec("last", n=_int("last(n): n", n, 0))


def progressive(every: int = 1, start: int = 0) -> FreezeSpec:
    """Gradual unfreezing: the head alone until epoch `start` + `every`, then one more block from
    the top every `every` epochs (epoch e trains the head + (e - start) // every blocks)."""
    every = _int("progressive(every=...)", every, 1)
    return FreezeSpec("progressive", every=every, start=_int("progressive(start=...)", start, 0))


def _check_names(model: Model, names: Sequence[str]) -> None:
    for name in names:
        if not isinstance(name, str) or name not in model.block_names:
            raise ConfigError(
                f"Unknown block {name!r} for {model.name}.{suggest(str(name), model.block_names)} "
                f"Blocks: {', '.join(model.block_names)}."
            )


def trainable_blocks(model: Model, spec: FreezeLike, epoch: int = 0) -> list[str]:
    """The blocks `spec` trains at `epoch`, in forward order (validated; ConfigError on bad specs)."""
    names = model.block_names
    below = names[:-1]  # every block but the head
    if isinstance(spec, str):
        if spec == "head":
            return ["head"]
        if spec == "full":
            return list(names)
        hint = " To train named blocks pass a list, e.g. [..., 'head']." if spec in names else ""
        raise ConfigError(
            f"Unknown freeze preset {spec!r}: use 'head', 'full', wb.last(n), wb.progressive(every=1) "
            f"or a list of block names.{suggest(spec, PRESETS)}{hint}"
        )
    if isinstance(spec, FreezeSpec):
        if spec.kind == "last":
            if spec.n > len(below):
                raise ConfigError(
                    f"last({spec.n}) asks for more blocks than {model.name} has below its head: "
                    f"the most is last({len(below)}) (equal to 'full')."
                )
            n = spec.n
        elif spec.kind == "progressive":
            _int("progressive(every=...)", spec.every, 1)
            _int("epoch", epoch, 0)
            n = min(len(below), max(0, (epoch - spec.start) // spec.every))
        else:
            raise ConfigError(f"Unknown FreezeSpec kind {spec.kind!r}: build one with wb.last(n) or wb.progressive().")
        return below[len(below) - n :] + ["head"]
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        chosen = list(spec)
        if not chosen:
            raise ConfigError("An empty list of blocks trains nothing: name at least one block, e.g. ['head'].")
        _check_names(model, chosen)
        return [n for n in names if n in set(chosen)]
    raise ConfigError(
        f"Cannot read a freeze spec from {type(spec).__name__}: use 'head', 'full', wb.last(n), "
        "wb.progressive(every=1) or a list of block names."
    )


def apply_freeze(model: Model, trainable: Sequence[str]) -> None:
    """requires_grad_(True) on the parameters of `trainable` blocks, False on all the others."""
    _check_names(model, trainable)
    keep = set(trainable)
    for block, params in model.block_parameters().items():  # runs every epoch: one cached lookup
        flag = block in keep
        for param in params:
            if param.requires_grad != flag:
                param.requires_grad_(flag)


def set_training(modules: Iterable[nn.Module], mode: bool) -> None:
    """`train(mode)` over a flat list of modules, writing only the flags that differ.

    nn.Module.train walks the tree and writes every flag through Module.__setattr__: ~0.3 ms for
    MiniLM, twice an epoch, which is most of a cached head-only epoch's bookkeeping. Modules
    that override train() get their own method.
    """
    for m in modules:
        if m.training != mode:
            if type(m).train is nn.Module.train:
                m.training = mode
            else:
                m.train(mode)


def _has_running_stats(module: nn.Module) -> bool:
    return getattr(module, "track_running_stats", False) and getattr(module, "running_mean", None) is not None


def apply_bn_policy(model: Model, policy: str = "frozen") -> None:
    """Set the mode of norm layers with running statistics (BatchNorm, InstanceNorm with stats)
    inside fully frozen blocks: "frozen" -> eval (stats kept), "train" -> the module's mode.

    Call after every `model.module.train()`, which puts them back into train mode.
    """
    if policy not in BN_POLICIES:
        raise ConfigError(f"Unknown BN policy {policy!r}: use 'frozen' or 'train'.{suggest(str(policy), BN_POLICIES)}")
    training = model.module.training
    for block in model.blocks:
        if any(p.requires_grad for p in model.parameters_of(block.name)):
            continue  # a (partly) trained block: its norm layers follow the module
        for m in model.modules_of(block.name):
            if _has_running_stats(m):
                m.train(training and policy == "train")


def _check_lr(base_lr: Any, decay: Any) -> None:
    for label, value in (("base_lr", base_lr), ("decay", decay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{label} must be a number > 0; got {value!r}.")


def block_lrs(model: Model, base_lr: float, decay: float = 1.0) -> dict[str, float]:
    """Discriminative LR: head base_lr, each block below base_lr * decay ** (distance from the head)."""
    _check_lr(base_lr, decay)
    names = model.block_names
    return {name: base_lr * decay ** (len(names) - 1 - i) for i, name in enumerate(names)}


def param_groups(model: Model, base_lr: float, decay: float = 1.0, blocks: Sequence[str] | None = None) -> list[dict]:
    """One optimizer group per block ({"params", "lr", "name"}), in forward order.

    blocks=None takes the blocks with trainable parameters, in forward order (frozen blocks are left
    out, and only requires_grad parameters go in); an explicit list takes all parameters of those
    blocks, in the order given (so a saved optimizer's state_dict loads into the same group order).
    """
    lrs = block_lrs(model, base_lr, decay)
    if blocks is None:
        chosen = [n for n in model.block_names if any(p.requires_grad for p in model.parameters_of(n))]
        pick = [[p for p in model.parameters_of(n) if p.requires_grad] for n in chosen]
    else:
        _check_names(model, blocks)
        chosen = list(dict.fromkeys(blocks))
        pick = [model.parameters_of(n) for n in chosen]
    return [{"params": ps, "lr": lrs[n], "name": n} for n, ps in zip(chosen, pick)]


def add_param_groups(
    optimizer: torch.optim.Optimizer, model: Model, new_blocks: Sequence[str], base_lr: float, decay: float = 1.0
) -> None:
    """Add one group per newly unfrozen block, leaving the existing groups and their state alone.

    Unfreeze the blocks' parameters with `apply_freeze` too; this only extends the optimizer.
    """
    present = {id(p): g.get("name", f"group {i}") for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
    groups = param_groups(model, base_lr, decay, blocks=new_blocks)
    for g in groups:
        clash = next((present[id(p)] for p in g["params"] if id(p) in present), None)
        if clash is not None:
            raise ConfigError(
                f"Block {g['name']!r} is already in the optimizer (group {clash!r}); add only newly "
                "unfrozen blocks."
            )
    for g in groups:
        optimizer.add_param_group(g)


def block_groups(model: Model, base_lr: float, decay: float, blocks: Sequence[str]) -> list[dict]:
    """`param_groups` for `blocks`, each also remembering its `base_lr` (schedules scale it)."""
    groups = param_groups(model, base_lr, decay, blocks=blocks)
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups


def sync_param_groups(
    optimizer: torch.optim.Optimizer, model: Model, trainable: Sequence[str], base_lr: float, decay: float = 1.0
) -> None:
    """Make the optimizer's groups (one per block, by name) match `trainable`: groups of blocks
    that froze leave with their state, newly unfrozen blocks join as new groups (discriminative
    LR), and groups that stay keep their state."""
    have = {g["name"] for g in optimizer.param_groups}
    keep = set(trainable)
    for group in [g for g in optimizer.param_groups if g["name"] not in keep]:
        for p in group["params"]:
            optimizer.state.pop(p, None)
    # by name, not list.remove: that compares the group dicts with ==, i.e. their tensors
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["name"] in keep]
    new = [n for n in trainable if n not in have]
    for group in block_groups(model, base_lr, decay, new) if new else ():
        optimizer.add_param_group(group)


def describe(model: Model, trainable: Sequence[str], policy: str, base_lr: float, decay: float = 1.0) -> str:
    """The decisions in words (nanoGPT style): trainable params per block, BN policy, LR per block."""
    _check_names(model, trainable)
    if policy not in BN_POLICIES:
        raise ConfigError(f"Unknown BN policy {policy!r}: use 'frozen' or 'train'.")
    lrs = block_lrs(model, base_lr, decay)
    keep = set(trainable)
    blocks = model.blocks
    width = max(len("block"), *(len(b.name) for b in blocks))
    lines = [f"freezing plan for {model.name}  (weights: {model.weights})"]
    lines.append(f"{'block':<{width}}  {'params':>12}  {'state':<9}  lr")
    for b in blocks:
        state, lr = ("trainable", f"{lrs[b.name]:.2e}") if b.name in keep else ("frozen", "-")
        lines.append(f"{b.name:<{width}}  {b.params:>12,}  {state:<9}  {lr}")
    total = sum(b.params for b in blocks)
    n_train = sum(b.params for b in blocks if b.name in keep)
    share = 100 * n_train / max(total, 1)
    lines.append(f"trainable: {n_train:,} of {total:,} parameters ({share:.2f}%) in {len(keep)} of {len(blocks)} blocks")
    bn = sum(1 for b in blocks if b.name not in keep for m in model.modules_of(b.name) if _has_running_stats(m))
    if policy == "frozen":
        what = "stay in eval mode (running stats kept)"
    else:
        what = "update their running stats in train mode"
    lines.append(f"BatchNorm policy {policy!r}: {bn} norm layers with running stats in frozen blocks {what}")
    if decay != 1:
        lines.append(f"LR: head {base_lr:.2e}, x{decay:g} per block below it (discriminative LR)")
    else:
        lines.append(f"LR: {base_lr:.2e} for every trainable block")
    return "\n".join(lines)
