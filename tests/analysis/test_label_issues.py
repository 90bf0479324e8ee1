"""cleanlab's ranking finds flipped labels far above chance; it only flags, never changes labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import workbench as wb
from workbench.analysis import ErrorAnalysis
from workbench.analysis.label_issues import rank_label_issues
from workbench.safety import spreadsheet_safe as csv_cell
from workbench.errors import ConfigError, DataError


def _flip(labels: np.ndarray, fraction: float, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    y = labels.copy()
    n = int(round(fraction * len(y)))
    idx = np.sort(rng.choice(len(y), n, replace=False))
    y[idx] = (y[idx] + rng.integers(1, k, n)) % k  # always a different class
    return y, idx


@pytest.fixture(scope="module")
def noisy_mnist():
    """1,000 train / 500 valid MNIST digits with 5% of each split's labels flipped."""
    base = wb.load_data("mnist-5k").subset(train=100, valid=50, seed=0)
    rng = np.random.default_rng(0)
    k = base.num_classes
    yt, flipped_train = _flip(base.train.labels, 0.05, k, rng)
    yv, flipped_valid = _flip(base.valid.labels, 0.05, k, rng)
    data = wb.Data.from_arrays(base.train.images, yt, base.classes, valid=(base.valid.images, yv))
    model = wb.load_backbone("efficientnet_lite0", k, pretrained=True, image_size=48)
    session = wb.Session(data, model, lr=1e-2, batch_size=64, seed=0)
    session.fit(8)
    return session, flipped_train, flipped_valid


@pytest.mark.slow
def test_precision_of_the_top_k_is_far_above_the_noise_rate(noisy_mnist) -> None:
    session, flipped_train, flipped_valid = noisy_mnist
    errors = wb.ErrorAnalysis.from_session(session)
    labels_before = session.data.train.labels.copy()
    for split, flipped in (("valid", flipped_valid), ("train", flipped_train)):
        table = errors.label_issues(split)
        k = len(flipped)
        precision = np.isin(table.head(k)["id"], flipped).mean()
        # Measured here (seeded): valid 0.68 (k=25), train 0.82 (k=50), against 0.05 by chance.
        assert precision > 0.5, f"{split}: precision@{k} = {precision:.2f}"
        assert list(table["rank"]) == list(range(1, len(table) + 1)) and table["issue"].iloc[0]
        assert (table["given_label"] != table["suggested_label"]).head(k).mean() > 0.8
    assert np.array_equal(session.data.train.labels, labels_before), "ranking must never change labels"

    flagged = errors.flag_label_issues(n=10)
    assert len(flagged) == 10 and [f["id"] for f in errors.flagged] == flagged
    assert "cleanlab rank 1" in errors.flagged[0]["note"]


def test_ranking_puts_confidently_contradicted_labels_first() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), labels] = 0.9
    wrong = np.array([5, 17, 123])
    probs[wrong] = [0.02, 0.02, 0.96]
    labels[wrong] = 0
    table = rank_label_issues(labels, probs, np.arange(300) + 1000, ["a", "b", "c"])
    assert set(table.head(3)["id"]) == set(wrong + 1000)
    assert table.head(3)["issue"].all() and (table.head(3)["suggested_label"] == "c").all()
    assert table["issue"].sum() == 3


def test_flagged_csv_neutralises_formulas(tmp_path) -> None:
    classes = ["=HYPERLINK(\"http://x\")", "+1", "ok"]
    labels = np.array([0, 1, 2, 0, 1, 2])
    errors = ErrorAnalysis.from_predictions(labels, np.eye(3)[[1, 1, 2, 0, 0, 2]], classes)
    errors.flag(0, note="@SUM(A1)")
    errors.flag(4)
    rows = list(csv.DictReader(open(errors.export_flagged(tmp_path / "f.csv"))))
    assert rows[0]["given_label"].startswith("'=") and rows[0]["note"] == "'@SUM(A1)"
    assert rows[1]["given_label"] == "'+1"
    assert csv_cell("-2") == "'-2" and csv_cell("\tx") == "'\tx" and csv_cell(3) == 3 and csv_cell("fine") == "fine"


def test_bad_requests_name_the_fix() -> None:
    errors = ErrorAnalysis.from_predictions([0, 1, 0], np.eye(2)[[0, 1, 1]], ["a", "b"])
    with pytest.raises(ConfigError, match="'valid' or 'train'"):
        errors.label_issues("test")
    with pytest.raises(ConfigError, match="attach_features"):
        errors.label_issues("train")
    with pytest.raises(DataError, match="two classes"):
        rank_label_issues(np.zeros(4, int), np.full((4, 2), 0.5), np.arange(4), ["a", "b"])
