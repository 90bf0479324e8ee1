"""What ErrorAnalysis says from the session's training dynamics: `errors.dynamics()`, `errors.data_map()`,
the combined train label-issue ranking, and any kept epoch's validation predictions (the scrubber).

A mixin, so these sit beside the confusion matrix while their code lives here (like feature_views.py).
The records come from `session.dynamics` (train/dynamics.py), read up to the epoch the analysis shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .dynamics import THRESHOLDS, DynamicsMap, combined_ranking, dynamics_frame


class DynamicsViews:
    """Training dynamics for an ErrorAnalysis (which supplies classes and the epoch it shows)."""

    classes: list[str]
    epoch: int | None

    def _init_dynamics_views(self) -> None:
        self._dynamics = None  # a TrainingDynamics
        self._labels_now: np.ndarray | None = None  # the train labels training uses (relabels in effect)
        self._labels_given: np.ndarray | None = None  # the data's train labels
        self.kept_only = False  # True: built from a kept epoch's compact record (see from_kept_epoch)

    def attach_dynamics(self, dynamics, train_labels: Sequence[int], given_labels: Sequence[int] | None = None) -> None:
        """Read training dynamics from `dynamics` (a session's `session.dynamics`) with these train labels."""
        self._dynamics = dynamics
        self._labels_now = np.asarray(train_labels, dtype=np.int64)
        self._labels_given = self._labels_now if given_labels is None else np.asarray(given_labels, dtype=np.int64)

    def _need_dynamics(self):
        if self._dynamics is None:
            raise ConfigError("This analysis has no training dynamics: build it with ErrorAnalysis.from_session(session) "
                              "(the session records them as it trains), or call errors.attach_dynamics(...).")
        if not any(self.epoch is None or e <= self.epoch for e in self._dynamics.epochs):
            raise ConfigError("No epoch has training dynamics yet: train an epoch first (session.step()); "
                              "recording may also be off (session.dynamics.enabled).")
        return self._dynamics

    def dynamics(self, hard_below: float = THRESHOLDS["hard_below"], easy_above: float = THRESHOLDS["easy_above"],
                 variable_above: float = THRESHOLDS["variable_above"]) -> pd.DataFrame:
        """Per train sample (index = its train position), over the epochs up to this analysis's:
        label, given_label, epochs_seen, confidence, variability, correctness, forgetting,
        never_learned, aum, region: hard-to-learn below `hard_below` confidence, easy-to-learn from
        `easy_above` with variability under `variable_above`, ambiguous otherwise (analysis/dynamics.py)."""
        d = self._need_dynamics()
        return dynamics_frame(d.signals(through=self.epoch), self._labels_now, self._labels_given, self.classes,
                              hard_below, easy_above, variable_above)

    def data_map(self, hard_below: float = THRESHOLDS["hard_below"], easy_above: float = THRESHOLDS["easy_above"],
                 variable_above: float = THRESHOLDS["variable_above"]) -> DynamicsMap:
        """The data map (Dataset Cartography): confidence over variability per train sample, in regions.
        Shown in a notebook as its figure; `.plot(highlight=ids)` rings samples, `.frame` holds the numbers."""
        frame = self.dynamics(hard_below, easy_above, variable_above)
        return DynamicsMap(frame=frame, classes=tuple(self.classes), epochs=tuple(frame.attrs["epochs"]),
                           thresholds=dict(frame.attrs["thresholds"]))

    def _combined_issues(self, cleanlab: pd.DataFrame | None) -> pd.DataFrame:
        """The train ranking of analysis/dynamics.combined_ranking, with the sample's class names."""
        return combined_ranking(self.dynamics(), cleanlab)


def from_kept_epoch(cls, session, epoch: int):
    """An ErrorAnalysis of epoch `epoch`'s validation predictions as the session kept them
    (predicted class, its probability, the true class's probability, the loss).

    Only those two probabilities per sample were kept: the rest of each row is spread evenly over the
    other classes (kept below the prediction's, so the argmax is the recorded prediction). The
    confusion matrix, galleries, top losses and per-class scores are exact; label_issues('valid') is
    refused (`kept_only`), and the feature views refuse an epoch that is not the session's latest."""
    kept = session.dynamics.valid_epoch(epoch)
    y = np.asarray(session.data.valid.labels, dtype=np.int64)
    k, n = session.data.num_classes, len(y)
    pred = kept["predicted"]
    rows = np.arange(n)
    distinct = pred != y
    rest = 1.0 - kept["p_pred"] - np.where(distinct, kept["p_true"], 0.0)
    others = k - 1 - distinct.astype(np.int64)
    spread = np.divide(np.clip(rest, 0, None), others, out=np.zeros(n), where=others > 0)
    spread = np.minimum(spread, kept["p_pred"] * 0.999)
    probs = np.repeat(spread[:, None], k, axis=1)
    probs[rows, y] = kept["p_true"]
    probs[rows, pred] = kept["p_pred"]
    analysis = cls(y, probs, kept["loss"].astype(np.float64), rows.astype(np.int64), session.data.classes, int(epoch),
                   predicted=pred)
    analysis.kept_only = True
    analysis.sample_ids = list(session.data.valid.ids)  # rows are the valid positions in order
    analysis.attach_session(session)
    analysis.attach_dynamics(session.dynamics, session.train_labels, session.data.train.labels)
    return analysis


def kept_before(cls, session, epoch: int):
    """An ErrorAnalysis of the last kept epoch before `epoch` (what flips compare with), or None."""
    dynamics = getattr(session, "dynamics", None)
    earlier = [e for e in dynamics.valid_epochs if e < int(epoch)] if dynamics is not None else []
    return from_kept_epoch(cls, session, earlier[-1]) if earlier else None
