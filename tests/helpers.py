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


def assert_same_state(a, b, path: str = "state") -> None:
    """Two state dicts are bit-identical: same keys, equal tensors and arrays (NaN equal to NaN)."""
    import math

    import numpy as np

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{path}: tensor vs {type(b).__name__}"
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        ), f"{path}: tensors differ"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"{path}: arrays differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            assert_same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), f"{path}: nan vs {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
