"""The new classifier put in place of a backbone's own, and the shapes it must accept.

Every backbone gets the same head: ``Head(Dropout, Linear)`` at the path of its classifier, so a
session can tune the dropout between epochs and the cached-feature path can call the head on one
pooled vector per example (``Model.features``). Two library shapes need more than a Linear:

- 1x1-convolution classifiers on a pooled map (timm dla, dpn, resnetv2): ``Head(channels_first=True)``
  takes (B, D, 1, 1) as well as (B, D) and returns the same rank, so the model's own forward and
  the cached path both work.
- several classifiers whose outputs the model averages (timm crossvit: one per branch, of different
  widths): ``ParallelHeads``, a ModuleList the model iterates as before, that, called on the
  concatenated pooled vectors, averages its members' outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class Head(nn.Sequential):
    """Dropout then Linear. The Dropout is there even at p=0 so its rate can change without
    renaming parameters. channels_first: also accept a pooled map (B, D, 1, 1) and answer (B, N, 1, 1)."""

    def __init__(self, linear: nn.Linear, dropout: float = 0.0, channels_first: bool = False) -> None:
        super().__init__(nn.Dropout(dropout), linear)
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first and x.dim() == 4:
            return super().forward(x.flatten(1))[:, :, None, None]
        return super().forward(x)


class ParallelHeads(nn.ModuleList):
    """Classifiers on several pooled vectors, averaged: called on their concatenation (B, sum D_i)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = [linear_of(h).in_features for h in self]
        return torch.stack([h(part) for h, part in zip(self, x.split(sizes, dim=1))]).mean(0)


def linear_of(module: nn.Module) -> nn.Linear:
    """The last Linear in `module` (itself when it is one)."""
    found = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(f"Block discovery failed: {type(module).__name__} holds no Linear classifier.")
    return found[-1]


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put `new` at dotted `path` inside `root` (the attribute keeps its place in registration order)."""
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def is_pointwise_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1


def replace_classifier(root: nn.Module, path: str, num_classes: int, dropout: float, keep: bool) -> str:
    """Put a `Head` at `path` in place of the classifier there (a Linear, or a 1x1 conv on a pooled map).

    keep: reuse the pretrained weights when they already have `num_classes` outputs. Returns a
    phrase for `Model.weights`.
    """
    old = root.get_submodule(path)
    wrapped = None
    if isinstance(old, Head):  # a tied classifier met a second time, or a module that has our head already
        if old[1].out_features == num_classes:
            return ""
        wrapped, old = old, old[1]  # a head for other classes: its Linear is replaced like any classifier
    if isinstance(old, nn.Linear):
        out, in_features = old.out_features, old.in_features
        channels_first = wrapped.channels_first if wrapped is not None else False
    elif is_pointwise_conv(old):
        out, in_features, channels_first = old.out_channels, old.in_channels, True
    else:
        raise ConfigError(
            f"Block discovery failed: the classifier at {path!r} is a {type(old).__name__}, not a Linear "
            "(or a 1x1 convolution on a pooled map), so it cannot be given a new head."
        )
    keep = keep and out == num_classes
    old_device = next(old.parameters()).device
    linear = nn.Linear(in_features, num_classes, bias=old.bias is not None or not keep, device=old_device)
    if keep:
        with torch.no_grad():
            linear.weight.copy_(old.weight.reshape(out, in_features))
            if old.bias is not None:
                linear.bias.copy_(old.bias)
    set_module(root, path, Head(linear, dropout, channels_first))
    drop = f", dropout {dropout:g} before it" if dropout > 0 else ""
    return f"pretrained {num_classes}-class head kept{drop}" if keep else f"new random head for {num_classes} classes{drop}"


def head_dropout(head: nn.Module) -> float:
    """The dropout rate in front of the head's Linear: our Head's (a library classifier around it,
    such as timm's NormLinear, may hold a Dropout of its own), else the first; 0.0 when none."""
    ours = [h[0] for h in head.modules() if isinstance(h, Head)]
    drops = ours or [m for m in head.modules() if isinstance(m, nn.Dropout)]
    return float(drops[0].p) if drops else 0.0
