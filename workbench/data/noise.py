"""Planted label noise: a copy of the data with a share of its train labels flipped, for teaching and
for measuring how well label-issue signals find wrong labels (benchmarks/dynamics_recall.py).

Each chosen train sample gets another class drawn uniformly from the rest; the valid split is left
clean, so accuracy still measures the truth. Seeded: the same seed flips the same samples.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..validate import number
from .checks import check_seed


def flipped_labels(labels: np.ndarray, num_classes: int, fraction: float, seed: int) -> np.ndarray:
    """`labels` with round(fraction * n) of them, chosen at random, changed to another class."""
    fraction = number("fraction", fraction, low=0, high=1, hint="The share of train labels to flip, e.g. 0.1.")
    seed = check_seed(seed)
    if num_classes < 2:
        raise ConfigError("Flipping labels needs at least two classes.")
    rng = np.random.default_rng([seed, 7])
    out = np.asarray(labels, dtype=np.int64).copy()
    chosen = rng.choice(len(out), size=int(round(fraction * len(out))), replace=False)
    out[chosen] = (out[chosen] + rng.integers(1, num_classes, size=len(chosen))) % num_classes
    return out
