"""Small helpers shared by tests (importable: pyproject puts tests/ on pythonpath)."""

from __future__ import annotations

import torch

import workbench as wb


def tiny_cnn(num_classes: int = 10):
    """resnet18, random init, at 16 px: a real BatchNorm CNN with stem, 4 stages and a head."""
    return wb.load_backbone("resnet18", num_classes=num_classes, pretrained=False, image_size=16)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor in the module's state dict."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
