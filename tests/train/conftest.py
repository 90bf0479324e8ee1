"""Tiny, fast fixtures for Session tests: sklearn digits and small random-init backbones."""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from helpers import tiny_cnn


@pytest.fixture(scope="session")
def digits():
    """300 train / 100 valid 8x8 digits: an epoch of a tiny CNN takes a fraction of a second."""
    return wb.load_data("digits").subset(train=30, valid=10, seed=0)


@pytest.fixture
def session(digits):
    torch.manual_seed(0)
    return wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=32, seed=0)

