"""Training dynamics on a GPU: recorded on the device from the training forward passes (bf16 logits
under autocast, deferred loss reads), one host copy per epoch, the same numbers as the CPU rule.
Skipped without CUDA (benchmarks/gpu_check.sh runs the tests/cuda folder where a GPU is lent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb

from helpers import tiny_cnn

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def digits():
    return wb.load_data("digits").subset(train=40, valid=10, seed=0)


def test_full_fine_tuning_records_on_the_device(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="adamw", lr=1e-3, batch_size=32, freeze="full", device="cuda",
                   amp="bf16")
    s.fit(2)
    sig = s.dynamics.signals()
    assert sig["p_true"].shape == (2, len(digits.train)) and (sig["correct"] >= 0).all()
    for row, record in zip(sig["correct"], s.history):
        assert row.mean() == pytest.approx(record.train_accuracy, abs=1e-9)  # the loop's own argmax
    assert np.array_equal(sig["margin"] > 0, sig["correct"] == 1)
    assert s.dynamics.valid_epochs == [1, 2]


def test_head_only_with_a_stop_and_a_relabel_on_the_device(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.1, batch_size=32, device="cuda")
    s.relabel({0: "3"})
    s.fit(1, stop_after=2)
    seen = s.dynamics.signals()["correct"][0] >= 0
    assert seen.sum() == 64 and s.train_labels[0] == 3
    assert s.review.apply_to(s.pipeline.labels("train")).device.type == "cuda"
