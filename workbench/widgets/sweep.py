"""SweepView: run a hyperparameter sweep in the background and watch its trials, then adopt one.

`Run` starts the sweep's remaining trials in a thread (docs/ARCHITECTURE.md, Threading). The
progress line names the trial, its params and its epoch; the table lists every trial (state, the
metric, epochs, params) as it changes; the figure shows each trial's metric per epoch, pruned ones
dashed, repainted through the Painter's budget. Each trial is also a run in the Compare tab.
`Adopt` returns the picked trial's Session (its `to_code()` replays the sweep).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import WorkbenchError
from ..plots import png, sweep_figure
from ..train.sweep import Sweep, SweepEvent
from .common import STYLE, MessageBox, Painter, ProgressLine, errors_shown, esc, guarded, start_worker, table_html

PROGRESS_EVERY_S = 0.2


class SweepView(W.VBox):
    """`SweepView(session, space, trials=8, epochs=3, ...)` (the options of wb.sweep) or
    `SweepView(sweep)`. Twins of the buttons: `start()`, `stop()`, `adopt(number)`; `wait()`."""

    def __init__(self, source: Any, space: dict | None = None, trials: int = 8, **options: Any) -> None:
        self.sweep = source if isinstance(source, Sweep) else Sweep(source, space or {}, trials, **options)
        self.adopted = None
        self._callbacks: list[Callable] = []
        self._thread: threading.Thread | None = None
        self._last_progress = 0.0
        self.message = MessageBox()
        self.run_button = W.Button(description="Run", icon="play", button_style="primary")
        self.run_button.add_class("wb-sweep-run")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.progress = ProgressLine()
        self.table = W.HTML()
        self.table.add_class("wb-sweep-table")
        self.figure = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.figure.add_class("wb-sweep-figure")
        self.choice = W.Dropdown(description="trial", layout=W.Layout(width="auto", flex="0 1 360px", min_width="0"))
        self.adopt_button = W.Button(description="Adopt this trial", icon="check", disabled=True,
                                      layout=W.Layout(width="auto"))
        self.adopt_button.add_class("wb-sweep-adopt")
        self.painter = Painter(self._paint_figure, interval=1.0, budget=0.05)
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.adopt_button.on_click(lambda _: self.adopt())
        self.sweep.on(self._on_event)
        space = ", ".join(f"{k} {_describe(v)}" for k, v in self.sweep.space.items())
        bar = {"quartile": "below the lower quartile", "median": "below the median"}.get(self.sweep.pruner)
        pruning = (f"pruning trials {bar} of the others at the same epoch (from epoch "
                   f"{max(self.sweep.warmup_epochs, 1)}, after {self.sweep.startup_trials} finished trials)"
                   if bar else "no pruning")
        about = W.HTML(f'<span class="wb-muted">{esc(self.sweep.trials_planned)} trials of {esc(self.sweep.epochs)} '
                       f"epoch(s), {esc(self.sweep.sampler.upper())} sampler, {esc(pruning)}, by "
                       f"{esc(self.sweep.metric)}. Space: {esc(space)}.</span>")
        rows = [W.HBox([self.run_button, self.stop_button, self.progress]), W.HBox([self.choice, self.adopt_button])]
        for row in rows:
            row.add_class("wb-wrap-row")
        super().__init__([W.HTML(STYLE), about, rows[0], self.message, self.figure, self.table, rows[1]])
        self.add_class("wb-sweep")
        self.add_class("wb-view")
        self._render()
        self.progress.show(f"{len(self.sweep.trials)} of {self.sweep.trials_planned} trials run; press Run"
                           if len(self.sweep.trials) < self.sweep.trials_planned else "the sweep has run every trial",
                           len(self.sweep.trials), self.sweep.trials_planned)

    def __repr__(self) -> str:  # what a saved notebook shows without a kernel
        return f"SweepView widget (run the notebook to use it): {self.sweep!r}"

    # ---- public twins -----------------------------------------------------------------------------
    def on_adopt(self, fn: Callable) -> None:
        """Call fn(session) when a trial is adopted."""
        self._callbacks.append(fn)

    @guarded()
    def start(self, trials: int | None = None) -> None:
        """Run the remaining trials (or `trials` more) in the background (the Run button)."""
        if self.sweep.running:
            self.message.show("The sweep is running already; Stop it or wait for it to end.", "info")
            return
        todo = trials if trials is not None else self.sweep.trials_planned - len(self.sweep.trials)
        if todo <= 0:
            self.message.show("Every planned trial has run; sweep.run(trials=4) runs more.", "info")
            return
        self.message.clear()
        self.run_button.disabled, self.stop_button.disabled, self.adopt_button.disabled = True, False, True
        self.painter.hold()
        self.progress.show(f"starting: trial {len(self.sweep.trials)} of {self.sweep.trials_planned}…",
                           len(self.sweep.trials), self.sweep.trials_planned, style="info")
        self._thread = start_worker(self._run, todo, name="workbench-sweep", stop=self.sweep.stop)

    def stop(self) -> None:
        """Stop the running trial after its current batch and start no other (thread-safe)."""
        self.sweep.stop()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @guarded()
    def adopt(self, number: int | None = None):
        """Trial `number`'s Session (None: the one in the dropdown), given to on_adopt callbacks."""
        session = self.sweep.adopt(self.choice.value if number is None else number)
        self.adopted = session
        for fn in self._callbacks:
            fn(session)
        self.message.show(f"Adopted {session.name}: sweep.adopt(...) returns it; its to_code() replays the sweep.", "ok")
        return session

    # ---- in the sweep's thread ----------------------------------------------------------------
    def _run(self, todo: int) -> None:
        try:
            with errors_shown(self.message, "the sweep"):
                self.sweep.run(todo, progress=False)
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
            self._render()
            self.painter.flush()

    def _on_event(self, e: SweepEvent) -> None:
        s = self.sweep
        if e.kind == "progress":
            now = time.monotonic()
            p = e.detail
            if now - self._last_progress >= PROGRESS_EVERY_S or p.done == p.total:
                self._last_progress = now
                words = (f"trial {e.trial.number}: " if e.trial is not None else "") + f"{p.task}: {p.done:,}/{p.total:,}"
                self.progress.show("computing the shared features once, " + words if e.trial is None else words,
                                   p.done, p.total, style="info")
            return
        if e.kind == "sweep_end":
            failed = [t for t in s.trials if t.state == "failed"]
            done = f"{len(s.trials)} of {s.trials_planned} trials run, {s.epochs_run} epochs" + (
                f", {sum(t.state == 'pruned' for t in s.trials)} pruned" if s.pruner != "none" else "")
            self.progress.show(done, len(s.trials), s.trials_planned, style="warning" if failed else "success")
            if failed:
                self.message.show(f"Trial {failed[-1].number} failed: {failed[-1].error}")
            return
        t = e.trial
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        if e.kind == "trial_start":
            words = f"trial {t.number} ({len(s.trials)}/{s.trials_planned}): {params}, building it…"
        elif e.kind == "epoch":
            words = f"trial {t.number} ({len(s.trials)}/{s.trials_planned}): {params}, epoch {t.epochs}/{s.epochs}: {s.metric} {t.value:.3f}"
        else:
            words = f"trial {t.number} {t.state}" + (f" after epoch {t.epochs}" if t.state == "pruned" else "")
        self.progress.show(words, len(s.trials) - (e.kind != "trial_end"), s.trials_planned, style="info")
        self._render_table()
        self.painter.request()

    def _render(self) -> None:
        self._render_table()
        self.painter.paint()

    def _paint_figure(self) -> None:
        self.figure.value = png(sweep_figure(self.sweep))

    def _render_table(self) -> None:
        s = self.sweep
        try:
            best = s.best.number
        except WorkbenchError:
            best = None
        keys = list(s.space)
        rows = [[f"{t.number}{' ★' if t.number == best else ''}", t.state, "–" if t.value != t.value else f"{t.value:.4f}",
                 t.epochs, f"{t.seconds:.1f}", *(_short(t.params.get(k)) for k in keys), t.error or ""]
                for t in s.trials]
        self.table.value = table_html(["trial", "state", s.metric, "epochs", "seconds", *keys, "error"], rows,
                                      wrap=(5 + len(keys),))
        options = [(f"#{t.number} {t.state} {t.value:.3f}" if t.values else f"#{t.number} {t.state}", t.number)
                   for t in s.trials if t.session is not None and t.state != "running"]
        if options != list(self.choice.options):
            self.choice.options = options
            if best is not None and any(n == best for _, n in options):
                self.choice.value = best
        self.adopt_button.disabled = not options or s.running


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _describe(spec: dict) -> str:
    if "choices" in spec:
        return "in " + "/".join(map(str, spec["choices"]))
    return f"{_short(spec['low'])}..{_short(spec['high'])}" + (" (log)" if spec["log"] else "")
