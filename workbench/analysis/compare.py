"""Comparing runs: curves, the settings that differ, per-class scores, and the samples they disagree on.

`compare(session_a, session_b, ...)` (sessions, checkpoint folders, or both) builds a plain data
object, like `ErrorAnalysis`: numbers and DataFrames only. `workbench.plots` draws it (the
`compare_*_figure` functions) and the Compare view shows it; nothing here imports a UI.

Runs are named by what differs: a run whose optimizer alone differs is "optimizer=sgd" in legends.
Samples are matched by their position in the valid split, so two runs can only be compared sample by
sample when they were evaluated on the same valid split (same ids, same labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, WorkbenchError
from ..validate import position
from .errors import ErrorAnalysis

MAX_LABEL_SETTINGS = 3  # settings shown in a run's label; the table has them all
UNUSED = "(unused)"  # a setting another choice of that run leaves idle, in the settings table


@dataclass(frozen=True)
class Run:
    """What a comparison needs from one run: a live Session's, or a checkpoint's."""

    name: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    history: list  # EpochResult, oldest first
    predictions: Any  # Predictions | None: the latest validation predictions
    classes: list[str]
    backbone: str
    data_name: str  # with its split sizes: "digits (300 train / 100 valid)"
    freeze: str  # the freeze plan in words ("head", "last(2)", ...)
    data: Any = field(default=None, repr=False)  # Data, to show samples (None: not available)
    session: Any = field(default=None, repr=False)  # the live Session, when there is one

    @classmethod
    def from_session(cls, session, name: str | None = None) -> Run:
        return cls(name=name or session.name, config=session.config.to_dict(), history=list(session.history),
                   predictions=session.predictions, classes=list(session.data.classes), backbone=session.model.name,
                   data_name=_data_words(session.data.name, len(session.data.train), len(session.data.valid)), freeze=_freeze_words(session.freeze_spec), data=session.data,
                   session=session)  # fmt: skip

    @classmethod
    def from_checkpoint(cls, path, data=None, name: str | None = None) -> Run:
        """A run from a folder written by `session.save()`; `data` (optional for bundled datasets)
        shows its samples."""
        from ..train.checkpoint import load, reload_data
        from ..train.records import EpochResult
        from ..train.state import freeze_spec_from_json, predictions_from_dict

        sd = load(path)
        meta = sd["data"]
        if data is None:
            data = _bundled_data(sd.get("recording") or [], meta, reload_data)
        if data is not None and list(data.classes) != list(meta["classes"]):
            raise ConfigError(f"The data passed for {str(path)!r} has classes {list(data.classes)[:5]}..., the "
                              f"checkpoint {list(meta['classes'])[:5]}...: pass the data it was trained on.")
        preds = predictions_from_dict(sd["predictions"], int(meta["valid"]), len(meta["classes"]), "predictions")
        return cls(name=name or Path(path).name, config=dict(sd["config"]),
                   history=[EpochResult.from_dict(d) for d in sd["history"]], predictions=preds,
                   classes=list(meta["classes"]), backbone=sd["backbone"]["name"],
                   data_name=_data_words(str(meta["name"]), meta["train"], meta["valid"]),
                   freeze=_freeze_words(freeze_spec_from_json(sd["freeze"])), data=data)  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """Every setting as one flat dict (nested ones dotted: "schedule.name", "augment.flip"),
        with the backbone, the data and the freeze plan first."""
        flat: dict[str, Any] = {"backbone": self.backbone, "data": self.data_name, "freeze": self.freeze}
        for key, value in self.config.items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat


# The settings each schedule reads (train/optim.py Schedule._main; "auto" may resolve to one-cycle).
SCHEDULE_READS = {
    "constant": (), "step": ("step_epochs", "gamma"), "exponential": ("gamma",), "cosine": ("epochs",),
    "onecycle": ("epochs", "pct_start", "div_factor", "final_div_factor"),
    "auto": ("epochs", "pct_start", "div_factor", "final_div_factor"),
}
SCHEDULE_FIELDS = ("step_epochs", "gamma", "pct_start", "div_factor", "final_div_factor")


def idle_settings(flat: dict[str, Any]) -> set[str]:
    """The settings in `flat` (Run.settings' form) that the run's other choices leave unused (a
    constant schedule's `step_epochs`, Adam's `momentum`): a comparison never lists a difference
    in them, which changed nothing."""
    name = flat.get("schedule.name")
    reads = SCHEDULE_READS.get(name, SCHEDULE_FIELDS + ("epochs",))  # unknown: keep them all
    idle = {f"schedule.{f}" for f in SCHEDULE_FIELDS if f not in reads}
    if "epochs" not in reads:
        idle.add("epochs")
    if not flat.get("schedule.warmup_epochs"):
        idle.add("schedule.warmup_start")
    optimizer = flat.get("optimizer")
    if optimizer not in ("sgd", "rmsprop", None):
        idle.add("momentum")
    if optimizer not in ("sgd", None):
        idle.add("nesterov")
    if flat.get("loss", "focal") != "focal":
        idle.add("focal_gamma")
    return idle & set(flat)


def _bundled_data(recording: list, meta: dict[str, Any], reload_data) -> Any:
    """The data of a checkpoint, when it is a bundled dataset (or a subset of one), to show its
    samples; None otherwise (curves and tables need no data)."""
    from ..data import load_data

    recipe = (recording[0].get("data") if recording else None) or []
    try:
        if recipe and recipe[0].get("call") == "wb.load_data" and all(s.get("call") == "subset" for s in recipe[1:]):
            data = load_data(*recipe[0].get("args", []), **recipe[0].get("kwargs", {}))
            for step in recipe[1:]:
                data = data.subset(**step.get("kwargs", {}))
        else:
            data = reload_data(meta)
    except (WorkbenchError, TypeError):  # not bundled, or not as it was: curves and tables still work
        return None
    same = (len(data.train), len(data.valid), list(data.classes)) == (meta["train"], meta["valid"], list(meta["classes"]))
    return data if same else None


def _data_words(name: str, train: int, valid: int) -> str:
    return f"{name} ({train} train / {valid} valid)"


def _freeze_words(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, (list, tuple)):
        return "[" + ", ".join(map(str, spec)) + "]"
    return str(spec)


def show(value: Any) -> str:
    """A setting's value as a person writes it: 0.001, None, sgd, [1.0, 2.0]."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


AUTO_WHEN_NONE = {"lr"}  # None there means "workbench picks it" (the automatic LR), not "none"


def _shown(values: list[Any], key: str = "") -> list[str]:
    """One row of the settings table: short forms, or exact ones where the short forms would hide
    the difference (0.1 and 0.09999999999999995 both read 0.1); lr=None reads "auto"."""
    if key in AUTO_WHEN_NONE:
        values = ["auto" if v is None else v for v in values]
    short = [show(v) for v in values]
    if len(set(short)) < len({repr(v) for v in values}):
        return [repr(v) if isinstance(v, float) else show(v) for v in values]
    return short


class Comparison:
    """Two or more runs side by side. Build it with `wb.compare(...)`.

    runs: the runs, in the order given; names: one unique name per run; labels: each run named by
    the settings that differ ("optimizer=sgd, lr=0.01"); settings: the table of those settings.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        if len(runs) < 2:
            raise ConfigError(f"compare needs two or more runs; got {len(runs)}. Pass e.g. wb.compare(session_a, session_b).")
        self.runs = list(runs)
        self.names = unique_names([r.name for r in self.runs])
        flats = [r.settings() for r in self.runs]
        idle = [idle_settings(f) for f in flats]
        keys = list(dict.fromkeys(k for f in flats for k in f))
        missing = object()
        # a setting differs when the runs that use it have different values (idle_settings)
        self.differing = [k for k in keys
                          if len({repr(f.get(k, missing)) for f, i in zip(flats, idle) if k not in i}) > 1]
        rows = {k: _shown([f.get(k, "-") for f in flats], k) for k in self.differing}
        for k in self.differing:
            rows[k] = [UNUSED if k in i else v for v, i in zip(rows[k], idle)]
        self.settings = pd.DataFrame({n: [rows[k][j] for k in self.differing] for j, n in enumerate(self.names)},
                                     index=pd.Index(self.differing, name="setting"))  # fmt: skip
        self.labels = self._labels(flats, idle)
        self._analyses: list[ErrorAnalysis | None] | None = None

    def _labels(self, flats: list[dict[str, Any]], idle: list[set[str]]) -> list[str]:
        shown = self.differing[:MAX_LABEL_SETTINGS]
        more = len(self.differing) > MAX_LABEL_SETTINGS
        rows = {k: _shown([f.get(k, "-") for f in flats], k) for k in shown}
        labels = [", ".join(f"{k}={rows[k][j]}" for k in shown if k not in idle[j]) + (", ..." if more else "")
                  for j in range(len(flats))]
        if not shown or len(set(labels)) < len(labels):  # nothing differs in the settings: the names say it
            return list(self.names)
        return labels

    # ---- the numbers --------------------------------------------------------------------------------
    def diff(self, a: int | str = 0, b: int | str = 1) -> dict[str, tuple[Any, Any]]:
        """The settings that differ between two runs: {setting: (value in a, value in b)}."""
        fa, fb = self.runs[self.index(a)].settings(), self.runs[self.index(b)].settings()
        idle = idle_settings(fa) | idle_settings(fb)
        return {k: (fa.get(k), fb.get(k)) for k in dict.fromkeys([*fa, *fb])
                if fa.get(k) != fb.get(k) and k not in idle}

    @property
    def history(self) -> pd.DataFrame:
        """Every run's history, one row per (run, epoch): losses, accuracies, macro-F1, time."""
        frames = []
        for name, label, run in zip(self.names, self.labels, self.runs):
            from ..train.records import history_frame

            h = history_frame(run.history)
            if len(h):
                frames.append(h.reset_index().assign(run=name, label=label))
        if not frames:
            return pd.DataFrame(columns=["run", "label", "epoch"])
        out = pd.concat(frames, ignore_index=True)
        return out[["run", "label", *[c for c in out.columns if c not in ("run", "label")]]]

    def summary(self) -> pd.DataFrame:
        """One row per run: epochs, last valid loss / accuracy / macro-F1, best valid accuracy, seconds."""
        rows = []
        for name, label, run in zip(self.names, self.labels, self.runs):
            h = run.history
            valid = [r.valid_accuracy for r in h if r.valid_accuracy is not None]
            last = h[-1] if h else None
            rows.append({"run": name, "label": label, "epochs": len(h),
                         "valid_loss": getattr(last, "valid_loss", None), "valid_accuracy": getattr(last, "valid_accuracy", None),
                         "valid_macro_f1": getattr(last, "valid_macro_f1", None),
                         "best_valid_accuracy": max(valid) if valid else None,
                         "seconds": float(sum(r.epoch_time_s for r in h))})  # fmt: skip
        return pd.DataFrame(rows).set_index("run")

    @property
    def analyses(self) -> list[ErrorAnalysis | None]:
        """One ErrorAnalysis per run, from its latest predictions (None for a run not evaluated yet)."""
        if self._analyses is None:
            out: list[ErrorAnalysis | None] = []
            for run in self.runs:
                p = run.predictions
                if p is None:
                    out.append(None)
                    continue
                a = ErrorAnalysis.from_predictions(p.labels, p.logits, run.classes, ids=p.ids, losses=p.losses,
                                                   epoch=p.epoch)  # fmt: skip
                if run.data is not None:
                    a.sample_ids = [run.data.sample_id(int(i), "valid") for i in p.ids]
                out.append(a)
            self._analyses = out
        return self._analyses

    def analysis(self, run: int | str) -> ErrorAnalysis:
        """The ErrorAnalysis of one run (ConfigError when it has no predictions yet)."""
        i = self.index(run)
        a = self.analyses[i]
        if a is None:
            raise ConfigError(f"Run {self.names[i]!r} has no predictions yet: train an epoch first (session.step()).")
        return a

    def per_class(self, metric: str = "f1") -> pd.DataFrame:
        """`metric` ("f1", "precision", "recall") per class, one column per run, then the change of
        every later run against the first ("change" for two runs)."""
        if metric not in ("f1", "precision", "recall", "support"):
            raise ConfigError(f"metric={metric!r} is unknown: use 'f1', 'precision' or 'recall'.")
        self._check_classes()
        table = pd.DataFrame({n: self.analysis(i).per_class()[metric] for i, n in enumerate(self.names)})
        first = self.names[0]
        for n in self.names[1:]:
            table["change" if len(self.names) == 2 else f"change {n}"] = table[n] - table[first]
        return table

    def confusion_matrices(self) -> list[np.ndarray]:
        """Each run's confusion matrix (rows true, columns predicted), in run order."""
        self._check_classes()
        return [self.analysis(i).confusion_matrix for i in range(len(self.runs))]

    def right_wrong(self, a: int | str = 0, b: int | str = 1) -> np.ndarray:
        """Ids (positions in the valid split) of the samples run `a` gets right and run `b` wrong,
        highest loss under `b` first."""
        ea, eb = self._paired(a, b)
        right_a = {int(i) for i, ok in zip(ea.ids, ea.predicted == ea.labels) if ok}
        rows = [k for k, (i, ok) in enumerate(zip(eb.ids, eb.predicted == eb.labels)) if not ok and int(i) in right_a]
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(-eb.losses[rows], kind="stable") if len(rows) else rows
        return eb.ids[rows[order]] if len(rows) else np.zeros(0, dtype=np.int64)

    def agreement(self, a: int | str = 0, b: int | str = 1) -> pd.Series:
        """How many samples both runs get right, only a, only b, neither."""
        ea, eb = self._paired(a, b)
        ok_a = dict(zip(map(int, ea.ids), ea.predicted == ea.labels))
        ok_b = np.array([ok_a[int(i)] for i in eb.ids]), eb.predicted == eb.labels
        na, nb = self.names[self.index(a)], self.names[self.index(b)]
        counts = {"both right": int((ok_b[0] & ok_b[1]).sum()), f"only {na}": int((ok_b[0] & ~ok_b[1]).sum()),
                  f"only {nb}": int((~ok_b[0] & ok_b[1]).sum()), "both wrong": int((~ok_b[0] & ~ok_b[1]).sum())}
        return pd.Series(counts, name="samples")

    # ---- helpers ------------------------------------------------------------------------------------
    def index(self, run: int | str) -> int:
        """A run's position from its position or its name."""
        if isinstance(run, str):
            if run not in self.names:
                raise ConfigError(f"No run named {run!r} in this comparison; runs: {', '.join(self.names)}.")
            return self.names.index(run)
        return position("run", run, len(self.runs), hint=f"Name a run ({', '.join(map(repr, self.names))}) or give "
                        f"its position; this comparison has {len(self.runs)} runs.")

    def data(self, run: int | str = 0):
        """The Data to show a run's samples with (None when it is not available, e.g. a checkpoint
        of data that is not bundled and was not passed)."""
        i = self.index(run)
        return self.runs[i].data or next((r.data for r in self.runs if r.data is not None), None)

    def _check_classes(self) -> None:
        first = self.runs[0].classes
        other = next((r for r in self.runs[1:] if r.classes != first), None)
        if other is not None:
            raise ConfigError(f"Runs {self.runs[0].name!r} and {other.name!r} have different classes, so their per-class "
                              "scores and confusion matrices cannot be put side by side; compare runs on the same data.")

    def _paired(self, a: int | str, b: int | str) -> tuple[ErrorAnalysis, ErrorAnalysis]:
        """Both runs' analyses, checked to cover the same valid samples with the same labels."""
        self._check_classes()
        ea, eb = self.analysis(a), self.analysis(b)
        la = dict(zip(map(int, ea.ids), map(int, ea.labels)))
        lb = dict(zip(map(int, eb.ids), map(int, eb.labels)))
        if la != lb:
            raise ConfigError(f"Runs {self.names[self.index(a)]!r} and {self.names[self.index(b)]!r} were evaluated on "
                              "different valid samples, so they cannot be compared sample by sample; compare runs "
                              "on the same data (the same subset and seed).")  # fmt: skip
        return ea, eb

    def _repr_html_(self) -> str:
        """The settings that differ and the last epoch of each run (pandas escapes every cell)."""
        settings = (self.settings.to_html(escape=True, index_names=False) if len(self.settings)
                    else "<p>The runs share every setting.</p>")
        summary = self.summary().to_html(escape=True, index_names=False, float_format=lambda x: f"{x:.4g}", na_rep="-")
        return f"<b>Settings that differ</b>{settings}<b>Last epoch</b>{summary}"

    def __repr__(self) -> str:
        return f"Comparison({', '.join(f'{n!r} ({lab})' if lab != n else repr(n) for n, lab in zip(self.names, self.labels))})"


def unique_names(names: list[str]) -> list[str]:
    """Names made unique in order: the second "run" becomes "run #2"."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def _run(item: Any, data=None) -> Run:
    if isinstance(item, Run):
        return item
    if isinstance(item, (str, Path)):
        return Run.from_checkpoint(item, data=data)
    if hasattr(item, "history") and hasattr(item, "config") and hasattr(item, "data"):
        return Run.from_session(item)
    raise ConfigError(f"compare takes Sessions or checkpoint folders (from session.save()); got {type(item).__name__}.")


def compare(*runs: Any, names: Sequence[str] | None = None, data=None) -> Comparison:
    """Compare two or more runs: `wb.compare(session_a, session_b)`, `wb.compare("a.wb", "b.wb")`
    or a list of them. names: how to call the runs (default: each Session's name, a checkpoint's
    folder name). data: the data of checkpoints whose data is not bundled, to show their samples."""
    if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
        runs = tuple(runs[0])
    built = [_run(r, data) for r in runs]
    if names is not None:
        names = list(names)
        if len(names) != len(built) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"names must give one non-empty string per run ({len(built)}); got {names!r}.")
        built = [replace(r, name=n) for r, n in zip(built, names)]
    return Comparison(built)
