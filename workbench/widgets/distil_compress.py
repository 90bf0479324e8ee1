"""DistilCompressView: distil the session into a smaller student, or compress it, and see what it cost.

Two sub-tabs over one Session (the teacher / the original):

- **Distil**: a student backbone (a name, with its input size or max tokens), temperature, alpha,
  epochs and what trains; **Distil** runs `Distillation.prepare(...).run()` in a background thread
  (the student's epochs report through its own events, **Stop** stops it), then shows the student
  against the teacher (accuracy, agreement, KL, parameters, CPU latency) and the valid samples where
  they disagree, as the explorer's cards. The student is a run of its own (the Compare tab lists it).
- **Compress**: int8 or magnitude pruning; **Compress** measures the copy against the original
  (size on disk, CPU latency, accuracy, agreement) and adds a row to the table.

Every button has a public twin (`distil()`, `stop()`, `show_disagreements(kind)`, `compress()`).
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..analysis import ErrorAnalysis
from ..errors import ConfigError
from ..models.measure import LATENCY_BATCH
from ..models.registry import list_backbones
from ..train.distil import Distillation
from .common import STYLE, MessageBox, ProgressLine, TASK_WORDS, esc, fmt_params, guarded, start_worker, table_html
from .gallery import ThumbnailCache, gallery_html

DISAGREEMENTS = (("teacher right, student wrong", "teacher_right"), ("student right, teacher wrong", "student_right"),
                 ("both wrong, differently", "both_wrong"))
DISTIL_WORDS = {
    "teacher logits (train)": "the teacher reads every train sample once: batch {n}",
    "teacher logits (valid)": "measuring: the teacher on the valid split, batch {n}",
    "student logits (valid)": "measuring: the student on the valid split, batch {n}",
    "CPU latency": "measuring: CPU latency of both models",
}


class DistilCompressView(W.VBox):
    """`DistilCompressView(session)`: distil `session` into a student, or compress it (see the module)."""

    def __init__(self, session) -> None:
        self.session = session
        self.run: Distillation | None = None  # the latest distillation
        self.compressions: list = []  # Compressed copies made here, in order
        self.worker = None
        self.message = MessageBox()
        kind, pre = session.model.kind, session.model.preprocess
        names = [n for n in list_backbones(kind)]
        self.student_name = W.Combobox(options=names, value=session.model.name, description="student",
                                       ensure_option=False, layout=W.Layout(width="330px"))
        self.student_name.add_class("wb-student-name")
        smaller = max(8, pre.size // 2) if kind == "image" else pre.max_length
        self.student_size = W.BoundedIntText(value=smaller, min=1, max=4096, layout=W.Layout(width="190px"),
                                             description="input px" if kind == "image" else "max tokens")
        self.pretrained = W.Checkbox(value=True, description="pretrained weights", indent=False)
        self.temperature = W.FloatSlider(value=4.0, min=1.0, max=10.0, step=0.5, description="temperature",
                                       style={"description_width": "initial"})
        self.alpha = W.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.05, description="alpha (soft)",
                                 style={"description_width": "initial"})
        self.epochs = W.IntSlider(value=3, min=1, max=20, description="epochs")
        self.freeze = W.Dropdown(options=[("every block (full)", "full"), ("head only", "head")], value="full",
                                 description="trains", layout=W.Layout(width="260px"))
        self.distil_button = W.Button(description="Distil", button_style="primary", icon="graduation-cap")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.progress = ProgressLine()
        self.result = W.HTML()
        self.result.add_class("wb-distil-result")
        self.which = W.ToggleButtons(options=DISAGREEMENTS, value="teacher_right", style={"button_width": "210px"})
        self.gallery = W.HTML()
        self.gallery.add_class("wb-distil-gallery")
        self.disagreement_box = W.VBox([self.which, self.gallery], layout=W.Layout(display="none"))
        hint = W.HTML('<span class="wb-muted">The student learns from the teacher\'s softened outputs (weight alpha) '
                      "and the labels (1 - alpha); the teacher sees the same samples, augmented the same way.</span>")
        distil_tab = W.VBox([
            hint, W.HBox([self.student_name, self.student_size, self.pretrained]).add_class("wb-wrap-row"),
            W.HBox([self.temperature, self.alpha, self.epochs, self.freeze]).add_class("wb-wrap-row"),
            W.HBox([self.distil_button, self.stop_button]).add_class("wb-wrap-row"), self.progress, self.result,
            self.disagreement_box])  # fmt: skip
        self.method = W.ToggleButtons(options=[("int8 (dynamic)", "int8"), ("magnitude pruning", "prune")],
                                      value="int8", style={"button_width": "150px"})
        self.amount = W.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="prune share",
                                    disabled=True, readout_format=".0%")
        self.compress_button = W.Button(description="Compress", button_style="primary", icon="compress")
        self.compress_status = W.HTML()
        self.compress_status.add_class("wb-compress-status")
        self.compress_table = W.HTML()
        self.compress_table.add_class("wb-compress-table")
        compress_tab = W.VBox([
            W.HTML('<span class="wb-muted">A compressed copy on the CPU; the session keeps its model. int8 quantizes '
                   "the Linear layers (transformers: most of the work); pruning zeroes the smallest weights.</span>"),
            W.HBox([self.method, self.amount, self.compress_button]).add_class("wb-wrap-row"),
            self.compress_status, self.compress_table])  # fmt: skip
        self.tabs = W.Tab(children=[distil_tab, compress_tab])
        self.tabs.set_title(0, "Distil")
        self.tabs.set_title(1, "Compress")
        self.tabs.add_class("wb-subtabs")
        self.distil_button.on_click(lambda _: self.distil())
        self.stop_button.on_click(lambda _: self.stop())
        self.compress_button.on_click(lambda _: self.compress())
        self.which.observe(lambda _: self.show_disagreements(), names="value")
        self.method.observe(lambda c: setattr(self.amount, "disabled", c["new"] != "prune"), names="value")
        self._thumbs = ThumbnailCache(session.data) if kind == "image" else None
        super().__init__([W.HTML(STYLE), self.tabs, self.message], layout=W.Layout(width="auto"))
        self.add_class("wb-view")
        self.add_class("wb-distil-compress")

    def __repr__(self) -> str:  # a saved notebook without widget state shows this
        return f"Distil & compress widget (run the notebook to use it): teacher {self.session!r}"

    # ---- distillation -------------------------------------------------------------------------------
    def student_model(self):
        """The student the controls describe, built for the teacher's classes."""
        from ..models import load_backbone

        name = self.student_name.value.strip()
        if not name:
            raise ConfigError("Name a student backbone, e.g. the teacher's own at a smaller input size.")
        size = {"image_size" if self.session.model.kind == "image" else "max_length": int(self.student_size.value)}
        return load_backbone(name, self.session.model.num_classes, pretrained=self.pretrained.value, **size)

    @guarded()
    def distil(self, background: bool = True) -> Distillation | None:
        """What Distil does: build the student, then train it on the teacher's logits (in a thread)."""
        if self.worker is not None and self.worker.is_alive():
            raise ConfigError("A distillation is running; wait for it or press Stop.")
        self.message.clear()
        self.progress.show("building the student…")
        try:
            run = Distillation.prepare(self.session, self.student_model(), temperature=self.temperature.value,
                                       alpha=self.alpha.value, epochs=self.epochs.value, freeze=self.freeze.value)
        except Exception:
            self.progress.show("")
            raise
        self.run = run
        for event in ("progress", "epoch_start", "batch_end", "epoch_end"):
            run.student.on(event, self._on_student_event)
        self.distil_button.disabled, self.stop_button.disabled = True, False
        self.result.value, self.disagreement_box.layout.display = "", "none"
        self.progress.show(f"distilling into {run.student.name}…")
        if not background:
            self._train(run)
            return run
        self.worker = start_worker(self._train, run, name="workbench-distil", stop=run.student.stop)
        return run

    def stop(self) -> None:
        """What Stop does: the student stops after its current batch (its steps so far are kept)."""
        if self.run is not None:
            self.run.student.stop()

    def _train(self, run: Distillation) -> None:
        try:
            run.run(progress=False)
        except Exception as exc:  # shown in place; the student keeps what it learnt
            self.message.show(str(exc))
        finally:
            self.distil_button.disabled, self.stop_button.disabled = False, True
        if run.report is None:
            self.progress.show("stopped before the first epoch: nothing to measure", style="warning")
            return
        self.progress.show(f"done: {run.student.epoch} epoch(s); the student is the run {run.student.name!r} "
                           "in the Compare tab", 1, 1, style="success")
        self._show_report()

    def _on_student_event(self, event) -> None:
        kind = type(event).__name__
        if kind == "Progress":
            words = DISTIL_WORDS.get(event.task) or TASK_WORDS.get(event.task, event.task + ": {n}")
            self.progress.show(words, event.done, event.total, event.eta_s)
        elif kind == "EpochStart":
            self.progress.show(f"student epoch {event.epoch}/{self.run.epochs}: batch {{n}}", 0, event.num_batches)
        elif kind == "BatchEnd":
            self.progress.show(f"student epoch {event.epoch}/{self.run.epochs}: batch {{n}} · loss {event.loss:.3f}",
                               event.batch, event.num_batches, event.eta_s)
        elif kind == "EpochResult" and event.valid_accuracy is not None:
            self.progress.show(f"student epoch {event.epoch}: valid accuracy {event.valid_accuracy:.3f}",
                               event.epoch, self.run.epochs)

    def _show_report(self) -> None:
        r = self.run.report
        rows = [[role, row["model"], f"{row['accuracy']:.3f}", f"{row['agreement']:.3f}", f"{row['KL']:.3f}",
                 fmt_params(row["params"]), f"{row['latency_ms']:.1f}"] for role, row in r.table().iterrows()]
        self.result.value = (table_html(list(r.HEADER), rows) +
                             f'<div class="wb-muted">{esc(r.summary())}</div>')
        self.disagreement_box.layout.display = ""
        self.show_disagreements()

    def show_disagreements(self, kind: str | None = None) -> None:
        """The valid samples where student and teacher disagree: "teacher_right" (the cards show the
        student's wrong predictions), "student_right" (the teacher's), or "both_wrong" (the student's)."""
        if kind is not None and kind != self.which.value:
            self.which.value = kind  # its observer draws
            return
        r = self.run.report if self.run is not None else None
        if r is None:
            return
        kind = self.which.value
        ids = r.disagreements(kind)
        shown = r.teacher_logits if kind == "student_right" else r.student_logits
        who = "teacher" if kind == "student_right" else "student"
        analysis = ErrorAnalysis.from_predictions(r.labels, shown, self.session.data.classes, ids=np.arange(len(r.labels)))
        title = f"{dict((v, k) for k, v in DISAGREEMENTS)[kind]} (the cards show the {who}'s predictions)"
        self.gallery.value = gallery_html(analysis, self.session.data, ids, self._thumbs, title, limit=30)

    # ---- compression ----------------------------------------------------------------------------------
    @guarded()
    def compress(self, background: bool = True):
        """What Compress does: a compressed copy, measured against the original; a row in the table."""
        if self.worker is not None and self.worker.is_alive():
            raise ConfigError("Wait for the running job to end (or press Stop) before compressing.")
        method = self.method.value
        amount = self.amount.value if method == "prune" else None
        from ..models.compress import check_method

        check_method(method, amount)
        self.message.clear()
        n = len(self.session.data.valid)
        self.compress_status.value = (f'<span class="wb-status-text">Compressing ({esc(method)}), then measuring size, '
                                      f"CPU latency and accuracy on {n:,} valid samples…</span>")
        self.compress_button.disabled = True
        if not background:
            return self._compress(method, amount)
        self.worker = start_worker(self._compress, method, amount, name="workbench-compress")
        return None

    def _compress(self, method: str, amount):
        try:
            c = self.session.compress(method, amount=amount)
        except Exception as exc:
            self.compress_status.value = ""
            self.message.show(str(exc))
            return None
        finally:
            self.compress_button.disabled = False
        self.compressions.append(c)
        self.compress_status.value = f'<span class="wb-status-text">{esc(c.report.summary())}</span>'
        self._show_compressions()
        return c

    def _show_compressions(self) -> None:
        first = self.compressions[0].report
        rows = [["original (float32)", f"{first.original_bytes[0] / 1e6:.1f}", f"{first.original_bytes[1] / 1e6:.1f}",
                 f"{first.original_latency_one_ms:.1f}", "1.00x", f"{first.original_latency_ms:.1f}", "1.00x",
                 f"{first.original_accuracy:.3f}", "1.000"]]
        for c in self.compressions:
            r = c.report
            label = "int8 (dynamic)" if c.method == "int8" else f"pruned {c.amount:.0%}"
            rows.append([label, f"{r.compressed_bytes[0] / 1e6:.1f}", f"{r.compressed_bytes[1] / 1e6:.1f}",
                         f"{r.compressed_latency_one_ms:.1f}", f"{r.speedup_one:.2f}x", f"{r.compressed_latency_ms:.1f}",
                         f"{r.speedup:.2f}x", f"{r.compressed_accuracy:.3f}", f"{r.agreement:.3f}"])
        self.compress_table.value = table_html(
            ["model", "MB on disk", "MB gzipped", "CPU ms, 1 sample", "speed", f"CPU ms / {LATENCY_BATCH}", "speed",
             "accuracy", "agrees with original"],
            rows) + ('<div class="wb-muted">CPU time for one sample at a time (latency) and for a batch of '
                     f"{LATENCY_BATCH} (throughput); speed is against the original, each row timed in turns with its "
                     "own float copy (the original row shows the first one).</div>")
