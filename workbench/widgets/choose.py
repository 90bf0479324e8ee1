"""ChooseView: rank candidate backbones for the data, then start from the one you pick.

`Rank` runs `wb.rank_backbones` in a background thread (docs/ARCHITECTURE.md, Threading): the
progress line says which candidate is at which stage (building, its features batch by batch, the
head fit, LogME), finished candidates join the table as they come, and Stop ends the ranking after
the current candidate. `Use this backbone` hands that candidate's Session (head fitted, features
cached) to `on_adopt` callbacks; the Workbench's Model tab attaches it to the other tabs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ipywidgets as W

from ..analysis.choose import BackboneRanking, ChooseProgress, as_candidates, rank_backbones
from ..plots import png, ranking_figure
from .common import STYLE, MessageBox, ProgressLine, errors_shown, esc, fmt_params, guarded, start_worker, table_html

PROGRESS_EVERY_S = 0.2  # progress traits at most 5 times a second
STAGE_WORDS = {"building": "building the model", "features (train)": "computing its features once, train split: batch {n}",
               "features (valid)": "computing its features once, valid split: batch {n}",
               "fitting the head": "fitting the head exactly (logistic regression)", "LogME": "scoring LogME",
               "done": "done", "failed": "could not be measured"}


class ChooseView(W.VBox):
    """`ChooseView(data)`: rank candidate backbones (None: six that need no download) and adopt one.
    Twins of the buttons: `rank()`, `stop()`, `adopt(name or rank)`; `wait()` joins the ranking."""

    def __init__(self, data, candidates=None, *, C: float | None = 1.0, seed: int = 0) -> None:
        self.data, self.C, self.seed = data, C, seed
        self.candidates = as_candidates(candidates, data)  # checked now: a bad list raises in the cell
        self.ranking: BackboneRanking | None = None
        self.adopted = None  # the Session last adopted
        self._callbacks: list[Callable] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._partial: list = []
        self._last_progress = 0.0
        self.message = MessageBox()
        names = [c.name for c in self.candidates]
        self.pick = W.SelectMultiple(options=names, value=tuple(names), rows=min(len(names), 6), description="candidates",
                                     layout=W.Layout(width="auto", flex="0 1 420px", min_width="0"))
        self.pick.add_class("wb-choose-candidates")
        self.rank_button = W.Button(description="Rank", icon="sort-amount-desc", button_style="primary",
                                    tooltip="an exact head on each candidate's frozen features, and LogME")
        self.rank_button.add_class("wb-choose-rank")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True, tooltip="end after this candidate")
        self.progress = ProgressLine()
        self.progress.layout.display = "none"
        self.table = W.HTML()
        self.table.add_class("wb-choose-table")
        self.figure = W.Image(format="png", layout=W.Layout(max_width="100%", display="none"))
        self.figure.add_class("wb-choose-figure")
        self.choice = W.Dropdown(description="candidate", layout=W.Layout(width="auto", flex="0 1 360px", min_width="0"))
        self.adopt_button = W.Button(description="Use this backbone", icon="check", disabled=True,
                                      layout=W.Layout(width="auto"))
        self.adopt_button.add_class("wb-choose-adopt")
        self.rank_button.on_click(lambda _: self.rank())
        self.stop_button.on_click(lambda _: self.stop())
        self.adopt_button.on_click(lambda _: self.adopt())
        intro = W.HTML('<span class="wb-muted">Each candidate\'s features are computed once (frozen backbone), '
                       "then a head is fitted exactly on them: the accuracy a frozen backbone allows. LogME scores "
                       "the same features without any head.</span>")
        rows = [W.HBox([self.pick, W.VBox([self.rank_button, self.stop_button])]), W.HBox([self.choice, self.adopt_button])]
        for row in rows:
            row.add_class("wb-wrap-row")
        super().__init__([W.HTML(STYLE), intro, rows[0], self.progress, self.message, self.table, self.figure, rows[1]])
        self.add_class("wb-choose")
        self.add_class("wb-view")

    def __repr__(self) -> str:  # what a saved notebook shows without a kernel
        return f"ChooseView widget (run the notebook to use it): {len(self.candidates)} candidate backbones for {self.data.name}"

    # ---- public twins -----------------------------------------------------------------------------
    def on_adopt(self, fn: Callable) -> None:
        """Call fn(session) when a candidate is adopted."""
        self._callbacks.append(fn)

    @guarded()
    def rank(self) -> None:
        """Rank the ticked candidates in the background (the Rank button); ones ranked before reuse
        their sessions and cached features."""
        if self._thread is not None and self._thread.is_alive():
            self.message.show("A ranking is running already; Stop it or wait for it to end.", "info")
            return
        chosen = [c for c in self.candidates if c.name in self.pick.value]
        if not chosen:
            self.message.show("Tick at least one candidate to rank.", "info")
            return
        self.message.clear()
        self._stop.clear()
        self._partial = []
        self.rank_button.disabled, self.stop_button.disabled, self.adopt_button.disabled = True, False, True
        self.progress.layout.display = ""
        self.progress.show(f"ranking {len(chosen)} candidate(s): starting with {chosen[0].name}…", 0, len(chosen),
                           style="info")
        self._thread = start_worker(self._rank, chosen, name="workbench-choose", stop=self._stop.set)

    def stop(self) -> None:
        """End the ranking after the current candidate (thread-safe)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self.progress.show("stopping after the current candidate…", style="warning")

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @guarded()
    def adopt(self, which: str | int | None = None):
        """The chosen candidate's Session (by name or rank; None: the one in the dropdown), given to
        the on_adopt callbacks."""
        if self.ranking is None:
            self.message.show("Rank the candidates first (the Rank button).", "info")
            return None
        session = self.ranking.adopt(self.choice.value if which is None else which)
        self.adopted = session
        for fn in self._callbacks:
            fn(session)
        self.message.show(f"Using {session.model.name} ({session.name}): its head is fitted and its features cached; "
                          "train it further in the Train tab.", "ok")
        return session

    # ---- in the ranking thread ---------------------------------------------------------------
    def _rank(self, chosen: list) -> None:
        ranked = False
        try:
            with errors_shown(self.message, "ranking backbones"):
                ranking = rank_backbones(self.data, chosen, C=self.C, seed=self.seed, reuse=self.ranking,
                                         on_progress=self._on_progress, stop=self._stop, progress=False)
                self.ranking = ranking
                self._show(ranking)
                stopped = len(ranking) < len(chosen)
                self.progress.show(f"ranked {len(ranking)} of {len(chosen)} candidate(s)" + (" (stopped)" if stopped else ""),
                                   len(ranking), len(chosen), style="success")
                ranked = True
        finally:
            if not ranked:
                self.progress.layout.display = "none"  # the message says what went wrong
            self.rank_button.disabled, self.stop_button.disabled = False, True
            self.adopt_button.disabled = self.ranking is None

    def _on_progress(self, p: ChooseProgress) -> None:
        if p.result is not None:
            self._partial.append(p.result)
            self._show(BackboneRanking(self.data, self._partial, self.C), final=False)
        now = time.monotonic()
        if p.result is None and now - self._last_progress < PROGRESS_EVERY_S and p.done != p.of:
            return
        self._last_progress = now
        words = STAGE_WORDS.get(p.stage, p.stage).replace("{n}", f"{p.done:,}/{p.of:,}" if p.of else "")
        self.progress.show(f"candidate {p.index + 1}/{p.total} · {p.name}: {words}", p.index + (p.result is not None),
                           p.total, style="info")

    def _show(self, ranking: BackboneRanking, final: bool = True) -> None:
        measured = [r for r in ranking.results if r.error is None]
        rows = [[i + 1, r.name, f"{r.valid_accuracy:.3f}", f"{r.logme:.3f}", fmt_params(r.backbone_params),
                 r.feature_dim, f"{r.seconds:.1f}"] for i, r in enumerate(measured)]
        failed = "".join(f'<div class="wb-msg wb-msg-error">{esc(r.name)} could not be measured: {esc(r.error)}</div>'
                         for r in ranking.results if r.error is not None)
        self.table.value = table_html(["rank", "candidate", "valid accuracy", "LogME", "backbone params", "features",
                                       "seconds"], rows, wrap=(1,)) + failed
        if final and measured:
            self.figure.value = png(ranking_figure(ranking))
            self.figure.layout.display = ""
            self.choice.options = [(f"{r.name} ({r.valid_accuracy:.3f})", r.name) for r in measured]
            self.choice.value = measured[0].name
