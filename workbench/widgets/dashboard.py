"""TrainingDashboard: settings, Step / Train N / Pause / Stop, exact head fit, LR finder, progress,
live plots, history, and the run as code.

Training runs in a background thread (docs/ARCHITECTURE.md, "Threading"); from it the view only
assigns widget traits. Buttons run on the kernel's main thread and call the session's thread-safe
methods. The settings are described once (train_settings.SETTINGS: name, control, how to read
it from the session, how to write it back); the controls re-read the session on every
`config_change`, so code and clicks show the same values. Progress comes from the session's throttled events (<= 5 Hz). The
plot and the history table repaint through a Painter: not during the first 2 s of a run, then at
most every 2 s and within 3% of the wall time, and once when the run ends, so epochs of a few
milliseconds (a head on cached features) stay within a few percent of the same epochs in code
(benchmarks/ui_overhead.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets as W

from .. import plots
from ..errors import WorkbenchError
from ..train.events import (
    BatchEnd,
    ConfigChange,
    EpochStart,
    ErrorEvent,
    FitEnd,
    FitStart,
    Progress,
)
from ..train.lr_finder import check_range
from ..train.records import EpochResult
from ..validate import integer
from .code import CodeCopy
from .common import (
    STYLE,
    MessageBox,
    Painter,
    ProgressLine,
    StaticSnapshot,
    display_with_snapshot,
    esc,
    fmt_lr,
    fmt_seconds,
    guarded,
    log,
    progress_words,
    start_worker,
    table_html,
)
from .train_settings import SettingsPanel, round_sig

PLOT_EVERY_S = 2.0
PLOT_BUDGET = 0.03  # at most this share of wall time goes to repaints during a run (measured: 5% -> 1.058x)
# ---- the dashboard ---------------------------------------------------------------------------------
class TrainingDashboard(W.VBox):
    """Train a Session epoch by epoch with live plots; every button has a method twin."""

    def __init__(self, session, snapshot: StaticSnapshot | None = None) -> None:
        self.session = session
        self.snapshot = snapshot or StaticSnapshot()  # the last plot as a plain output, for saved notebooks
        self.message = MessageBox()
        self._thread: threading.Thread | None = None
        self._live: list[tuple[int, float]] = []  # (batch, loss) of the epoch in progress
        self._live_epoch = (0, 1)
        self._cache_s: dict[int, float] = {}  # epoch -> seconds its start spent computing cached features
        self._from_disk: dict[int, bool] = {}  # epoch -> every split's features read from disk (train/disk_cache.py)
        self._last_batch: BatchEnd | None = None
        self._figure = plots.TrainingPlot()  # kept between renders: only its lines change
        self._render_lock = threading.Lock()
        self.painter = Painter(self._paint, interval=PLOT_EVERY_S, budget=PLOT_BUDGET)
        self.settings = SettingsPanel(session, self.message)
        self.decisions = W.HTML()
        self.decisions.add_class("wb-decisions")
        self.step_button = W.Button(description="Step epoch", icon="step-forward", button_style="primary",
                                    layout=W.Layout(width="auto"))
        self.train_button = W.Button(description="Train N", icon="play", layout=W.Layout(width="auto"))
        self.n_epochs = W.BoundedIntText(value=5, min=1, max=1000, layout=W.Layout(width="70px"))
        self.pause_button = W.ToggleButton(description="Pause", icon="pause", disabled=True,
                                           layout=W.Layout(width="auto"))
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                                    layout=W.Layout(width="auto"))
        self.fit_head_button = W.Button(description="Fit head exactly", icon="bullseye", layout=W.Layout(width="auto"),
                                        tooltip="Logistic regression on the cached features (L-BFGS): the best a frozen "
                                                "backbone allows, recorded as one epoch")
        self.find_lr_button = W.Button(description="Find LR", icon="search", layout=W.Layout(width="auto"),
                                       tooltip="LR range test: one step per learning rate, weights restored after")
        for w, css in ((self.step_button, "wb-step"), (self.train_button, "wb-train"), (self.pause_button, "wb-pause"),
                       (self.stop_button, "wb-stop"), (self.fit_head_button, "wb-fit-head"),
                       (self.find_lr_button, "wb-find-lr"), (self.n_epochs, "wb-n-epochs")):
            w.add_class(css)
        self.step_button.on_click(lambda _: self.step())
        self.train_button.on_click(lambda _: self.train(self.n_epochs.value))
        self.pause_button.observe(self._on_pause, names="value")
        self.stop_button.on_click(lambda _: self.stop())
        self.fit_head_button.on_click(lambda _: self.fit_head())
        self.find_lr_button.on_click(lambda _: self.find_lr())
        self.progress = ProgressLine()
        self.status = self.progress.label  # the words beside the bar
        self.plot = W.Image(format="png", layout=W.Layout(width="auto", max_width="calc(100% - 4px)", display="none"))
        self.plot.add_class("wb-plot")
        self.placeholder = W.HTML('<div class="wb-muted" style="padding:8px 0">No epochs yet: press <b>Step epoch'
                                  "</b> (or <b>Train N</b>) and the loss, accuracy and learning-rate plots appear "
                                  "here.</div>")
        self.placeholder.add_class("wb-placeholder")
        self.table = W.HTML()
        self.table.add_class("wb-history")
        self.lr_plot = W.Image(format="png", layout=W.Layout(width="auto", max_width="calc(100% - 4px)"))
        self.use_lr_button = W.Button(description="Use it", icon="check", layout=W.Layout(width="auto"))
        self.use_lr_button.on_click(lambda _: self.use_suggested_lr())
        self.lr_suggestion: float | None = None
        self.lr_box = W.VBox([self.lr_plot, self.use_lr_button], layout=W.Layout(display="none"))
        self.lr_box.add_class("wb-lr-finder")
        self.code = CodeCopy(session.to_code)
        self.code.add_class("wb-code-view")
        buttons = W.HBox([self.step_button, self.train_button, self.n_epochs, self.pause_button, self.stop_button,
                          self.fit_head_button, self.find_lr_button])
        buttons.add_class("wb-wrap-row")
        buttons.add_class("wb-buttons")
        super().__init__([W.HTML(STYLE), self.settings, self.decisions, buttons, self.progress, self.message,
                          self.placeholder, self.plot, self.table, self.lr_box, self.code])
        self.add_class("wb-dashboard")
        self.add_class("wb-view")
        for event, fn in (("fit_start", self._on_fit_start), ("epoch_start", self._on_epoch_start),
                          ("batch_end", self._on_batch), ("progress", self._on_progress),
                          ("epoch_end", self._on_epoch_end), ("fit_end", self._on_fit_end),
                          ("config_change", self._on_config), ("error", self._on_error)):
            session.on(event, fn)
        self._sync()
        with self._render_lock:
            plots.png(self._figure.update([]))  # warms matplotlib (~1.3 s the first time) before any training
        if session.history:
            self.painter.paint()
        else:
            self._render_table()
        self.progress.show(self._next_words())

    # ---- public twins of the buttons ------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @guarded()
    def step(self) -> None:
        """Train one epoch in the background (the Step epoch button)."""
        self._start(lambda: self._fit_words(self.session.fit(1, progress=False)),
                    f"starting epoch {self.session.epoch + 1}")

    @guarded()
    def train(self, epochs: int) -> None:
        """Train `epochs` epochs in the background (the Train N button)."""
        epochs = integer("epochs", epochs, low=1, hint="The number of epochs to train, e.g. dashboard.train(3).")
        self._start(lambda: self._fit_words(self.session.fit(epochs, progress=False)),
                    f"starting {epochs} epoch{'s' if epochs != 1 else ''} (from epoch {self.session.epoch + 1})")

    @guarded()
    def fit_head(self) -> None:
        """Fit the head exactly on the cached features, in the background (session.fit_head())."""
        self._start(lambda: self._fit_words([self.session.fit_head()]),
                    "fitting the head exactly: logistic regression on the cached features, its L2 strength "
                    "chosen by cross-validation")

    @guarded()
    def find_lr(self, start: float = 1e-7, end: float = 10.0, steps: int = 100) -> None:
        """Run the LR range test in the background and show its curve with a "Use it" button."""
        check_range(start, end, steps)  # a bad range is refused here, before the thread starts
        self._start(lambda: self._show_lr_finder(self.session.find_lr(start, end, steps, progress=False)),
                    f"LR range test: one training step at each of {steps} learning rates, weights restored after")

    @guarded()
    def use_suggested_lr(self) -> None:
        """Set the LR the last range test suggested (the "Use ..." button)."""
        if self.lr_suggestion is None:
            from ..errors import ConfigError

            raise ConfigError("No LR range test yet: press Find LR (or call find_lr()) first.")
        self.session.configure(lr=self.lr_suggestion)

    def pause(self) -> None:
        self.pause_button.value = True

    def resume(self) -> None:
        self.pause_button.value = False

    def stop(self) -> None:
        """Stop after the current batch; the model keeps its last completed step."""
        self.session.stop()
        self.progress.show("stopping after this batch…")

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background work ends (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    @guarded()
    def set(self, **settings) -> None:
        """Change settings as the controls do (validated; applied between epochs)."""
        self.session.configure(**settings)

    def copy_as_code(self, new_cell: bool = True) -> str:
        """The run as a Python cell (session.to_code()), shown under the dashboard. Called from a code
        cell, it also opens that code in a new cell below (IPython's set_next_input)."""
        code = self.code.refresh()
        if new_cell:
            try:
                from IPython import get_ipython

                shell = get_ipython()
            except ImportError:
                shell = None
            if shell is not None and hasattr(shell, "set_next_input"):
                shell.set_next_input(code, replace=False)
        return code

    # ---- background work --------------------------------------------------------------------------
    def _start(self, job: Callable[[], str | None], words: str) -> None:
        """Run `job` in the training thread; the progress line says `words` at once (a spinner until
        the session's events give a count)."""
        if self.training:
            self.message.show("Training is already running: wait for it, or press Stop.", "info")
            return
        self.message.clear()
        self._set_running(True)
        self.progress.show(words + "…", spin=True)
        self._thread = start_worker(self._work, job, name="workbench-train", stop=self.session.stop)

    def _work(self, job: Callable[[], str | None]) -> None:
        words = None
        try:
            words = job()
        except WorkbenchError as exc:
            self.message.show(str(exc))
        except Exception as exc:  # a bug: show it and log it (widget tests fail on this log)
            self.message.show(f"Unexpected error ({type(exc).__name__}): {exc}")
            log.exception("training thread failed")
        finally:
            try:
                self.painter.flush()  # after fit has returned: the run's time does not include it
            finally:
                self._set_running(False)
                self._show_done(words)

    def _set_running(self, running: bool) -> None:
        self.step_button.disabled = self.train_button.disabled = running
        self.fit_head_button.disabled = self.find_lr_button.disabled = running
        self.pause_button.disabled = self.stop_button.disabled = not running
        if not running and self.pause_button.value:
            self.pause_button.value = False

    def _on_pause(self, change) -> None:
        if change["new"]:
            self.session.pause()
            self.pause_button.description, self.pause_button.icon = "Resume", "play"
            b = self._last_batch
            where = f" at batch {b.batch:,}/{b.num_batches:,} of epoch {b.epoch}" if b is not None else ""
            self.progress.show(f"paused{where}: press Resume to go on, Stop to end the epoch here", style="warning",
                               css="wb-status-paused")
        else:
            self.session.resume()
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"
            if self.training:
                self.progress.show("resumed…")

    # ---- session events (called in the training thread: assign traits only) ----------------------
    def _on_fit_start(self, e: FitStart) -> None:
        self.painter.hold()
        self._last_batch = None
        self.progress.show(f"starting epoch {e.first_epoch}…", spin=True)

    def _on_epoch_start(self, e: EpochStart) -> None:
        self._live, self._live_epoch = [], (e.epoch, e.num_batches)
        path = "cached features" if e.fast_path else "full forward"
        self.progress.show(f"epoch {e.epoch}, {path}: batch {{n}}", 0, e.num_batches, spin=True)

    def _on_batch(self, b: BatchEnd) -> None:
        self._last_batch = b
        self._live.append((b.batch, b.loss))
        if self.session.paused:
            return  # the line says "paused" until Resume
        self.progress.show(f"epoch {b.epoch}: batch {{n}} · loss {b.loss:.4f} · {b.samples_per_s:,.0f} samples/s",
                           b.batch, b.num_batches, b.eta_s, spin=True)
        self.painter.request()

    def _on_progress(self, p: Progress) -> None:
        if p.task.startswith(("features", "disk cache")) and p.done >= p.total:
            epoch = self.session.epoch + 1
            self._cache_s[epoch] = self._cache_s.get(epoch, 0.0) + p.elapsed_s
            # one split computed (an entry that did not check out is rebuilt) and the epoch "computed"
            self._from_disk[epoch] = self._from_disk.get(epoch, True) and p.task.startswith("disk cache")
        if self.session.paused:
            return
        self.progress.show(progress_words(p), p.done, p.total, p.eta_s,
                           style="info" if p.task != "validation" else "", spin=True)

    def _on_epoch_end(self, r: EpochResult) -> None:
        self._live = []
        self.progress.show(self._result_words(r), r.batches, r.num_batches, style="" if not r.stopped else "warning")
        self.painter.request()

    def _on_fit_end(self, e: FitEnd) -> None:
        if e.reason == "early stopping":
            self.message.show("Early stopping: the valid loss stopped improving; the best epoch's weights "
                              "were restored.", "info")
        if threading.current_thread() is not self._thread:
            self.painter.flush()  # fit called from code: paint its end now (the dashboard's own thread does it after)

    def _on_config(self, e: ConfigChange) -> None:
        self._sync()
        if not self.session.running and not self.training:
            self.progress.show(self._next_words())

    def _on_error(self, e: ErrorEvent) -> None:
        self.message.show(e.message)

    # ---- words -------------------------------------------------------------------------------------
    def _result_words(self, r: EpochResult) -> str:
        valid = f"valid acc {r.valid_accuracy:.3f}, loss {r.valid_loss:.4f}" if r.valid_loss is not None else "not validated"
        cache = self._cache_s.get(r.epoch)
        how = ("reading the cached features from disk (computed by an earlier run or kernel)"
               if self._from_disk.get(r.epoch) else "computing the cached features (once)")
        took = f"{fmt_seconds(r.epoch_time_s)}" + (f", of which {fmt_seconds(cache)} {how}" if cache else "")
        stopped = f" · {r.stopped}" if r.stopped else ""
        return f"epoch {r.epoch} done: {valid} · took {took}{stopped}"

    def _next_words(self) -> str:
        s = self.session
        fast, why = s.path()
        path = "cached features" if fast else "full forward"
        first = "" if not fast or s.epoch else " (the first epoch computes the backbone's features once)"
        return f"ready · next epoch: {path} ({why}){first}"

    def _fit_words(self, results: list[EpochResult]) -> str | None:
        """What a finished run says on the progress line: its last epoch, or why none ran."""
        if results:
            return None  # _show_done shows the last epoch
        return "stopped before the first batch: nothing changed"

    def _show_done(self, words: str | None) -> None:
        r = self.session.history[-1] if self.session.history else None
        if words is not None:
            self.progress.show(words, style="")
        elif r is not None:
            self.progress.show(self._result_words(r), r.batches, r.num_batches,
                               style="warning" if r.stopped else "success")
        else:
            self.progress.show(self._next_words())

    # ---- rendering ---------------------------------------------------------------------------------
    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was (no kernel, no widget state)
        return f"TrainingDashboard widget (run the notebook to use it): {self.session!r}"

    def _ipython_display_(self) -> None:
        display_with_snapshot(self, self.snapshot)

    def _paint(self) -> None:
        """The plot and the history table from the session's history (and the epoch in progress)."""
        points = list(self._live)
        history = self.session.history
        with self._render_lock:
            fig = self._figure.update(history, live=(*self._live_epoch, points) if points else None)
            png = plots.png(fig)
        if history or points:
            self.plot.value = png
            self.plot.layout.display = ""
            self.placeholder.layout.display = "none"
        if history and not points:
            self.snapshot.update(png)
        self._render_table()

    def _render_table(self, last: int = 8) -> None:
        head = self.session.model.block_names[-1]
        rows = [[r.epoch, f"{r.train_loss:.4f}", _num(r.valid_loss), _num(r.valid_accuracy, 3), _num(r.valid_macro_f1, 3),
                 fmt_lr(r.lrs.get(head, max(r.lrs.values(), default=None))), len(r.trainable),
                 "cached" if r.fast_path else "full", f"{r.epoch_time_s:.2f}", self._note(r)]
                for r in self.session.history[-last:]]
        header = ["epoch", "train loss", "valid loss", "valid acc", "macro-F1", "head LR", "blocks", "path", "time s",
                  "note"]
        self.table.value = table_html(header, rows, wrap=(9,), optional=(1, 5, 6, 7, 8)) if rows else ""

    def _note(self, r: EpochResult) -> str:
        if r.stopped:
            return r.stopped
        if r.path_reason.startswith("exact head fit"):
            return "exact head fit"
        cache = self._cache_s.get(r.epoch)
        if self._from_disk.get(r.epoch):
            return f"features read from disk in {cache:.1f} s"
        return f"features cached in {cache:.1f} s" if cache else ""

    def _show_lr_finder(self, result) -> str:
        fig = plots.lr_finder_figure(result)
        self.lr_suggestion = round_sig(float(result.suggestion))
        self.lr_plot.value = plots.png(fig, dpi=90)
        self.use_lr_button.description = f"Use {self.lr_suggestion:.1e}"
        self.lr_box.layout.display = ""
        return (f"LR range test done: the loss fell fastest at {self.lr_suggestion:.1e} (weights restored); "
                "press \"Use\" to train with it")

    # ---- settings ----------------------------------------------------------------------------
    @property
    def inputs(self) -> dict[str, W.Widget]:
        """Each setting's control by name (the settings panel's)."""
        return self.settings.inputs

    def _sync(self) -> None:
        """Every control and the decisions line from the session (on config_change and at start)."""
        s = self.session
        self.settings.sync()
        fast, why = s.path()
        pending = " · changes queued for the next epoch" if s.has_pending_changes else ""
        self.decisions.value = (
            f'<div class="wb-muted">next epoch: <b>{"cached features" if fast else "full forward"}</b> ({esc(why)}) · '
            f"{esc(s.next_epoch_lr().words())} · "  # the LR that runs (lr_plan.py), not the setting
            + ("preconditioned head · " if fast and s.preconditions_head() else "")
            + f"{len(s.trainable)} of {len(s.model.blocks)} blocks train{esc(pending)}</div>")
        self.fit_head_button.disabled = self.training or s.running


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
