"""Training dynamics per train sample: the data map, forgetting, AUM, and a combined label-issue ranking.

From the Session's per-epoch records (train/dynamics.py), over the epochs each sample was trained on:

- confidence: the mean probability of its label, variability: their standard deviation, correctness:
  the share of epochs predicted right (Dataset Cartography, Swayamdipta et al. 2020). The data map
  plots confidence over variability. Regions, by thresholds drawn on the map: hard-to-learn below a
  confidence of 1/3 (the label rarely wins: often a wrong label), easy-to-learn from 2/3 up with a
  variability under 0.2, ambiguous the rest (the model went back and forth, or stayed unsure).
- forgetting: how often a sample went from right to wrong between consecutive epochs it was trained on
  (Toneva et al. 2019); `never_learned` samples were never right, which Toneva et al. count as forgotten
  infinitely often.
- aum: the margin (its label's logit minus the largest other) averaged over epochs (Area Under the
  Margin, Pleiss et al. 2020): negative when another class mostly won; mislabelled samples sit lowest.

`combined_ranking` joins these with cleanlab's ranking (label_issues.py): each signal ranks every sample,
the ranks are averaged, and each row says which signals flag it. Nothing is removed or relabelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ConfigError

REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn")
THRESHOLDS = {"hard_below": 1 / 3, "easy_above": 2 / 3, "variable_above": 0.2}  # variability's maximum is 0.5
SIGNALS = {"cleanlab": "cleanlab", "aum": "AUM", "hard_to_learn": "hard-to-learn"}  # column suffix -> name in `flags`


def check_thresholds(hard_below: float, easy_above: float, variable_above: float) -> dict[str, float]:
    """The region thresholds as floats; ConfigError unless 0 <= hard_below <= easy_above <= 1 and 0 <= variable_above."""
    from ..validate import number

    t = {"hard_below": number("hard_below", hard_below, low=0, high=1),
         "easy_above": number("easy_above", easy_above, low=0, high=1),
         "variable_above": number("variable_above", variable_above, low=0, high=1)}
    if t["hard_below"] > t["easy_above"]:
        raise ConfigError(f"hard_below={hard_below} is above easy_above={easy_above}: the hard-to-learn region ends "
                          "where the easy-to-learn one may begin. Give hard_below <= easy_above.")
    return t


def regions(confidence: np.ndarray, variability: np.ndarray, hard_below: float, easy_above: float,
            variable_above: float) -> np.ndarray:
    """Region name per sample ("not seen" where confidence is NaN)."""
    out = np.full(len(confidence), "not seen", dtype=object)
    ok = ~np.isnan(confidence)
    c, v = confidence[ok], variability[ok]
    out[ok] = np.where(c < hard_below, REGIONS[2], np.where((c >= easy_above) & (v < variable_above), REGIONS[0],
                                                            REGIONS[1]))
    return out


def dynamics_frame(signals: dict[str, np.ndarray], labels: np.ndarray, given: np.ndarray, classes: Sequence[str],
                   hard_below: float = THRESHOLDS["hard_below"], easy_above: float = THRESHOLDS["easy_above"],
                   variable_above: float = THRESHOLDS["variable_above"]) -> pd.DataFrame:
    """One row per train sample (index: its position in the train split) from `TrainingDynamics.signals()`:
    label, given_label, epochs_seen, confidence, variability, correctness, forgetting, never_learned,
    aum, region. Samples never trained on have NaN statistics and region "not seen"."""
    p, margin, correct = signals["p_true"], signals["margin"], signals["correct"]
    seen = correct >= 0
    n_seen = seen.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(n_seen > 0, np.nansum(p, axis=0) / n_seen, np.nan)
        variability = np.sqrt(np.where(n_seen > 0, np.nansum((p - confidence) ** 2, axis=0) / n_seen, np.nan))
        correctness = np.where(n_seen > 0, (correct == 1).sum(axis=0) / n_seen, np.nan)
        aum = np.where(n_seen > 0, np.nansum(margin, axis=0) / n_seen, np.nan)
    thresholds = check_thresholds(hard_below, easy_above, variable_above)
    ok = n_seen > 0
    names = np.asarray(classes, dtype=object)
    frame = pd.DataFrame({
        "label": names[labels], "given_label": names[given], "epochs_seen": n_seen, "confidence": confidence,
        "variability": variability, "correctness": correctness, "forgetting": forgetting_events(correct),
        "never_learned": ok & ~(correct == 1).any(axis=0), "aum": aum,
        "region": regions(confidence, variability, **thresholds),
    }, index=pd.RangeIndex(len(labels), name="id"))
    frame.attrs["epochs"] = [int(e) for e in signals["epochs"]]
    frame.attrs["thresholds"] = thresholds
    return frame


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Per sample, right-to-wrong transitions between consecutive epochs it was seen in (correct:
    epochs x samples of 1, 0, -1 = not seen; Toneva et al. 2019)."""
    last = np.full(correct.shape[1], -1, dtype=np.int8)
    count = np.zeros(correct.shape[1], dtype=np.int64)
    for row in correct:
        seen = row >= 0
        count += (last == 1) & (row == 0)
        last = np.where(seen, row, last)
    return count


def combined_ranking(frame: pd.DataFrame, cleanlab: pd.DataFrame | None) -> pd.DataFrame:
    """Every trained sample ranked by how likely its label is wrong, all signals together: rank, id,
    split, label, given_label, score, agree, flags, then each signal's values and ranks.

    Each signal orders the samples, most suspicious first: cleanlab's label quality (lowest first),
    AUM (lowest first), and confidence among the hard-to-learn ordering (lowest confidence first). A
    sample's `score` is its mean rank as a fraction (0 = first for every signal); `flags` names the
    signals that flag it outright: cleanlab's issue, a negative AUM, the hard-to-learn region; `agree`
    counts them. cleanlab=None ranks on the training dynamics alone."""
    rows = frame[frame["epochs_seen"] > 0].copy()
    if rows.empty:
        raise ConfigError("No train sample has training dynamics yet: train an epoch first.")
    ranks = {"aum": rows["aum"].rank(method="average"), "hard_to_learn": rows["confidence"].rank(method="average")}
    flagged = {"aum": rows["aum"] < 0, "hard_to_learn": rows["region"] == REGIONS[2]}
    if cleanlab is not None:
        quality = cleanlab.set_index("id")
        rows["label_quality"] = quality["label_quality"].reindex(rows.index).to_numpy()
        rows["cleanlab_issue"] = quality["issue"].reindex(rows.index).fillna(False).astype(bool).to_numpy()
        ranks["cleanlab"] = rows["label_quality"].rank(method="average")
        flagged["cleanlab"] = rows["cleanlab_issue"]
    n = len(rows)
    for name, r in ranks.items():
        rows[f"rank_{name}"] = r.astype(np.int64) if (r % 1 == 0).all() else r
    rows["score"] = sum(ranks.values()) / (len(ranks) * n)
    used = [s for s in SIGNALS if s in flagged]
    rows["flags"] = [", ".join(SIGNALS[s] for s in used if flagged[s].loc[i]) for i in rows.index]
    rows["agree"] = sum(flagged[s].astype(int) for s in used)
    rows = rows.sort_values(["score", "agree"], ascending=[True, False], kind="stable").reset_index()
    rows.insert(0, "rank", np.arange(1, n + 1))
    rows.insert(2, "split", "train")
    first = ["rank", "id", "split", "label", "given_label", "score", "agree", "flags"]
    return rows[first + [c for c in rows.columns if c not in first]]


def recall_at(ranking: pd.DataFrame | Sequence[int], truth: Sequence[int], fraction: float = 0.1, n: int | None = None) -> float:
    """Share of the `truth` ids among the top `fraction` of `n` samples of a ranking: ids in order, or a
    frame in ranking order (its "id" column, else its index)."""
    if isinstance(ranking, pd.DataFrame):
        ids = list(ranking["id"] if "id" in ranking.columns else ranking.index)
    else:
        ids = list(ranking)
    top = set(ids[: int(round(fraction * (n if n is not None else len(ids))))])
    truth = set(int(i) for i in truth)
    return len(top & truth) / max(len(truth), 1)


@dataclass(frozen=True)
class DynamicsMap:
    """The data map (Dataset Cartography) as data: `frame` holds confidence, variability, correctness
    and region per train sample; `plot()` (or showing it in a notebook) draws it with workbench.plots."""

    frame: pd.DataFrame = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)
    epochs: tuple[int, ...] = ()
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))

    def counts(self) -> dict[str, int]:
        """Samples per region."""
        return {r: int((self.frame["region"] == r).sum()) for r in (*REGIONS, "not seen")}

    def region(self, name: str) -> np.ndarray:
        """Ids of the train samples in region `name`."""
        if name not in (*REGIONS, "not seen"):
            raise ConfigError(f"region={name!r} is unknown; use one of {', '.join(REGIONS)}.")
        return self.frame.index[self.frame["region"] == name].to_numpy()

    def inside(self, polygon: Sequence[Sequence[float]]) -> np.ndarray:
        """Ids of the samples inside a polygon in (variability, confidence) coordinates (the lasso)."""
        from .embedding import points_inside

        rows = self.frame[self.frame["epochs_seen"] > 0]
        coords = rows[["variability", "confidence"]].to_numpy(dtype=np.float64)
        return rows.index.to_numpy()[points_inside(coords, polygon)]

    def plot(self, highlight: Sequence[int] | None = None, size: tuple[float, float] = (6.5, 4.8)):
        """The data map figure (workbench.plots.data_map_figure); `highlight` ids are ringed."""
        from ..plots.dynamics import data_map_figure  # drawn by the plots package, only when asked for

        return data_map_figure(self, highlight=highlight, size=size)

    def _repr_png_(self) -> bytes:
        from ..plots import png

        return png(self.plot())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items() if v)
        return f"DynamicsMap({len(self.frame)} train samples over epochs {list(self.epochs)}: {counts})"
