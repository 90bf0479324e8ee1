"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a student learns from a trained teacher's logits.

Per training sample the student minimises

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, label)

(T^2 keeps the soft term's gradients at the scale of the hard one as T grows). The teacher sees
what the student sees: when the student's training inputs are fixed (texts, images without
augmentation, cached features) the teacher's logits are computed once per train sample from the
same sample, prepared for the teacher; with augmentation the teacher runs on every batch's
augmented pixels themselves (resized and renormalised when its input size or normalisation
differ), so both see the same crops. Validation uses the student's plain loss, so its curves
compare with a student trained without a teacher.

`distil(..., data=other)` trains the student on another data set with the teacher's classes (a
transfer set): e.g. many samples only the teacher has labelled, with alpha=1 so that their own
labels are never used. The teacher reads them prepared its own way (its size, its tokenizer).

The student is an ordinary Session (its own history, a run in the Compare tab) whose epochs, while
distilling, train on that loss: `teacher_session.distil(...)` returns a `Distillation` holding it
and what it measured (accuracy, top-1 agreement with the teacher, KL, parameters, CPU latency).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..validate import integer, jsonable, number
from .loop import EpochPlan, rows_of
from .pipeline import Pipeline
from .session import Session
from .state import freeze_spec_to_json

DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.7


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float, hard: Callable | None = None) -> torch.Tensor:
    """Per-sample alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * hard(student, labels),
    where p^T = softmax(logits / T) and `hard` is the student's own criterion (cross-entropy by default)."""
    s, t = student_logits.float(), teacher_logits.float()
    kl = F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1), log_target=True,
                  reduction="none").sum(1)
    hard_loss = F.cross_entropy(s, labels, reduction="none") if hard is None else hard(s, labels)
    return alpha * temperature * temperature * kl + (1.0 - alpha) * hard_loss


def soft_kl(teacher_logits: np.ndarray, student_logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """KL(softmax(teacher / T) || softmax(student / T)) per row, in nats."""
    t = torch.as_tensor(teacher_logits, dtype=torch.float64) / temperature
    s = torch.as_tensor(student_logits, dtype=torch.float64) / temperature
    return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="none").sum(1).numpy()


# ---- the teacher's side of every batch --------------------------------------------------------------
def pixel_converter(src, dst) -> Callable[[torch.Tensor], torch.Tensor]:
    """Normalised pixels prepared for `src` (an ImagePreprocess) -> the same pixels prepared for
    `dst`: undo src's normalisation, resize to dst's size (bilinear, antialiased), normalise as dst."""
    if (src.size, tuple(src.mean), tuple(src.std)) == (dst.size, tuple(dst.mean), tuple(dst.std)):
        return lambda x: x

    def scale(v) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) * 255

    ms, ss, md, sd = scale(src.mean), scale(src.std), scale(dst.mean), scale(dst.std)

    def convert(x: torch.Tensor) -> torch.Tensor:
        pixels = x.float() * ss.to(x.device) + ms.to(x.device)
        if src.size != dst.size:
            pixels = F.interpolate(pixels, size=(dst.size, dst.size), mode="bilinear", align_corners=False,
                                   antialias=True)
        return (pixels - md.to(x.device)) / sd.to(x.device)

    return convert


def split_logits(session: Session, split: str, task: str | None = None,
                 report_to: Session | None = None, pipeline: Pipeline | None = None) -> torch.Tensor:
    """A session's logits (N, K) for every sample of `split`, in sample order, its model in eval mode
    (each module's mode given back), prepared as its valid split. Progress goes to `report_to`'s events.
    `pipeline`: another data set's inputs for this session's model (teacher_inputs), else its own."""
    pipeline = pipeline or session.pipeline
    n = len(getattr(pipeline.data, split))
    order = pipeline.order(split, session.placement.eval_batch(session.config), None, shuffle=False, by_length=True)
    pipeline.prefetch(split, order)
    report = (report_to or session).events.progress(task or f"logits ({split})", len(order))
    out: torch.Tensor | None = None
    modes = [(m, m.training) for m in session.model.module.modules()]
    session.model.module.eval()
    try:
        report(0)
        with torch.no_grad():
            for b, idx in enumerate(order):
                logits = session.model.logits(pipeline.batch(split, idx)).float().cpu()
                if out is None:
                    out = torch.empty((n, logits.shape[1]), dtype=torch.float32)
                out[idx] = logits
                report(b + 1)
    finally:
        for m, training in modes:
            m.training = training
    assert out is not None
    return out


def teacher_inputs(teacher: Session, data: Any) -> Pipeline:
    """The teacher's inputs for `data`: its own pipeline for its own data, else `data` prepared as
    the teacher's model reads it (its image size and normalisation, or its tokenizer)."""
    if data is teacher.data:
        return teacher.pipeline
    return Pipeline(data, teacher.model, teacher.device, teacher.config.channels_last)


def check_transfer_data(teacher: Session, data: Any) -> Any:
    """The student's data: the teacher's (None), or another data set of the same kind and classes,
    e.g. more samples that only the teacher has labelled (with alpha=1 their labels are never used)."""
    from ..data import Data

    if data is None:
        return teacher.data
    if not isinstance(data, Data):
        raise ConfigError(f"data must be a wb.Data (wb.load_data(...), wb.Data.from_folder(...)); got {type(data).__name__}.")
    t = teacher.data
    if data.kind != t.kind:
        raise ConfigError(f"data holds {data.kind}s but the teacher {teacher.model.name!r} reads {t.kind}s; "
                          f"pass {t.kind} data with the teacher's classes.")
    if list(data.classes) != list(t.classes):
        raise ConfigError(f"data's classes {list(data.classes)[:6]} are not the teacher's {list(t.classes)[:6]} (same "
                          "names, same order); the student learns the teacher's outputs, class by class. Build the "
                          "data with the teacher's classes.")
    if len(data.train) == 0 or len(data.valid) == 0:
        raise ConfigError(f"data has {len(data.train)} train and {len(data.valid)} valid samples; the student needs "
                          "both (it trains on train and is compared with the teacher on valid).")
    return data


class TeacherSignal:
    """The teacher's logits for each training batch of the student (see the module docstring)."""

    def __init__(self, teacher: Session, student: Session) -> None:
        self.teacher, self.student = teacher, student
        self.fixed = not (student.model.kind == "image" and student.config.augment.active)
        self.train_logits: torch.Tensor | None = None
        self.current: torch.Tensor | None = None  # the batch being trained: its teacher logits
        if not self.fixed:
            self.convert = pixel_converter(student.model.preprocess, teacher.model.preprocess)

    def wrap(self, plan: EpochPlan, temperature: float, alpha: float) -> EpochPlan:
        """The epoch's plan with inputs that also fetch the teacher's logits, and the distillation loss."""
        if self.fixed and self.train_logits is None:
            logits = split_logits(self.teacher, "train", "teacher logits (train)", report_to=self.student,
                                  pipeline=teacher_inputs(self.teacher, self.student.data))
            self.train_logits = logits.to(self.student.device)
        inputs, lookup = plan.inputs, rows_of(self.train_logits) if self.fixed else None

        def inputs_and_teacher(idx: torch.Tensor):
            x = inputs(idx)
            self.current = lookup(idx) if lookup is not None else self.live(x)
            return x

        hard = plan.criterion
        plan.inputs = inputs_and_teacher
        plan.criterion = lambda logits, y: distillation_loss(logits, self.current, y, temperature, alpha, hard)
        return plan

    @torch.no_grad()
    def live(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits on these (augmented) student pixels."""
        teacher = self.teacher
        return teacher.model.logits(self.convert(x).to(teacher.device)).float().to(self.student.device)


class StudentSession(Session):
    """A Session whose epochs train on the distillation loss while `signal` is set (during distil);
    otherwise it trains as any Session does."""

    signal: TeacherSignal | None = None
    distil_settings: tuple[float, float] = (DEFAULT_TEMPERATURE, DEFAULT_ALPHA)

    def _plan(self, epoch: int, fast: bool, criterion, gen: torch.Generator) -> EpochPlan:
        plan = super()._plan(epoch, fast, criterion, gen)
        return plan if self.signal is None else self.signal.wrap(plan, *self.distil_settings)


# ---- checks, then the run -------------------------------------------------------------------------
def student_model(teacher: Session, student_backbone: Any, pretrained: bool = True):
    """The student's Model: a workbench Model, or a registry name built for the teacher's classes at
    the teacher's input size / max_length. Refused: another kind, other classes, the teacher itself."""
    from ..models import Model, load_backbone

    t = teacher.model
    if isinstance(student_backbone, str):
        size = {"image_size": t.preprocess.size} if t.kind == "image" else {"max_length": t.preprocess.max_length}
        model = load_backbone(student_backbone, t.num_classes, pretrained=pretrained, **size)
    elif isinstance(student_backbone, Model):
        model = student_backbone
    else:
        raise ConfigError(f"student_backbone must be a backbone name (e.g. {t.name!r}) or a wb.Model "
                          f"(wb.load_backbone(..., num_classes={t.num_classes})); "
                          f"got {type(student_backbone).__name__}.")
    if model.kind != t.kind:
        raise ConfigError(f"The student {model.name!r} is an {model.kind} model but the teacher {t.name!r} is an "
                          f"{t.kind} model; a student must read the same kind of data. Pick a {t.kind} backbone "
                          f"(wb.list_backbones({t.kind!r})).")
    if model.num_classes != t.num_classes:
        raise ConfigError(f"The student has {model.num_classes} outputs but the teacher has {t.num_classes} classes; "
                          f"build it with num_classes={t.num_classes} (the teacher's data.num_classes).")
    if model is t or model.module is t.module:
        raise ConfigError("The student is the teacher's own model; build a separate one, e.g. "
                          f"wb.load_backbone({t.name!r}, {t.num_classes}, ...), or a smaller backbone.")
    return model


def check_stop_at(stop_at: Any, epochs: int) -> tuple[int, int | None]:
    """(epochs to run, batches of the last one or None) for stop_at=(epoch, batch) or None."""
    if stop_at is None:
        return epochs, None
    if not isinstance(stop_at, (tuple, list)) or len(stop_at) != 2:
        raise ConfigError(f"stop_at must be (epoch, batch), e.g. (2, 10); got {stop_at!r}.")
    epoch = integer("stop_at epoch", stop_at[0], low=1, hint="stop_at=(epoch, batch).")
    batch = integer("stop_at batch", stop_at[1], low=0, hint="stop_at=(epoch, batch).")
    if epoch > epochs:
        raise ConfigError(f"stop_at epoch {epoch} is beyond the run's {epochs} epochs; pass stop_at=(epoch, batch) "
                          f"with epoch <= {epochs}.")
    return epoch, batch


class Distillation:
    """A distillation run: the teacher, the student Session and, once `run()` ended, what it measured.

    `teacher.distil(...)` prepares and runs one; a view prepares it first (`Distillation.prepare`) to
    subscribe to `student`'s events, then runs it in a thread and stops it with `student.stop()`.
    """

    def __init__(self, teacher: Session, student: StudentSession, temperature: float, alpha: float, epochs: int,
                 record: dict[str, Any]) -> None:
        self.teacher, self.student = teacher, student
        self.temperature, self.alpha, self.epochs = temperature, alpha, epochs
        self._record = record
        self.report = None  # DistillReport, after run()

    @classmethod
    def prepare(cls, teacher: Session, student_backbone: Any, *, temperature: float = DEFAULT_TEMPERATURE,
                alpha: float = DEFAULT_ALPHA, epochs: int = 3, freeze: Any = "full", name: str | None = None,
                pretrained: bool = True, data: Any = None, **settings: Any) -> Distillation:
        """Check everything and build the student Session (untrained); the teacher is not touched.
        `data`: what the student trains and is measured on (check_transfer_data); the teacher's by default."""
        temperature = number("temperature", temperature, low=0, low_open=True,
                             hint="The softmax temperature, > 0: 1 is the plain softmax, 2-8 is usual.")
        alpha = number("alpha", alpha, low=0, high=1, hint="The weight of the teacher's soft targets, in [0, 1].")
        epochs = integer("epochs", epochs, low=1, hint="Distillation epochs, e.g. 3.")
        if "epochs" in settings:
            raise ConfigError("Pass the number of epochs once, as distil(..., epochs=N).")
        if teacher.running:
            raise ConfigError(f"The teacher is busy {teacher.control.holder}; wait for it or stop it first.")
        if not teacher.history:
            raise ConfigError("The teacher has not been trained: its logits would teach nothing. Train it first "
                              "(teacher.fit(3) or teacher.fit_head()), then distil.")
        config = teacher.config
        student_settings = {"batch_size": config.batch_size, "seed": config.seed, "device": config.device,
                            **settings, "epochs": epochs}
        from .config import TrainConfig

        TrainConfig().replace(**student_settings)  # every setting checked before a model is built
        student_data = check_transfer_data(teacher, data)
        model = student_model(teacher, student_backbone, pretrained=pretrained)
        student = StudentSession(student_data, model, freeze=freeze,
                                 name=name or f"{model.name} distilled from {teacher.name}", **student_settings)
        student.distil_settings = (temperature, alpha)
        record = {"op": "distil", "model": copy.deepcopy(model.recipe), "model_name": model.name,
                  "temperature": temperature, "alpha": alpha, "epochs": epochs,
                  "freeze": freeze_spec_to_json(freeze), "name": student.name, "settings": jsonable(settings)}
        if student_data is not teacher.data:
            record.update(data=copy.deepcopy(student_data.recipe), data_name=student_data.name)
        return cls(teacher, student, temperature, alpha, epochs, record)

    def run(self, progress: bool | None = None, stop_at: tuple[int, int] | None = None, measure: bool = True
            ) -> Distillation:
        """Train the student `epochs` epochs on the teacher's logits (fewer if stopped; `stop_at=(epoch,
        batch)` stops there, as to_code replays a stopped run), then measure it against the teacher.
        The teacher is held (no training) meanwhile and keeps its weights and modes."""
        teacher, student = self.teacher, self.student
        if student.history or student.running:
            raise ConfigError("This distillation has already run; prepare a new one (teacher.distil(...)).")
        epochs, stop_after = check_stop_at(stop_at, self.epochs)
        teacher.control.acquire(f"teaching {student.name!r}")
        recording = copy.deepcopy(teacher.recording)
        modes = [(m, m.training) for m in teacher.model.module.modules()]
        try:
            teacher.model.module.eval()
            student.signal = TeacherSignal(teacher, student)
            student.fit(epochs, progress=progress, stop_after=stop_after)
        finally:
            student.signal = None
            for m, training in modes:
                m.training = training
            teacher.control.release()
            student.recording = recording + [self._entry()]
        if measure and student.history:
            from .distil_report import DistillReport

            self.report = DistillReport.measure(self)
        return self

    def _entry(self) -> dict[str, Any]:
        """The recording entry that replays what ran (to_code: `session = session.distil(...).student`)."""
        entry = dict(self._record)
        history = self.student.history
        last = history[-1] if history else None
        if last is None:
            entry["stop_at"] = [1, 0]
        elif last.stopped is not None:
            entry.update(stop_at=[len(history), last.batches], stopped=last.stopped)
        elif len(history) < self.epochs:
            entry["stop_at"] = [len(history) + 1, 0]
        return entry

    # ---- what it measured (DistillReport), at hand --------------------------------------------
    def __getattr__(self, name: str) -> Any:
        report = self.__dict__.get("report")
        if report is not None and not name.startswith("_") and hasattr(report, name):
            return getattr(report, name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}"
                             + ("" if report is not None else " (nothing measured yet: run() it first)"))

    def _repr_html_(self) -> str:
        return self.report._repr_html_() if self.report is not None else f"<pre>{self!r}</pre>"

    def __repr__(self) -> str:
        done = f"{self.student.epoch} epochs" if self.student.history else "not run yet"
        return (f"Distillation({self.teacher.model.name} -> {self.student.model.name}, T={self.temperature:g}, "
                f"alpha={self.alpha:g}, {done})")
