"""Fixtures for the model tests: tiny transformers folders (models/tiny_text.py), tiny data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from models.tiny_text import write_tiny

import workbench as wb


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Callable[..., Path]:
    """tiny_text("gpt2") -> a folder that loads as hf:<folder> (written once per session)."""
    root = tmp_path_factory.mktemp("tiny_text")
    made: dict[tuple, Path] = {}

    def make(arch: str, weights: bool = False, pooling: tuple[str, ...] | None = None) -> Path:
        key = (arch, weights, pooling)
        if key not in made:
            name = f"{arch}-{'w' if weights else 'cfg'}-{'-'.join(pooling or ('own',))}"
            made[key] = write_tiny(root / name, arch, weights, pooling)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_images():
    """3 classes, 2 train and 1 valid random 16x16 images each (the pipeline resizes them)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    y = np.arange(9) % 3
    return wb.Data.from_arrays(x[:6], y[:6], ["a", "b", "c"], valid=(x[6:], y[6:]), name="tiny-images")


@pytest.fixture(scope="session")
def tiny_texts():
    texts = ["the film was good", "dull and long", "i left early", "a great movie", "bad plot", "hello there",
             "good text", "long dull film", "my friend left"]  # fmt: skip
    y = np.arange(9) % 3
    return wb.Data.from_texts(texts[:6], y[:6], ["a", "b", "c"], valid=(texts[6:], y[6:]), name="tiny-texts")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for these many tiny models. On a shared 2-core machine under load, two
    OpenMP threads made shvit_s1's two epochs take 14 s instead of 0.17 s (threads wait for each
    other); the numbers checked here do not depend on it. Restored after each module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
