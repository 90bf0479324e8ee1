"""LogME against hand computations, and backbone ranking on features whose order is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.analysis.choose import BackboneRanking, CandidateResult, as_candidates, rank_backbones
from workbench.analysis.logme import log_evidence, logme


# ---- LogME -----------------------------------------------------------------------------------
def test_log_evidence_matches_a_hand_computation() -> None:
    # F = [[1], [1]], y = [1, 0], alpha = beta = 1: C = I + F F^T = [[2, 1], [1, 2]], det 3,
    # y^T C^-1 y = 2/3, so log N(y | 0, C) = -log(2 pi) - log(3)/2 - 1/3, per sample half of it.
    f, y = np.array([[1.0], [1.0]]), np.array([1.0, 0.0])
    assert log_evidence(f, y, 1.0, 1.0) == pytest.approx((-math.log(2 * math.pi) - 0.5 * math.log(3) - 1 / 3) / 2)


def _gaussian_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The marginal likelihood written as the Gaussian it is: N(y | 0, I/beta + F F^T/alpha)."""
    from scipy.stats import multivariate_normal

    cov = np.eye(len(y)) / beta + f @ f.T / alpha
    return float(multivariate_normal(mean=np.zeros(len(y)), cov=cov).logpdf(y)) / len(y)


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30)])  # more samples than features, and fewer
def test_logme_finds_the_maximum_of_the_gaussian_evidence(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) + 0.8 * np.eye(3, d)[labels]
    result = logme(f, labels, 3)
    for k in range(3):
        y = (labels == k).astype(float)
        a, b = result.alpha[k], result.beta[k]
        at_optimum = _gaussian_log_evidence(f, y, a, b)
        assert result.per_class[k] == pytest.approx(at_optimum, abs=1e-6)
        assert log_evidence(f, y, a, b) == pytest.approx(at_optimum, abs=1e-6)
        for da, db in ((1.3, 1), (1 / 1.3, 1), (1, 1.3), (1, 1 / 1.3)):  # a maximum: any move lowers it
            assert _gaussian_log_evidence(f, y, a * da, b * db) < at_optimum + 1e-9
    assert result.score == pytest.approx(result.per_class.mean())


def test_logme_orders_features_by_how_much_label_signal_they_carry() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    onehot = np.eye(4)[labels]
    noise = rng.normal(size=(300, 16))
    scores = [logme(np.hstack([signal * onehot, noise]), labels, 4).score for signal in (3.0, 1.0, 0.3, 0.0)]
    assert scores == sorted(scores, reverse=True), scores
    assert scores[0] - scores[-1] > 0.2


def test_logme_refuses_bad_input() -> None:
    with pytest.raises(wb.DataError, match="one integer per feature row"):
        logme(np.zeros((5, 2)), [0, 1])
    with pytest.raises(wb.DataError, match="NaN"):
        logme(np.full((3, 2), np.nan), [0, 1, 0])
    with pytest.raises(wb.DataError, match="class indices"):
        logme(np.zeros((3, 2)), [0.5, 1, 0])


# ---- ranking on constructed features ---------------------------------------------------------------
SIDE, CLASSES = 8, 4


def _region_data(seed: int = 0) -> wb.Data:
    """8x8 grey images: the class is written into rows 0-1 (clearly), rows 3-4 (faintly) and
    nowhere else (rows 6-7 are noise)."""
    rng = np.random.default_rng(seed)

    def make(n: int):
        y = rng.integers(0, CLASSES, n)
        x = rng.integers(60, 196, size=(n, SIDE, SIDE)).astype(np.float64)
        pattern = (np.arange(SIDE)[None, :] % CLASSES == y[:, None]).astype(float)  # one column set per class
        x[:, 0:2] = 30 + 200 * pattern[:, None, :]
        x[:, 3:5] = np.clip(x[:, 3:5] + 25 * (pattern[:, None, :] - 0.5), 0, 255)
        return x.astype(np.uint8), y

    return wb.Data.from_arrays(*make(240), [f"c{i}" for i in range(CLASSES)], valid=make(120), name="regions")


class RowReader(nn.Module):
    """A frozen 'backbone' that sees only rows `start:start+2` of the image, and a linear head."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start
        self.body = nn.Linear(2 * SIDE, 2 * SIDE)
        with torch.no_grad():
            self.body.weight.copy_(torch.eye(2 * SIDE))
            self.body.bias.zero_()
        self.fc = nn.Linear(2 * SIDE, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x[:, 0, self.start : self.start + 2, :].flatten(1)
        return self.fc(self.body(rows))


def _reader(start: int, name: str) -> wb.Model:
    pre = wb.ImagePreprocess(size=SIDE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_pct=1.0)
    return wb.Model.from_module(RowReader(start), CLASSES, preprocess=pre, head="fc", name=name)


def test_rank_backbones_orders_constructed_candidates_by_their_signal() -> None:
    data = _region_data()
    models = [_reader(6, "noise rows"), _reader(0, "clear rows"), _reader(3, "faint rows")]
    seen: list[str] = []
    ranking = rank_backbones(data, models, progress=False, on_progress=lambda p: seen.append(p.stage))
    f = ranking.frame
    assert list(f["candidate"]) == ["clear rows", "faint rows", "noise rows"]
    assert list(f["logme_rank"]) == [1, 2, 3]  # LogME agrees without fitting a head
    assert ranking.spearman() == pytest.approx(1.0)
    acc = dict(zip(f["candidate"], f["valid_accuracy"]))
    assert acc["clear rows"] == 1.0 and acc["noise rows"] < 0.45  # chance is 0.25
    assert (f["backbone_params"] == 2 * SIDE * (2 * SIDE + 1)).all() and (f["feature_dim"] == 2 * SIDE).all()
    assert {"building", "features (train)", "fitting the head", "LogME", "done"} <= set(seen)
    best = ranking.adopt(1)
    assert best is ranking.adopt("clear rows") and best.name == "choose · clear rows"
    assert best.history[-1].valid_accuracy == 1.0 and best.cache.builds == 2  # features computed once per split
    # a second ranking reusing the first computes no features again
    again = rank_backbones(data, models, reuse=ranking, progress=False)
    assert again.adopt(1) is best and best.cache.builds == 2
    assert list(again.frame["candidate"]) == list(f["candidate"])
    html = ranking._repr_html_()
    assert "clear rows" in html and "<script" not in html


def test_candidates_are_checked_before_anything_is_built() -> None:
    data = wb.load_data("digits").subset(train=5, valid=3, seed=0)
    with pytest.raises(wb.ConfigError, match="text backbone"):
        as_candidates(["minilm-l6"], data)
    with pytest.raises(wb.ConfigError, match="Unknown backbone"):
        as_candidates(["efficientnet_lite00"], data)
    with pytest.raises(wb.ConfigError, match="listed twice"):
        as_candidates(["efficientnet_lite0", {"backbone": "efficientnet_lite0"}], data)
    with pytest.raises(wb.ConfigError, match="unknown field"):
        as_candidates([{"backbone": "efficientnet_lite0", "size": 3}], data)
    with pytest.raises(wb.ConfigError, match="must be a list"):
        rank_backbones(data, "efficientnet_lite0", progress=False)
    with pytest.raises(wb.ConfigError, match="empty"):
        rank_backbones(data, [], progress=False)
    assert len(as_candidates(None, data)) == 6


def test_a_candidate_that_cannot_load_is_reported_and_the_rest_ranked() -> None:
    ranking = BackboneRanking(None, [CandidateResult("a", None, valid_accuracy=0.5, logme=-1.0),
                                     CandidateResult("b", None, error="needs a download"),
                                     CandidateResult("c", None, valid_accuracy=0.9, logme=-0.5)], C=1.0)
    f = ranking.frame
    assert list(f["candidate"]) == ["c", "a", "b"] and f["rank"].tolist()[:2] == [1, 2]
    assert f["error"].iloc[2] == "needs a download"
    with pytest.raises(wb.ConfigError, match="could not be measured"):
        ranking.adopt("b")
    with pytest.raises(wb.ConfigError, match="out of range"):
        ranking.adopt(4)
