"""ErrorAnalysis numbers equal scikit-learn's and brute-force filters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from workbench.analysis import ErrorAnalysis
from workbench.errors import ConfigError, DataError

K = 7
CLASSES = [f"c{i}" for i in range(K)]


@pytest.fixture
def random_case():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 500)
    logits = rng.normal(size=(500, K))
    logits[np.arange(500), labels] += 1.0  # better than chance, still many errors
    ids = rng.permutation(10_000)[:500]
    return labels, logits, ids, ErrorAnalysis.from_predictions(labels, logits, CLASSES, ids=ids)


def test_numbers_equal_sklearn(random_case) -> None:
    labels, logits, _, ea = random_case
    pred = logits.argmax(1)
    assert np.array_equal(ea.confusion_matrix, confusion_matrix(labels, pred, labels=range(K)))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(K), zero_division=0)
    table = ea.per_class()
    np.testing.assert_allclose(table["precision"], p)
    np.testing.assert_allclose(table["recall"], r)
    np.testing.assert_allclose(table["f1"], f)
    assert list(table["support"]) == list(s) and list(table.index) == CLASSES
    assert ea.accuracy == pytest.approx((pred == labels).mean())
    assert ea.macro_f1 == pytest.approx(f1_score(labels, pred, average="macro"))
    np.testing.assert_allclose(ea.normalized_confusion().sum(axis=1), 1.0)


def test_indices_equal_a_brute_force_filter_sorted_by_loss(random_case) -> None:
    labels, logits, ids, ea = random_case
    pred = logits.argmax(1)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    for t in range(K):
        for q in range(K):
            rows = [i for i in range(len(labels)) if labels[i] == t and pred[i] == q]
            expected = sorted(rows, key=lambda i: logp[i, labels[i]])  # lowest log-prob = highest loss first
            assert list(ea.indices(t, q)) == [ids[i] for i in expected]
    assert list(ea.indices("c1", "c2")) == list(ea.indices(1, 2))


def test_top_losses_and_most_confused(random_case) -> None:
    _, _, _, ea = random_case
    top = ea.top_losses(10)
    assert len(top) == 10 and top["loss"].is_monotonic_decreasing
    assert top["loss"].iloc[0] == pytest.approx(ea.losses.max())
    mc = ea.most_confused(min_count=3)
    cm = ea.confusion_matrix
    assert (mc["count"] >= 3).all() and mc["count"].is_monotonic_decreasing
    assert all(cm[t, q] == c for t, q, c in zip(mc["true_index"], mc["pred_index"], mc["count"]))
    assert (mc["true_index"] != mc["pred_index"]).all()
    off_diagonal = cm.sum() - np.trace(cm)
    assert ea.most_confused(min_count=1)["count"].sum() == off_diagonal


def test_probabilities_are_detected_and_losses_default_to_cross_entropy() -> None:
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.9, 0.1]])
    ea = ErrorAnalysis.from_predictions([0, 0, 1], probs, ["a", "b"])
    np.testing.assert_allclose(ea.losses, -np.log([0.7, 0.2, 0.1]))
    assert list(ea.indices("a", "b")) == [1] and list(ea.indices("b", "a")) == [2]


def test_flips_on_a_constructed_case() -> None:
    classes = ["a", "b"]
    labels = np.array([0, 0, 1, 1, 0])
    before = ErrorAnalysis.from_predictions(labels, np.eye(2)[[0, 1, 1, 0, 0]], classes, ids=[10, 11, 12, 13, 14])
    after = ErrorAnalysis.from_predictions(labels, np.eye(2)[[1, 0, 1, 1, 0]], classes, ids=[10, 11, 12, 13, 14])
    flips = after.flips(before)
    assert list(flips.right_to_wrong) == [10]  # was right, now wrong: forgotten
    assert list(flips.wrong_to_right) == [11, 13]


def test_flagging_and_csv_export(tmp_path, random_case) -> None:
    _, _, ids, ea = random_case
    wrong = ea.top_losses(2, errors_only=True)["id"].tolist()
    for i in wrong + wrong[:1]:
        ea.flag(i)
    assert [f["id"] for f in ea.flagged] == wrong
    ea.unflag(wrong[1])
    path = ea.export_flagged(tmp_path / "flagged.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == '"id","sample","given_label","predicted_label","note"'  # text cells quoted (safety.write_csv)
    assert lines[1].startswith(f"{wrong[0]},")  # numbers are not
    with pytest.raises(DataError, match="No sample with id -5"):
        ea.flag(-5)


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rcmd|' /C calc'!A0"])
def test_csv_export_neutralises_formula_prefixes(tmp_path, name) -> None:
    """OWASP CSV injection: class names and file names from a dataset must not run as formulas."""
    import csv

    classes = [name, "plain"]
    ea = ErrorAnalysis.from_predictions([0, 1], [[0.1, 0.9], [0.8, 0.2]], classes, sample_ids=[name, "ok.png"])
    ea.flag(0, note=name)
    ea.flag(1)
    path = ea.export_flagged(tmp_path / "flags.csv")
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    assert rows[0]["given_label"] == rows[0]["sample"] == rows[0]["note"] == rows[1]["predicted_label"] == "'" + name
    assert rows[1]["given_label"] == "plain" and rows[1]["sample"] == "ok.png"
    with pytest.raises(DataError, match="Cannot write"):
        ea.export_flagged(tmp_path / "missing-folder" / "flags.csv")


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(DataError, match="has 3 columns but there are 2 classes"):
        ErrorAnalysis.from_predictions([0, 1], np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(DataError, match="class indices in 0..1"):
        ErrorAnalysis.from_predictions([0, 5], np.zeros((2, 2)), ["a", "b"])
    ea = ErrorAnalysis.from_predictions([0, 1], np.eye(2), ["a", "b"])
    with pytest.raises(ConfigError, match="Unknown class 'z'"):
        ea.indices("z", "a")


def test_from_session_needs_predictions() -> None:
    class NoPredictions:
        predictions = None

    with pytest.raises(ConfigError, match="train an epoch first"):
        ErrorAnalysis.from_session(NoPredictions())
