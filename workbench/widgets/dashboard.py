"""TrainingDashboard: settings, Step / Train N / Pause / Stop, progress, live plots, history.

Training runs in a background thread (DESIGN.md: measured responsive in JupyterLab); from it the
view only assigns widget traits. Buttons run on the kernel's main thread and call the session's
thread-safe methods. Progress updates arrive at most 5 times a second (the session throttles
batch_end) and the plot renders at most every 2 s, never more than ~5% of the time, and at each
epoch end.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as W

from .. import plots
from ..errors import WorkbenchError
from ..train.events import BatchEnd, EpochStart, ErrorEvent, FitEnd
from ..train.losses import LOSSES
from ..train.optim import OPTIMIZERS, SCHEDULES
from ..train.records import EpochResult
from .common import STYLE, MessageBox, StaticSnapshot, display_with_snapshot, esc, guarded, log, table_html

PLOT_EVERY_S = 2.0
PLOT_BUDGET = 0.03  # at most this share of wall time goes to live plot renders (measured: 5% -> 1.058x)


class TrainingDashboard(W.VBox):
    """Train a Session epoch by epoch with live plots; every button has a method twin."""

    def __init__(self, session, snapshot: StaticSnapshot | None = None) -> None:
        self.session = session
        self.snapshot = snapshot or StaticSnapshot()  # the last plot as a plain output, for saved notebooks
        self.message = MessageBox()
        self._thread: threading.Thread | None = None
        self._live: list[tuple[int, float]] = []
        self._live_epoch = (0, 1)
        self._next_plot = 0.0
        self._stopped_epoch: EpochResult | None = None
        self._figure = plots.TrainingPlot()  # kept between renders: only its lines change
        self._render_lock = threading.Lock()  # renders come from the main and the training thread
        self._syncing = False
        self.controls = self._build_controls()
        self.step_button = W.Button(description="Step epoch", icon="step-forward", button_style="primary")
        self.train_button = W.Button(description="Train N", icon="play")
        self.n_epochs = W.BoundedIntText(value=5, min=1, max=1000, layout=W.Layout(width="70px"))
        self.pause_button = W.ToggleButton(description="Pause", icon="pause", disabled=True)
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        for w, css in ((self.step_button, "wb-step"), (self.train_button, "wb-train"),
                       (self.pause_button, "wb-pause"), (self.stop_button, "wb-stop")):
            w.add_class(css)
        self.step_button.on_click(lambda _: self.step())
        self.train_button.on_click(lambda _: self.train(self.n_epochs.value))
        self.pause_button.observe(self._on_pause, names="value")
        self.stop_button.on_click(lambda _: self.stop())
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="420px"))
        self.progress.add_class("wb-progress")
        self.status = W.HTML()
        self.status.add_class("wb-status")
        self.plot = W.Image(format="png", layout=W.Layout(width="100%", max_width="1000px"))
        self.plot.add_class("wb-plot")
        self.table = W.HTML()
        self.table.add_class("wb-history")
        buttons = W.HBox([self.step_button, self.train_button, self.n_epochs, self.pause_button, self.stop_button])
        super().__init__([
            W.HTML(STYLE), self.controls, buttons, W.HBox([self.progress, self.status]), self.message,
            self.plot, self.table,
        ])
        self.add_class("wb-dashboard")
        for event, fn in (("epoch_start", self._on_epoch_start), ("batch_end", self._on_batch),
                          ("epoch_end", self._on_epoch_end), ("error", self._on_error), ("fit_end", self._on_fit_end)):
            session.on(event, fn)
        self._render_plot()  # warms matplotlib (~1.3 s the first time) before any training
        self._render_table()
        self._show_path()

    # ---- public twins of the buttons ------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @guarded()
    def step(self) -> None:
        """Train one epoch in the background (the Step epoch button)."""
        self._start(1)

    @guarded()
    def train(self, epochs: int) -> None:
        """Train `epochs` epochs in the background (the Train N button)."""
        self._start(int(epochs))

    def pause(self) -> None:
        self.pause_button.value = True

    def resume(self) -> None:
        self.pause_button.value = False

    def stop(self) -> None:
        """Stop after the current batch; the model keeps its last completed step."""
        self.session.stop()
        self.status.value = '<span class="wb-muted">stopping after this batch…</span>'

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background training ends (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    @guarded()
    def set(self, **settings) -> None:
        """Change settings as the controls do (validated; applied between epochs)."""
        self.session.configure(**settings)
        self._sync_controls()

    # ---- training thread --------------------------------------------------------------------
    def _start(self, epochs: int) -> None:
        if self.training:
            self.message.show("Training is already running: wait for it, or press Stop.", "info")
            return
        self.message.clear()
        self._set_running(True)
        self._thread = threading.Thread(target=self._work, args=(epochs,), name="workbench-train", daemon=True)
        self._thread.start()

    def _work(self, epochs: int) -> None:
        try:
            self.session.fit(epochs, progress=False)  # this view shows the progress itself
        except WorkbenchError as exc:
            self.message.show(str(exc))
        except Exception as exc:  # a bug: show it and log it (widget tests fail on this log)
            self.message.show(f"Unexpected error ({type(exc).__name__}): {exc}")
            log.exception("training thread failed")
        finally:
            if self._stopped_epoch is not None:  # rendered after fit: Stop returns ~100 ms sooner
                self._render_plot()
                self._render_table()
                self.status.value = f'<span class="wb-muted">{esc(self._stopped_epoch.line())}</span>'
                self._stopped_epoch = None
            self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.step_button.disabled = self.train_button.disabled = running
        self.pause_button.disabled = self.stop_button.disabled = not running
        if not running and self.pause_button.value:
            self.pause_button.value = False

    def _on_pause(self, change) -> None:
        if change["new"]:
            self.session.pause()
            self.pause_button.description, self.pause_button.icon = "Resume", "play"
            self.status.value = '<span class="wb-muted">paused between batches</span>'
        else:
            self.session.resume()
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"

    # ---- session events (called in the training thread: assign traits only) ----------------------
    def _on_epoch_start(self, e: EpochStart) -> None:
        self._live, self._live_epoch = [], (e.epoch, e.num_batches)
        self.progress.max, self.progress.value = max(e.num_batches, 1), 0
        path = "cached features" if e.fast_path else "full forward"
        self.status.value = f'<span class="wb-muted">epoch {e.epoch}: {esc(path)} ({esc(e.path_reason)})</span>'

    def _on_batch(self, b: BatchEnd) -> None:
        self.progress.max, self.progress.value = b.num_batches, b.batch
        self._live.append((b.batch, b.loss))
        self.status.value = (f'<span class="wb-muted">epoch {b.epoch} · batch {b.batch}/{b.num_batches} · '
                             f'loss {b.loss:.4f} · {b.samples_per_s:,.0f} samples/s · ETA {b.eta_s:.0f} s</span>')
        if time.perf_counter() >= self._next_plot:
            self._render_plot(live=True)

    def _on_epoch_end(self, r: EpochResult) -> None:
        self._live = []
        if r.stopped and self.training:
            self._stopped_epoch = r  # drawn once fit has returned (see _work)
            return
        self._render_plot()
        self._render_table()
        self.status.value = f'<span class="wb-muted">{esc(r.line())}</span>'

    def _on_error(self, e: ErrorEvent) -> None:
        self.message.show(e.message)

    def _on_fit_end(self, e: FitEnd) -> None:
        if e.reason == "early stopping":
            self.message.show("Early stopping: the valid loss stopped improving; the best epoch's weights "
                              "were restored.", "info")

    # ---- rendering ---------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        display_with_snapshot(self, self.snapshot)

    def _render_plot(self, live: bool = False) -> None:
        start = time.perf_counter()
        points = list(self._live) if live else []
        with self._render_lock:
            fig = self._figure.update(self.session.history, live=(*self._live_epoch, points) if points else None)
            png = plots.png(fig)
        self.plot.value = png
        if not live and self.session.history:
            self.snapshot.update(png)
        cost = time.perf_counter() - start
        self._next_plot = time.perf_counter() + max(PLOT_EVERY_S, cost / PLOT_BUDGET)

    def _render_table(self, last: int = 8) -> None:
        rows = [[r.epoch, f"{r.train_loss:.4f}", _num(r.valid_loss), _num(r.valid_accuracy, 3), _num(r.valid_macro_f1, 3),
                 f"{max(r.lrs.values(), default=0):.1e}", len(r.trainable), "cached" if r.fast_path else "full",
                 f"{r.epoch_time_s:.2f}", r.stopped or ""] for r in self.session.history[-last:]]
        header = ["epoch", "train loss", "valid loss", "valid acc", "macro-F1", "lr", "blocks", "path", "time s", "note"]
        self.table.value = table_html(header, rows) if rows else '<span class="wb-muted">no epochs yet</span>'

    def _show_path(self) -> None:
        fast, why = self.session.path()
        self.status.value = f'<span class="wb-muted">next epoch: {"cached features" if fast else "full forward"} ({esc(why)})</span>'

    # ---- settings ----------------------------------------------------------------------------
    def _build_controls(self) -> W.Widget:
        c = self.session.config
        lay = {"style": {"description_width": "110px"}, "layout": W.Layout(width="290px")}
        self.inputs: dict[str, W.ValueWidget] = {
            "optimizer": W.Dropdown(options=OPTIMIZERS, value=c.optimizer, description="optimizer", **lay),
            "lr": W.FloatLogSlider(value=self._lr_now(), base=10, min=-6, max=0, step=0.1, readout_format=".1e",
                                   description="learning rate", **lay),
            "schedule": W.Dropdown(options=SCHEDULES, value=c.schedule.name, description="LR schedule", **lay),
            "epochs": W.BoundedIntText(value=c.epochs, min=1, max=1000, description="planned epochs", **lay),
            "batch_size": W.Dropdown(options=sorted({8, 16, 32, 64, 128, 256, c.batch_size}), value=c.batch_size,
                                     description="batch size", **lay),
            "weight_decay": W.BoundedFloatText(value=c.weight_decay, min=0, max=1, step=1e-4, description="weight decay", **lay),
            "loss": W.Dropdown(options=LOSSES, value=c.loss, description="loss", **lay),
            "label_smoothing": W.FloatSlider(value=c.label_smoothing, min=0, max=0.5, step=0.05,
                                             description="label smoothing", **lay),
            "focal_gamma": W.FloatSlider(value=c.focal_gamma, min=0, max=5, step=0.5, description="focal gamma", **lay),
            "class_weights": W.Checkbox(value=c.class_weights == "balanced", description="balanced class weights",
                                        indent=False),
            "sampler": W.Dropdown(options=["random", "balanced"], value=c.sampler, description="sampler", **lay),
            "early_stopping": W.BoundedIntText(value=c.early_stopping or 0, min=0, max=100,
                                               description="early stop (0=off)", **lay),
            "head_dropout": W.FloatSlider(value=self._head_dropout(), min=0, max=0.9, step=0.05,
                                          description="head dropout", **lay),
        }
        if self.session.model.kind == "image":
            a = c.augment
            self.inputs.update({
                "flip": W.Checkbox(value=a.flip, description="flip", indent=False),
                "crop": W.Checkbox(value=a.crop, description="random crop", indent=False),
                "rotation": W.IntSlider(value=int(a.rotation), min=0, max=45, description="rotation °", **lay),
                "color": W.FloatSlider(value=a.color, min=0, max=0.5, step=0.05, description="colour jitter", **lay),
            })
        for name, w in self.inputs.items():
            w.add_class(f"wb-set-{name}")
            w.observe(lambda change, name=name: self._on_control(name, change["new"]), names="value")
        i = self.inputs
        optim = W.VBox([i["optimizer"], i["lr"], i["schedule"], i["epochs"], i["batch_size"]])
        loss = W.VBox([i["loss"], i["label_smoothing"], i["focal_gamma"], i["class_weights"], i["sampler"]])
        reg = [i["weight_decay"], i["head_dropout"], i["early_stopping"]]
        if "flip" in i:
            reg += [W.HBox([i["flip"], i["crop"]]), i["rotation"], i["color"]]
        box = W.Accordion(children=[W.HBox([optim, loss, W.VBox(reg)])], selected_index=None)
        box.set_title(0, "Settings: optimizer, learning rate, loss, regularisation")
        return box

    def _lr_now(self) -> float:
        """The head's LR for the next epoch (lr=None: the automatic choice for the path)."""
        return self.session.next_lrs()[self.session.model.block_names[-1]]

    def _head_dropout(self) -> float:
        head = self.session.model.head
        drops = [m.p for m in head.modules() if type(m).__name__ == "Dropout"]
        return float(drops[0]) if drops else 0.0

    @guarded()
    def _on_control(self, name: str, value) -> None:
        if self._syncing:
            return
        try:
            self.session.configure(**self._setting(name, value))
        except WorkbenchError:
            self._sync_controls()  # back to what the session holds: one source of truth
            raise
        if self.training:
            self.message.show(f"{name} changes from the next epoch.", "info")
        self._show_path()

    def _setting(self, name: str, value) -> dict:
        c = self.session.config
        if name == "schedule":
            return {"schedule": {"name": value, "step_epochs": max(1, c.epochs // 3)}}
        if name == "class_weights":
            return {"class_weights": "balanced" if value else None}
        if name == "early_stopping":
            return {"early_stopping": value or None}
        if name in ("flip", "crop", "rotation", "color"):
            a = c.augment
            new = {"flip": a.flip, "crop": a.crop, "rotation": a.rotation, "color": a.color, name: value}
            return {"augment": new}
        return {name: value}

    def _sync_controls(self) -> None:
        c, self._syncing = self.session.config, True
        try:
            values = {"optimizer": c.optimizer, "lr": self._lr_now(), "schedule": c.schedule.name, "epochs": c.epochs,
                      "batch_size": c.batch_size, "weight_decay": c.weight_decay, "loss": c.loss,
                      "label_smoothing": c.label_smoothing, "focal_gamma": c.focal_gamma,
                      "class_weights": c.class_weights == "balanced", "sampler": c.sampler,
                      "early_stopping": c.early_stopping or 0, "head_dropout": self._head_dropout(),
                      "flip": c.augment.flip, "crop": c.augment.crop, "rotation": int(c.augment.rotation),
                      "color": c.augment.color}
            for name, w in self.inputs.items():
                if name == "batch_size" and values[name] not in w.options:
                    w.options = sorted({*w.options, values[name]})
                w.value = values[name]
        finally:
            self._syncing = False


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
