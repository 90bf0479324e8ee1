"""data.with_label_noise: planted flips, seeded, replayable from the recipe, valid left clean."""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.data.recipes import replay


def test_flips_the_share_asked_for_to_other_classes() -> None:
    data = wb.load_data("digits").subset(train=20, valid=5, seed=0)
    noisy = data.with_label_noise(0.15, seed=3)
    flipped = np.flatnonzero(noisy.train.labels != data.train.labels)
    assert len(flipped) == round(0.15 * len(data.train))
    assert np.array_equal(noisy.valid.labels, data.valid.labels)  # valid stays clean
    assert np.array_equal(data.with_label_noise(0.15, seed=3).train.labels, noisy.train.labels)
    assert not np.array_equal(data.with_label_noise(0.15, seed=4).train.labels, noisy.train.labels)
    assert np.array_equal(replay(noisy.recipe).train.labels, noisy.train.labels)
    assert noisy.item(int(flipped[0]), "train") == data.item(int(flipped[0]), "train")  # same items


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "0.1", True])
def test_bad_fractions_are_refused(fraction) -> None:
    with pytest.raises(wb.ConfigError, match="fraction"):
        wb.load_data("digits").with_label_noise(fraction)
