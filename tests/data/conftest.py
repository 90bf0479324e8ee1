"""Fixtures for the data tests: tiny image folders written with PIL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, value: int = 0, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> Path:
    """A tiny solid-colour image; `value` makes each file distinct."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value % 256 if mode == "L" else (value % 256, 10, 200)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """make_tree({"cat": 5, "dog": 4}, under="pets") -> tmp_path/pets with that many PNGs per class."""

    def make(counts: dict[str, int], under: str = "pets", mode: str = "RGB") -> Path:
        root = tmp_path / under
        for c, n in counts.items():
            (root / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                write_png(root / c / f"{c}_{i:03d}.png", value=i, mode=mode)
        return root

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """write_image(path, value=0, size=(6, 4), mode="RGB"): one tiny PNG."""
    return write_png
