"""errors.dynamics(), the data map, forgetting, AUM, the combined ranking and kept epochs' analyses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.analysis.dynamics import (DynamicsMap, combined_ranking, dynamics_frame, forgetting_events, recall_at,
                                         regions)

CLASSES = ["cat", "dog", "=cmd|' /C calc'!A0"]


def signals(p, margin, correct, epochs=None):
    p, margin, correct = (np.asarray(a, dtype=t) for a, t in ((p, np.float32), (margin, np.float32), (correct, np.int8)))
    return {"p_true": p, "margin": margin, "correct": correct,
            "epochs": np.arange(1, len(p) + 1) if epochs is None else np.asarray(epochs)}


def test_statistics_by_hand() -> None:
    nan = np.nan
    # three epochs x four samples; sample 3 was never seen, sample 2 skipped epoch 2
    p = [[0.9, 0.1, 0.5, nan], [1.0, 0.2, nan, nan], [0.8, 0.0, 0.7, nan]]
    m = [[2.0, -1.0, 0.5, nan], [3.0, -2.0, nan, nan], [1.0, -3.0, -0.5, nan]]
    c = [[1, 0, 1, -1], [1, 0, -1, -1], [1, 0, 0, -1]]
    f = dynamics_frame(signals(p, m, c), np.array([0, 1, 2, 0]), np.array([0, 1, 2, 1]), CLASSES)
    assert f["epochs_seen"].tolist() == [3, 3, 2, 0]
    assert f.loc[0, "confidence"] == pytest.approx(0.9) and f.loc[0, "variability"] == pytest.approx(np.std([0.9, 1, 0.8]))
    assert f.loc[2, "confidence"] == pytest.approx(0.6) and f.loc[2, "variability"] == pytest.approx(0.1)
    assert f.loc[0, "aum"] == pytest.approx(2.0) and f.loc[1, "aum"] == pytest.approx(-2.0)
    assert f.loc[2, "aum"] == pytest.approx(0.0)
    assert f["correctness"].tolist()[:3] == pytest.approx([1.0, 0.0, 0.5])
    assert f["forgetting"].tolist() == [0, 0, 1, 0]  # sample 2: right, (unseen), wrong
    assert f["never_learned"].tolist() == [False, True, False, False]
    assert f["region"].tolist() == ["easy-to-learn", "hard-to-learn", "ambiguous", "not seen"]
    assert np.isnan(f.loc[3, "confidence"])
    assert f["label"].tolist()[0] == "cat" and f.loc[3, "given_label"] == "dog"


def test_forgetting_counts_right_to_wrong_between_seen_epochs() -> None:
    per_sample = [[1, 0, 1, 0], [0, 0, 1, 0], [1, -1, 0, 1], [1, 1, -1, 1]]  # -1: not seen that epoch
    c = np.array(per_sample, dtype=np.int8).T  # epochs x samples
    assert forgetting_events(c).tolist() == [2, 1, 1, 0]


@given(st.lists(st.lists(st.sampled_from([-1, 0, 1]), min_size=5, max_size=5), min_size=1, max_size=9))
@settings(max_examples=60, deadline=None)
def test_forgetting_matches_a_plain_loop(rows) -> None:
    c = np.array(rows, dtype=np.int8)
    expected = []
    for j in range(c.shape[1]):
        seq = [v for v in c[:, j] if v >= 0]
        expected.append(sum(1 for a, b in zip(seq, seq[1:]) if a == 1 and b == 0))
    assert forgetting_events(c).tolist() == expected


def test_regions_follow_the_thresholds() -> None:
    conf = np.array([0.1, 0.5, 0.9, 0.9, np.nan])
    var = np.array([0.0, 0.05, 0.05, 0.3, np.nan])
    got = regions(conf, var, hard_below=1 / 3, easy_above=2 / 3, variable_above=0.2)
    assert got.tolist() == ["hard-to-learn", "ambiguous", "easy-to-learn", "ambiguous", "not seen"]
    with pytest.raises(wb.ConfigError, match="hard_below"):
        dynamics_frame(signals([[0.5]], [[0.1]], [[1]]), np.array([0]), np.array([0]), CLASSES, hard_below=0.9,
                       easy_above=0.5)
    with pytest.raises(wb.ConfigError, match="variable_above"):
        dynamics_frame(signals([[0.5]], [[0.1]], [[1]]), np.array([0]), np.array([0]), CLASSES, variable_above=float("nan"))


def synthetic(n=200, noisy=20, epochs=5, seed=0):
    """Clean samples learn fast; the first `noisy` ones keep a low probability of their (wrong) label."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)[:, None] / epochs
    p = np.clip(0.3 + 0.7 * t + rng.normal(0, 0.1, (epochs, n)), 0, 1)
    p[:, :noisy] = np.clip(rng.uniform(0, 0.2, (epochs, noisy)), 0, 1)
    margin = np.log(p + 1e-3) - np.log(1 - p + 1e-3)
    correct = (p > 0.5).astype(np.int8)
    labels = rng.integers(0, 3, n)
    return dynamics_frame(signals(p, margin, correct), labels, labels, CLASSES), np.arange(noisy)


def test_combined_ranking_puts_the_noisy_samples_first_and_names_the_signals() -> None:
    frame, noisy = synthetic()
    cleanlab = pd.DataFrame({"id": frame.index, "label_quality": frame["confidence"] + 0.01,
                             "issue": frame["confidence"] < 0.25})
    ranked = combined_ranking(frame, cleanlab)
    assert recall_at(ranked, noisy, fraction=0.1) == 1.0
    top = ranked.iloc[0]
    assert top["agree"] == 3 and top["flags"] == "cleanlab, AUM, hard-to-learn"
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["score"].is_monotonic_increasing
    alone = combined_ranking(frame, None)  # training dynamics alone
    assert "cleanlab" not in alone["flags"].str.cat() and recall_at(alone, noisy, fraction=0.1) == 1.0


def test_recall_at_counts_the_top_fraction() -> None:
    assert recall_at([5, 4, 3, 2, 1, 0, 9, 8, 7, 6], [5, 0], fraction=0.2) == 0.5
    assert recall_at([5, 4, 3], [5], fraction=0.1, n=30) == 1.0


def test_data_map_regions_lasso_and_figure() -> None:
    frame, noisy = synthetic()
    dmap = DynamicsMap(frame=frame, classes=tuple(CLASSES), epochs=(1, 2, 3, 4, 5))
    counts = dmap.counts()
    assert sum(counts.values()) == len(frame) and counts["hard-to-learn"] >= len(noisy)
    assert set(noisy) <= set(dmap.region("hard-to-learn"))
    inside = dmap.inside([(0, 0), (0.5, 0), (0.5, 0.25), (0, 0.25)])
    assert set(inside) == set(frame.index[frame["confidence"] < 0.25])
    fig = dmap.plot(highlight=noisy)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("hard-to-learn (") for t in texts)
    assert dmap._repr_png_()[:4] == b"\x89PNG"
    with pytest.raises(wb.ConfigError, match="region"):
        dmap.region("medium")


@pytest.fixture(scope="module")
def trained():
    data = wb.load_data("digits").subset(train=20, valid=8, seed=0)
    torch.manual_seed(0)
    model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)
    s = wb.Session(data, model, optimizer="sgd", lr=0.1, batch_size=32, seed=0)
    s.fit(3)
    return s


def test_errors_dynamics_and_data_map_from_a_session(trained) -> None:
    errors = wb.ErrorAnalysis.from_session(trained)
    f = errors.dynamics()
    assert len(f) == len(trained.data.train) and f["epochs_seen"].max() == 3
    assert f.attrs["epochs"] == [1, 2, 3]
    dmap = errors.data_map()
    assert dmap.epochs == (1, 2, 3) and len(dmap.frame) == len(f)
    earlier = wb.ErrorAnalysis.from_session(trained, epoch=2)  # the map of the epochs up to 2
    assert earlier.dynamics()["epochs_seen"].max() == 2


def test_a_kept_epoch_gives_that_epochs_matrix_and_gallery(trained) -> None:
    prev = trained.previous_predictions  # epoch 2, in full
    full = wb.ErrorAnalysis.from_predictions(prev.labels, prev.logits, trained.data.classes, losses=prev.losses)
    kept = wb.ErrorAnalysis.from_session(trained, epoch=2)
    assert kept.epoch == 2 and kept.kept_only
    assert np.array_equal(kept.confusion_matrix, full.confusion_matrix)
    assert np.array_equal(kept.predicted, full.predicted)
    a, b = kept.table(range(10)), full.table(range(10))
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-3)
    np.testing.assert_allclose(a["p_true"], b["p_true"], atol=1e-3)
    assert kept.per_class().round(6).equals(full.per_class().round(6))
    with pytest.raises(wb.ConfigError, match="kept compactly"):
        kept.label_issues("valid")
    with pytest.raises(wb.ConfigError, match="features moved on"):
        kept.embedding()
    with pytest.raises(wb.ConfigError, match="were not kept"):
        wb.ErrorAnalysis.from_session(trained, epoch=40)


def test_combined_train_issues_from_a_session(trained) -> None:
    errors = wb.ErrorAnalysis.from_session(trained)
    table = errors.label_issues("train", combine=True)
    assert len(table) == len(trained.data.train) and table["split"].eq("train").all()
    assert list(table.columns[:3]) == ["rank", "id", "split"]
    assert {"label_quality", "aum", "confidence", "region", "flags", "agree", "score"} <= set(table.columns)
    with pytest.raises(wb.ConfigError, match="train split"):
        errors.label_issues("valid", combine=True)


def test_an_analysis_without_a_session_has_no_dynamics() -> None:
    errors = wb.ErrorAnalysis.from_predictions([0, 1], [[2.0, 0.0], [0.0, 2.0]], ["a", "b"])
    with pytest.raises(wb.ConfigError, match="no training dynamics"):
        errors.dynamics()
