"""Which backbone to start from: rank candidates by an exact head on their frozen features.

`rank_backbones(data, candidates)` builds each candidate, computes its frozen features once (the
Session's fast path and feature cache, docs/ARCHITECTURE.md rule 6), fits the head exactly
(`session.fit_head()`: logistic regression, the best a frozen backbone allows) and scores the
features with LogME (analysis/logme.py), a transferability estimate that needs no head at all.
The result ranks them by validation accuracy, with time and parameters per candidate, and hands
back any candidate's Session (`ranking.adopt(...)`), its features cached and its head fitted.

Candidates are backbone names, `Candidate(...)` (a name with its input size, token length or
random init), dicts of the same fields, or built `Model`s. A candidate that cannot be built (its
weights need a download) gets its error in the table and the others are still ranked.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, WorkbenchError

# The default candidates need no download: the bundled pretrained backbone of the data's kind at
# several input sizes, and random-init networks as the "no pretraining" baseline. Only one
# pretrained image backbone (EfficientNet-Lite0) and one text backbone (all-MiniLM-L6-v2) ship
# offline, so their variants (what the backbone sees: pixels per digit, tokens per text) are the
# pretrained candidates; online, pass real alternatives ("torchvision:resnet50", "hf:...").
IMAGE_SIZES = (32, 48, 64, 96)
TEXT_LENGTHS = (8, 16, 32, 64)


@dataclass(frozen=True)
class Candidate:
    """One backbone to try: a load_backbone name with its input size / token length and weights."""

    backbone: str
    pretrained: bool = True
    image_size: int | None = None
    max_length: int | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        parts = [self.backbone]
        if self.image_size is not None:
            parts.append(f"{self.image_size} px")
        if self.max_length is not None:
            parts.append(f"{self.max_length} tokens")
        if not self.pretrained:
            parts.append("random init")
        return " · ".join(parts)

    def build(self, num_classes: int, seed: int):
        from ..models import load_backbone

        opts = {k: v for k, v in (("image_size", self.image_size), ("max_length", self.max_length)) if v is not None}
        return load_backbone(self.backbone, num_classes, pretrained=self.pretrained, seed=seed, **opts)


def default_candidates(data) -> list[Candidate]:
    """Six candidates for `data` that need no download (see IMAGE_SIZES / TEXT_LENGTHS)."""
    if data.kind == "image":
        return [*(Candidate("efficientnet_lite0", image_size=s) for s in IMAGE_SIZES),
                Candidate("efficientnet_lite0", pretrained=False, image_size=64),
                Candidate("timm:mobilenetv3_small_100", pretrained=False, image_size=64)]
    return [*(Candidate("minilm-l6", max_length=n) for n in TEXT_LENGTHS),
            Candidate("minilm-l6", max_length=128),
            Candidate("minilm-l6", pretrained=False, max_length=64)]


@dataclass(frozen=True)
class ChooseProgress:
    """What rank_backbones is doing: candidate `index` (0-based) of `total`, its `stage`, and
    `done` of `of` steps within the stage (batches of features; 0/0 when it has none)."""

    index: int
    total: int
    name: str
    stage: str  # "building" | "features (train)" | "features (valid)" | "fitting the head" | "LogME" | "done" | "failed"
    done: int = 0
    of: int = 0
    elapsed_s: float = 0.0
    result: Any = None  # the CandidateResult, at stage "done" or "failed"


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's measurements (error set, and the numbers NaN, when it could not be built)."""

    name: str
    candidate: Any
    valid_accuracy: float = float("nan")
    valid_macro_f1: float = float("nan")
    train_accuracy: float = float("nan")
    logme: float = float("nan")
    C: float = float("nan")
    backbone_params: int = 0
    head_params: int = 0
    feature_dim: int = 0
    seconds: float = 0.0  # build + features + head fit + LogME
    feature_seconds: float = 0.0
    fit_seconds: float = 0.0
    weights: str = ""
    error: str | None = None
    session: Any = field(default=None, repr=False, compare=False)


COLUMNS = ("rank", "candidate", "valid_accuracy", "logme", "logme_rank", "train_accuracy", "C", "backbone_params",
           "feature_dim", "seconds", "feature_seconds", "fit_seconds", "weights", "error")


class BackboneRanking:
    """Candidates ranked by the validation accuracy of an exact head on their frozen features.

    `frame` is the table (a DataFrame); `adopt(name or rank)` returns that candidate's Session."""

    def __init__(self, data, results: Sequence[CandidateResult], C: Any) -> None:
        self.data, self.C = data, C
        ok = sorted((r for r in results if r.error is None), key=lambda r: -r.valid_accuracy)
        self.results: list[CandidateResult] = ok + [r for r in results if r.error is not None]

    @property
    def best(self) -> CandidateResult:
        if not self.results or self.results[0].error is not None:
            raise ConfigError("No candidate could be measured; see the error column of ranking.frame.")
        return self.results[0]

    @property
    def frame(self) -> pd.DataFrame:
        """One row per candidate, best first: accuracy, LogME (and its rank), time, parameters."""
        logme_order = {r.name: i + 1 for i, r in enumerate(sorted(
            (r for r in self.results if r.error is None), key=lambda r: -r.logme))}
        rows = [{"rank": i + 1 if r.error is None else None, "candidate": r.name, "valid_accuracy": r.valid_accuracy,
                 "logme": r.logme, "logme_rank": logme_order.get(r.name), "train_accuracy": r.train_accuracy, "C": r.C,
                 "backbone_params": r.backbone_params, "feature_dim": r.feature_dim, "seconds": r.seconds,
                 "feature_seconds": r.feature_seconds, "fit_seconds": r.fit_seconds, "weights": r.weights,
                 "error": r.error} for i, r in enumerate(self.results)]
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def spearman(self) -> float:
        """Rank correlation of LogME with the exact head's validation accuracy (NaN under 3 candidates)."""
        ok = [r for r in self.results if r.error is None]
        if len(ok) < 3:
            return float("nan")
        from scipy.stats import spearmanr

        return float(spearmanr([r.valid_accuracy for r in ok], [r.logme for r in ok]).statistic)

    def result(self, which: str | int) -> CandidateResult:
        """A candidate's row by name, or by rank (1 = best)."""
        if isinstance(which, bool) or not isinstance(which, (str, int)):
            raise ConfigError(f"Pick a candidate by name or by rank (1 = best); got {which!r}.")
        if isinstance(which, int):
            if not 1 <= which <= len(self.results):
                raise ConfigError(f"rank {which} is out of range: the ranking has {len(self.results)} candidate(s) (1 = best).")
            return self.results[which - 1]
        for r in self.results:
            if r.name == which:
                return r
        from ..errors import suggest

        raise ConfigError(f"No candidate named {which!r}.{suggest(which, [r.name for r in self.results])} "
                          f"Candidates: {', '.join(r.name for r in self.results)}.")

    def adopt(self, which: str | int = 1):
        """The Session of a candidate (by name, or rank with 1 = best): its head already fitted
        exactly and its features cached, ready to train on (e.g. session.freeze(wb.last(2)))."""
        r = self.result(which)
        if r.error is not None or r.session is None:
            raise ConfigError(f"{r.name!r} could not be measured ({r.error}); adopt another candidate.")
        return r.session

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        cols = ["rank", "candidate", "valid_accuracy", "logme", "backbone_params", "seconds", "error"]
        return f"BackboneRanking on {self.data.name}:\n" + self.frame[cols].to_string(index=False)

    def _repr_html_(self) -> str:
        f = self.frame
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ("rank", "candidate", "valid accuracy", "LogME",
                                                                "LogME rank", "backbone params", "seconds", "weights / error"))
        body = []
        for _, r in f.iterrows():
            num = lambda v, fmt: "–" if v is None or v != v else format(v, fmt)  # noqa: E731
            cells = [num(r["rank"], ".0f"), r["candidate"], num(r["valid_accuracy"], ".3f"), num(r["logme"], ".3f"),
                     num(r["logme_rank"], ".0f"), f"{int(r['backbone_params']):,}", f"{r['seconds']:.1f}",
                     r["error"] or r["weights"]]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        return (f"<div><b>Backbones ranked on {html.escape(self.data.name)}</b> (exact head on frozen features)"
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def as_candidates(candidates: Any, data) -> list[Any]:
    """Candidates from names, dicts, Candidate or Model objects; checked before anything is built."""
    from ..models import Model

    if candidates is None:
        return list(default_candidates(data))
    if isinstance(candidates, (str, Candidate, Model, dict)) or not isinstance(candidates, Sequence):
        raise ConfigError("candidates must be a list, e.g. ['efficientnet_lite0', wb.Candidate('efficientnet_lite0', "
                          f"image_size=96)]; got {type(candidates).__name__}.")
    if not candidates:
        raise ConfigError("candidates is empty: give at least one backbone name (or None for the default six).")
    allowed = {f.name for f in fields(Candidate)}
    out: list[Any] = []
    for c in candidates:
        if isinstance(c, str):
            c = Candidate(c)
        elif isinstance(c, dict):
            unknown = sorted(set(c) - allowed)
            if unknown or "backbone" not in c:
                raise ConfigError(f"candidate {c!r}: " + (f"unknown field(s) {unknown}; " if unknown else "no 'backbone'; ")
                                  + f"use the fields {sorted(allowed)}.")
            c = Candidate(**c)
        if isinstance(c, Model):
            if c.num_classes != data.num_classes or c.kind != data.kind:
                raise ConfigError(f"candidate model {c.name!r} is a {c.kind} model for {c.num_classes} classes; the data "
                                  f"is {data.kind} with {data.num_classes} classes. Build it for this data.")
        elif isinstance(c, Candidate):
            _check_candidate(c, data)
        else:
            raise ConfigError(f"candidate {c!r} is not a backbone name, a dict, a wb.Candidate or a wb.Model.")
        out.append(c)
    names = [_name(c) for c in out]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ConfigError(f"candidate {doubles[0]!r} is listed twice; give one of them a label= to tell them apart.")
    return out


def _check_candidate(c: Candidate, data) -> None:
    from ..models.registry import resolve

    info = resolve(c.backbone)  # unknown names raise here, with close matches
    if info.kind != data.kind:
        raise ConfigError(f"candidate {c.backbone!r} is a {info.kind} backbone; the data {data.name!r} is {data.kind}. "
                          f"List {data.kind} backbones with wb.list_backbones({data.kind!r}).")
    for key, value in (("image_size", c.image_size), ("max_length", c.max_length)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"candidate {c.name!r}: {key} must be an int >= 1, got {value!r}.")
    if not isinstance(c.pretrained, bool):
        raise ConfigError(f"candidate {c.backbone!r}: pretrained must be True or False, got {c.pretrained!r}.")


def _name(c: Any) -> str:
    return c.name


def rank_backbones(data, candidates: Sequence[Any] | None = None, *, C: Any = 1.0, seed: int = 0, batch_size: int = 64,
                   reuse: BackboneRanking | None = None, on_progress: Callable[[ChooseProgress], None] | None = None,
                   stop: threading.Event | None = None, progress: bool | None = None) -> BackboneRanking:
    """Rank `candidates` (None: six that need no download, see default_candidates) for `data`.

    Each gets a Session (head only, named "choose · <candidate>", so it is listed in the Compare
    tab), its frozen features computed once, an exact head fit (`fit_head(C=C)`; C=None chooses the
    L2 strength by 3-fold CV on train, 4x the time) and its LogME on the train features.
    reuse: a previous ranking of the same data: its candidates keep their sessions and cached
    features (only the heads are fitted again). stop: an Event; set, the ranking ends after the
    current candidate. progress: a tqdm bar in code cells (None: on in notebooks and terminals)."""
    from ..data import Data
    from ..validate import integer

    if not isinstance(data, Data):
        raise ConfigError(f"rank_backbones needs a wb.Data (e.g. wb.load_data('mnist-5k')); got {type(data).__name__}.")
    seed = integer("seed", seed, low=0, hint="any integer >= 0")
    batch_size = integer("batch_size", batch_size, low=1, hint="images or texts per batch for the features, e.g. 64")
    if C is not None:
        from ..validate import number

        C = [number("C", c, low=0, low_open=True, hint="e.g. 1.0") for c in C] if isinstance(C, (list, tuple)) else \
            number("C", C, low=0, low_open=True, hint="e.g. 1.0 (None: chosen by cross-validation)")
    items = as_candidates(candidates, data)
    if reuse is not None and not isinstance(reuse, BackboneRanking):
        raise ConfigError(f"reuse must be a previous BackboneRanking; got {type(reuse).__name__}.")
    kept = {r.name: r.session for r in (reuse.results if reuse is not None and reuse.data is data else [])
            if r.session is not None}
    if progress is None:
        from ..progress import enabled_by_default

        progress = enabled_by_default()
    bar = _Bar(len(items)) if progress else None
    report = _reporter(on_progress, bar)
    results = []
    try:
        for i, c in enumerate(items):
            if stop is not None and stop.is_set():
                break
            results.append(_measure(i, len(items), c, data, C, seed, batch_size, kept.get(_name(c)), report))
    finally:
        if bar is not None:
            bar.close()
    return BackboneRanking(data, results, C)


def _measure(i: int, total: int, c: Any, data, C: Any, seed: int, batch_size: int, session, report) -> CandidateResult:
    from ..train.session import Session
    from .logme import logme

    name, started = _name(c), time.perf_counter()
    say = lambda stage, done=0, of=0, result=None: report(ChooseProgress(  # noqa: E731
        i, total, name, stage, done, of, time.perf_counter() - started, result))
    say("building")
    try:
        if session is None:
            model = c if not isinstance(c, Candidate) else c.build(data.num_classes, seed)
            session = Session(data, model, freeze="head", seed=seed, batch_size=batch_size, name=f"choose · {name}")
        listener = session.on("progress", lambda p: say(p.task, p.done, p.total) if p.task.startswith("features") else None)
        try:
            t0 = time.perf_counter()
            x = session.features("train")
            session.features("valid")
            t1 = time.perf_counter()
            say("fitting the head")
            fit = session.fit_head(C=C)
            t2 = time.perf_counter()
        finally:
            session.off("progress", listener)
        say("LogME")
        score = logme(x, data.train.labels, data.num_classes).score
        head = sum(p.numel() for p in session.model.head.parameters())
        total_params = sum(b.params for b in session.model.blocks)
        chosen = _chosen_C(fit.path_reason, C)
        result = CandidateResult(
            name=name, candidate=c, valid_accuracy=fit.valid_accuracy, valid_macro_f1=fit.valid_macro_f1,
            train_accuracy=fit.train_accuracy, logme=score, C=chosen, backbone_params=total_params - head,
            head_params=head, feature_dim=int(x.shape[1]), seconds=time.perf_counter() - started,
            feature_seconds=t1 - t0, fit_seconds=t2 - t1, weights=session.model.weights, session=session)
        say("done", result=result)
        return result
    except WorkbenchError as exc:
        failed = CandidateResult(name=name, candidate=c, seconds=time.perf_counter() - started, error=str(exc))
        say("failed", result=failed)
        return failed


def _chosen_C(reason: str, C: Any) -> float:
    """The C the exact fit used (its path_reason says "C=<value>")."""
    if isinstance(C, (int, float)):
        return float(C)
    for part in reason.split(","):
        part = part.strip()
        if part.startswith("C="):
            try:
                return float(part[2:].split()[0])
            except ValueError:
                break
    return float("nan")


def _reporter(on_progress, bar) -> Callable[[ChooseProgress], None]:
    def report(p: ChooseProgress) -> None:
        if bar is not None:
            bar.update(p)
        if on_progress is not None:
            on_progress(p)

    return report


class _Bar:
    """A tqdm bar over the candidates, its postfix the current stage (code cells and terminals)."""

    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm

        from ..progress import open_bar

        self._bar = open_bar(tqdm, total=total, desc="ranking backbones", unit="candidate")

    def update(self, p: ChooseProgress) -> None:
        if p.stage in ("done", "failed"):
            self._bar.update(1)
        of = f" {p.done}/{p.of}" if p.of else ""
        self._bar.set_postfix_str(f"{p.name}: {p.stage}{of}", refresh=False)

    def close(self) -> None:
        from ..progress import close_bar

        close_bar(self._bar)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two score lists (benchmarks compare rankings with it)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a, float), np.asarray(b, float)).statistic)
