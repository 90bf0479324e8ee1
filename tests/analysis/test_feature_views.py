"""Neighbours, the map and its selections equal brute force / scikit-learn / matplotlib answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.path import Path
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import cosine_similarity

import workbench as wb
from workbench.analysis import ErrorAnalysis
from workbench.analysis.embedding import available_methods
from workbench.errors import ConfigError, DataError

K = 4


@pytest.fixture
def attached():
    rng = np.random.default_rng(0)
    valid, train = rng.normal(size=(60, 16)), rng.normal(size=(200, 16))
    labels, train_labels = rng.integers(0, K, 60), rng.integers(0, K, 200)
    logits = rng.normal(size=(60, K))
    errors = ErrorAnalysis.from_predictions(labels, logits, [f"c{i}" for i in range(K)])
    errors.attach_features(torch.tensor(valid), torch.tensor(train), train_labels)
    return errors, valid, train, train_labels


def test_neighbours_equal_brute_force_cosine(attached) -> None:
    errors, valid, train, train_labels = attached
    for i in (0, 7, 59):
        table = errors.neighbours(i, k=8)
        sims = cosine_similarity(valid[i : i + 1], train)[0]
        expected = np.argsort(-sims, kind="stable")[:8]
        assert list(table["train_id"]) == list(expected)
        np.testing.assert_allclose(table["similarity"], sims[expected], rtol=1e-5)
        assert list(table["label"]) == [f"c{c}" for c in train_labels[expected]]
        assert list(table["rank"]) == list(range(1, 9))


def test_map_equals_sklearn_pca_and_selections_equal_matplotlib(attached) -> None:
    errors, valid, _, _ = attached
    emb = errors.embedding("pca")
    ref = PCA(n_components=2, random_state=0).fit(valid.astype(np.float32))
    np.testing.assert_allclose(np.abs(emb.coords), np.abs(ref.transform(valid.astype(np.float32))), rtol=1e-3, atol=1e-4)
    assert emb.explained_variance == pytest.approx(tuple(ref.explained_variance_ratio_), rel=1e-4)
    assert errors.embedding("pca") is emb  # computed once
    polygon = [(-1, -1), (1.5, -0.5), (1, 1.2), (-0.5, 0.8)]
    inside = Path(polygon).contains_points(emb.coords)
    assert set(emb.inside(polygon)) == set(emb.ids[inside]) and inside.any()
    assert list(emb.cell(1, 2)) == list(np.flatnonzero((emb.labels == 1) & (emb.predicted == 2)))
    x, y = emb.coords[5]
    assert emb.nearest(float(x), float(y)) == 5
    assert (emb.wrong == (errors.labels != errors.predicted)).all()


def test_tsne_runs_and_unknown_methods_are_named(attached) -> None:
    errors = attached[0]
    emb = errors.embedding("tsne")
    assert emb.coords.shape == (60, 2) and np.isfinite(emb.coords).all() and emb.method == "tsne"
    assert available_methods()[:2] == ["pca", "tsne"]
    with pytest.raises(ConfigError, match="'pca', 'tsne' or 'umap'"):
        errors.embedding("mds")


def test_bad_inputs(attached) -> None:
    errors = attached[0]
    with pytest.raises(DataError, match="No validation sample"):
        errors.neighbours(999)
    with pytest.raises(ConfigError, match="positive int"):
        errors.neighbours(0, k=0)
    with pytest.raises(ConfigError, match="polygon"):
        errors.embedding().inside([(0, 0), (1, 1)])
    bare = ErrorAnalysis.from_predictions([0, 1], np.eye(2), ["a", "b"])
    with pytest.raises(ConfigError, match="from_session"):
        bare.neighbours(0)


def test_from_session_reads_the_cached_features_and_refuses_stale_ones(tiny_image_session) -> None:
    s = tiny_image_session
    errors = wb.ErrorAnalysis.from_session(s)
    table = errors.neighbours(2, k=3)
    train, valid = s.features("train"), s.features("valid")
    sims = torch.nn.functional.cosine_similarity(valid[2][None], train)
    assert list(table["train_id"]) == torch.topk(sims, 3).indices.tolist()
    emb = errors.embedding()
    assert emb.coords.shape == (len(s.data.valid), 2)
    s.step()
    with pytest.raises(ConfigError, match="fresh ErrorAnalysis"):
        errors.neighbours(2, k=3)
