"""What ErrorAnalysis can say from the pooled features: neighbours, label issues, a 2-D map.

A mixin, so `errors.neighbours(i)`, `errors.label_issues()` and `errors.embedding()` sit beside the
confusion matrix (the public API in docs/ARCHITECTURE.md) while their code lives here. The features are the session's cached
head inputs (`session.features(split)`), fetched on first use and checked against the epoch the
predictions came from; `attach_features` gives them for analyses built from plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..validate import integer, whole
from .embedding import Embedding, project
from .label_issues import cross_val_probabilities, rank_label_issues
from .neighbours import NeighbourIndex

SPLITS = ("valid", "train")


class FeatureViews:
    """Neighbours, label issues and the map, for an ErrorAnalysis (which supplies ids, labels, probs)."""

    ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    predicted: np.ndarray
    classes: list[str]
    epoch: int | None
    _position: dict[int, int]

    def _init_feature_views(self) -> None:
        self._feature_fn: Callable[[str], object] | None = None
        self._train_labels: np.ndarray | None = None
        self._current_epoch: Callable[[], int | None] = lambda: self.epoch
        self._derived: dict[object, object] = {}  # neighbour index, maps, rankings: computed once each

    # ---- where features come from -------------------------------------------------------------
    def attach_session(self, session) -> None:
        """Read features from `session.features(split)` when first needed (the cached head inputs)."""
        features = getattr(session, "features", None)
        if features is None:  # a stand-in session (tests, replays) without the feature cache
            return
        self._feature_fn = features
        self._train_labels = np.asarray(getattr(session, "train_labels", session.data.train.labels), dtype=np.int64)
        self._current_epoch = lambda: getattr(session.predictions, "epoch", None)
        self._derived.clear()

    def attach_features(self, valid, train=None, train_labels: Sequence[int] | None = None) -> None:
        """Give features directly: valid (N, D) in the order of `ids` positions; train (M, D) with its labels."""
        if len(valid) != len(self.ids) and len(valid) <= int(self.ids.max()):
            raise DataError(f"valid features have {len(valid)} rows; the predictions index up to {int(self.ids.max())}.")
        if (train is None) != (train_labels is None):
            raise ConfigError("Give train features and train_labels together (or neither).")
        store = {"valid": valid, "train": train}
        self._feature_fn = lambda split: store[split]
        self._train_labels = None if train_labels is None else np.asarray(train_labels, dtype=np.int64)
        self._current_epoch = lambda: self.epoch
        self._derived.clear()

    def _features(self, split: str):
        if self._feature_fn is None:
            raise ConfigError("This analysis has no features: build it with ErrorAnalysis.from_session(session), "
                              "or call errors.attach_features(valid, train, train_labels).")
        now = self._current_epoch()
        if now != self.epoch:
            raise ConfigError(f"These predictions are from epoch {self.epoch} but the session is at epoch {now}: "
                              "its features moved on. Build a fresh ErrorAnalysis.from_session(session).")
        feats = self._feature_fn(split)
        if feats is None:
            raise ConfigError(f"No {split} features were attached; pass them to attach_features().")
        return feats

    def _row_id(self, index: int) -> int:
        """A validation sample's id, checked: an int (never coerced) among these predictions' ids."""
        i = whole("index", index, hint="Ids are positions in the valid split, as errors.table() shows them.")
        if i not in self._position:
            raise DataError(f"No validation sample with id {i} in these predictions (ids are valid positions "
                            f"0..{len(self._position) - 1}).")
        return i

    def _valid_rows(self, features, ids: np.ndarray):
        return features[np.asarray(ids, dtype=np.int64)]  # ids are positions in the valid split

    # ---- nearest training samples ----------------------------------------------------------------
    def neighbours(self, index: int, k: int = 8) -> pd.DataFrame:
        """The k training samples most similar to validation sample `index` (cosine on pooled features):
        train_id (position in the train split), label, similarity, most similar first."""
        i = self._row_id(index)
        k = integer("neighbours k", k, low=1, hint="It is how many neighbours to list (a positive int), e.g. k=8.")
        key = "neighbour-index"
        if key not in self._derived:
            train = self._features("train")
            if self._train_labels is None:
                raise ConfigError("No training labels attached: pass train_labels to attach_features().")
            self._derived[key] = NeighbourIndex(train, self._train_labels, self.classes)
        index_: NeighbourIndex = self._derived[key]  # type: ignore[assignment]
        return index_.query(self._features("valid")[i], k)

    # ---- label issues ------------------------------------------------------------------------------
    def label_issues(self, split: str = "valid", combine: bool = False) -> pd.DataFrame:
        """Every sample of `split` ranked by how likely its label is wrong (cleanlab find_label_issues):
        the `issue` rows first. Valid uses the model's probabilities; train uses cross-validated
        logistic regression on the cached features (a few seconds). Nothing is removed or changed.
        combine=True (train): cleanlab's ranking, AUM and hard-to-learn together, per sample with the
        signals that flag it (analysis/dynamics.combined_ranking), from the training dynamics."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} is unknown: use 'valid' or 'train'.")
        if combine:
            if split != "train":
                raise ConfigError("combine=True ranks the train split (training dynamics are recorded for it): "
                                  "use errors.label_issues('train', combine=True).")
            return self._combined_issues(self.label_issues("train"))
        if split == "valid" and getattr(self, "kept_only", False):
            raise ConfigError(f"Epoch {self.epoch}'s predictions were kept compactly (two probabilities per sample), "
                              "too little for cleanlab: rank the latest epoch's (ErrorAnalysis.from_session(session)).")
        key = ("issues", split)
        if key not in self._derived:
            if split == "valid":
                table = rank_label_issues(self.labels, self.probs, self.ids, self.classes, "valid")
            else:
                if self._train_labels is None:
                    raise ConfigError("No training labels attached: pass train_labels to attach_features().")
                probs = cross_val_probabilities(self._features("train"), self._train_labels)
                table = rank_label_issues(self._train_labels, probs, np.arange(len(self._train_labels)),
                                          self.classes, "train")
            self._derived[key] = table
        return self._derived[key].copy()  # type: ignore[union-attr]

    def flag_label_issues(self, n: int | None = None) -> list[int]:
        """Flag the top validation label issues (all of cleanlab's issues, or the top n of the ranking)
        for review and CSV export; returns the ids flagged. Labels themselves are never changed."""
        table = self.label_issues("valid")
        if n is not None:
            n = integer("flag_label_issues n", n, low=1, hint="How many of the top-ranked samples to flag, or None.")
        rows = table[table["issue"]] if n is None else table.head(n)
        for r in rows.itertuples():
            self.flag(int(r.id), note=f"cleanlab rank {r.rank}: label quality {r.label_quality:.3f}, "
                                      f"model suggests {r.suggested_label}")
        return [int(i) for i in rows["id"]]

    # ---- the map ---------------------------------------------------------------------------------
    def embedding(self, method: str = "pca", seed: int = 0) -> Embedding:
        """The validation samples' pooled features in 2-D ("pca", "tsne", or "umap" if installed)."""
        seed = integer("embedding seed", seed, low=0, hint="Any whole number >= 0, e.g. 0.")
        key = ("map", method, seed)
        if key not in self._derived:
            feats = self._valid_rows(self._features("valid"), self.ids)
            coords, explained = project(feats, method, seed)
            self._derived[key] = Embedding(coords=coords, ids=self.ids.copy(), labels=self.labels.copy(),
                                           predicted=self.predicted.copy(), classes=tuple(self.classes),
                                           method=method, explained_variance=explained)
        return self._derived[key]  # type: ignore[return-value]
