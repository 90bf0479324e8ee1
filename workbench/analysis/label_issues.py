"""Likely label errors, ranked by cleanlab's confident learning (find_label_issues).

cleanlab needs out-of-sample probabilities. For the validation split those are the model's own
(it never trained on them). For the training split the model's are in-sample (it fit them), so
we fit a logistic regression on the cached pooled features with 5-fold cross_val_predict: every
training sample is scored by a classifier that did not see it. Nothing here removes or changes a
label: the ranking feeds flags and a CSV a person reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..safety import write_csv as safe_csv

COLUMNS = ["rank", "id", "split", "given_label", "suggested_label", "label_quality", "p_given", "p_suggested", "issue"]


def rank_label_issues(labels: np.ndarray, probs: np.ndarray, ids: np.ndarray, classes: Sequence[str],
                      split: str = "valid") -> pd.DataFrame:
    """Every sample ranked, most likely mislabelled first: cleanlab's issues (find_label_issues,
    ranked by self-confidence) first, then the rest by the same label-quality score."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise DataError(f"probabilities must be (N, K) with one row per label; got {probs.shape} for {len(labels)} labels.")
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError("Label issues need at least two classes among the samples; this split has one.")
    issue = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    order = np.lexsort((np.arange(len(labels)), quality, ~issue))  # issues first, then lowest quality
    suggested = probs.argmax(axis=1)
    rows = np.arange(len(labels))
    return pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "id": np.asarray(ids)[order],
        "split": split,
        "given_label": [classes[c] for c in labels[order]],
        "suggested_label": [classes[c] for c in suggested[order]],
        "label_quality": quality[order],
        "p_given": probs[rows, labels][order],
        "p_suggested": probs[rows, suggested][order],
        "issue": issue[order],
    })


def cross_val_probabilities(features, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities from a logistic regression on the features (N, D).

    Measured on the shared 2-core CPU: 1,000 x 1280 features, 10 classes, 5 folds in ~1-2 s.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features.detach().float().cpu().numpy() if hasattr(features, "detach") else features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y)
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        raise DataError("A class has a single training sample, so no fold can hold it out and score it; "
                        "add samples to it or leave the training split out (split='valid').")
    k = min(folds, smallest)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with single_threaded_blas():
        probs = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
    full = np.zeros((len(y), len(counts)))
    full[:, : probs.shape[1]] = probs  # classes absent from train keep probability 0
    return full


def single_threaded_blas():
    """BLAS on one thread for scikit-learn's small dense problems. Measured on the shared 2-core
    CPU: a logistic regression on 800 x 1280 took 2.8 s with OpenBLAS's threads spinning against
    the other processes, 0.04 s on one thread; 5-fold CV on 1000 MNIST features went 34 s -> ~1 s."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def write_csv(table: pd.DataFrame, path) -> Path:
    """Write a table as CSV with every text cell quoted and neutralised (class names and notes are
    untrusted; workbench.safety)."""
    return safe_csv(path, list(table.columns), table.itertuples(index=False))
