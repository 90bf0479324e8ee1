"""What a distillation achieved: the student against its teacher on the valid split.

Accuracy of each, top-1 agreement (the share of valid samples where the student predicts what
the teacher predicts), the mean KL divergence from the teacher's softmax to the student's,
parameters, and CPU latency (a batch of 32 valid samples, both models timed in turns on float32
CPU copies). Computed once when the run ends (from the models as they are then).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.measure import LATENCY_BATCH, accuracy, agreement, cpu_latency_ms, forward_fn, latency_input, parameter_count
from .distil import soft_kl, split_logits, teacher_inputs

KINDS = ("teacher_right", "student_right", "both_wrong")  # disagreements(kind)


@dataclass(frozen=True)
class DistillReport:
    """The student against its teacher on the valid split (see the module docstring)."""

    labels: np.ndarray
    teacher_logits: np.ndarray
    student_logits: np.ndarray
    teacher_params: int
    student_params: int
    teacher_latency_ms: float
    student_latency_ms: float
    temperature: float
    alpha: float
    epochs: int  # the student's epochs when measured
    classes: tuple[str, ...]
    teacher_name: str
    student_name: str

    @classmethod
    def measure(cls, run: Any) -> DistillReport:
        """Measure a finished `Distillation` (train.distil)."""
        from ..models.export import cpu_copy

        teacher, student = run.teacher, run.student
        data = student.data  # the teacher's, or the transfer set the student trained on
        t = split_logits(teacher, "valid", "teacher logits (valid)", report_to=student,
                         pipeline=teacher_inputs(teacher, data)).numpy()
        s = split_logits(student, "valid", "student logits (valid)", report_to=student).numpy()
        done = student.events.progress("CPU latency", 1)
        done(0)
        modules = {"teacher": cpu_copy(teacher.model.module).eval(), "student": cpu_copy(student.model.module).eval()}
        models = {"teacher": teacher.model, "student": student.model}
        forwards = {k: forward_fn(modules[k], models[k].kind, latency_input(data, models[k], LATENCY_BATCH))
                    for k in modules}
        latency = cpu_latency_ms(forwards, repeats=3)
        done(1)
        return cls(labels=np.asarray(data.valid.labels, dtype=np.int64), teacher_logits=t, student_logits=s,
                   teacher_params=parameter_count(teacher.model.module),
                   student_params=parameter_count(student.model.module),
                   teacher_latency_ms=latency["teacher"], student_latency_ms=latency["student"],
                   temperature=run.temperature, alpha=run.alpha, epochs=student.epoch,
                   classes=tuple(str(c) for c in data.classes), teacher_name=teacher.name,
                   student_name=student.name)

    # ---- numbers ----------------------------------------------------------------------------------
    @property
    def teacher_accuracy(self) -> float:
        return accuracy(self.teacher_logits, self.labels)

    @property
    def student_accuracy(self) -> float:
        return accuracy(self.student_logits, self.labels)

    @property
    def agreement(self) -> float:
        """Top-1 agreement: the share of valid samples where student and teacher predict the same class."""
        return agreement(self.teacher_logits, self.student_logits)

    @property
    def kl(self) -> float:
        """Mean KL(teacher softmax || student softmax) on the valid split, at T=1 (nats)."""
        return float(soft_kl(self.teacher_logits, self.student_logits).mean())

    @property
    def speedup(self) -> float:
        """Teacher latency / student latency on the CPU (> 1: the student is faster)."""
        return self.teacher_latency_ms / max(self.student_latency_ms, 1e-9)

    def disagreements(self, kind: str | None = None) -> np.ndarray:
        """Valid positions where the two predict different classes; kind: "teacher_right" (the student
        is wrong there), "student_right", "both_wrong", or None for all of them."""
        t, s = self.teacher_logits.argmax(1), self.student_logits.argmax(1)
        differ = t != s
        if kind is None:
            return np.flatnonzero(differ)
        masks = {"teacher_right": differ & (t == self.labels), "student_right": differ & (s == self.labels),
                 "both_wrong": differ & (t != self.labels) & (s != self.labels)}
        if kind not in masks:
            from ..errors import ConfigError

            raise ConfigError(f"kind={kind!r} is unknown: use one of {', '.join(KINDS)}, or None for all.")
        return np.flatnonzero(masks[kind])

    def table(self):
        """A DataFrame, one row per model: accuracy, agreement with the teacher, KL, parameters, latency."""
        import pandas as pd

        rows = {
            "teacher": {"model": self.teacher_name, "accuracy": self.teacher_accuracy, "agreement": 1.0, "KL": 0.0,
                        "params": self.teacher_params, "latency_ms": self.teacher_latency_ms},
            "student": {"model": self.student_name, "accuracy": self.student_accuracy, "agreement": self.agreement,
                        "KL": self.kl, "params": self.student_params, "latency_ms": self.student_latency_ms},
        }
        return pd.DataFrame.from_dict(rows, orient="index")

    def summary(self) -> str:
        return (f"student {self.student_accuracy:.3f} vs teacher {self.teacher_accuracy:.3f} accuracy; agrees on "
                f"{self.agreement:.1%} of valid samples; KL {self.kl:.3f}; {_params(self.student_params)} vs "
                f"{_params(self.teacher_params)} parameters; {self.student_latency_ms:.1f} vs "
                f"{self.teacher_latency_ms:.1f} ms per {LATENCY_BATCH} samples on the CPU ({self.speedup:.2f}x)")

    def rows(self) -> list[list[str]]:
        """The table as display strings (the view and the HTML repr)."""
        out = []
        for role, r in self.table().iterrows():
            out.append([role, str(r["model"]), f"{r['accuracy']:.3f}", f"{r['agreement']:.3f}", f"{r['KL']:.3f}",
                        _params(r["params"]), f"{r['latency_ms']:.1f}"])
        return out

    HEADER = ("", "model", "accuracy", "agrees with teacher", "KL", "parameters", f"CPU ms / {LATENCY_BATCH}")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows())
        note = html.escape(f"T={self.temperature:g}, alpha={self.alpha:g}, {self.epochs} student epochs; "
                           f"{len(self.disagreements())} valid samples where they disagree.")
        return f"<table><tr>{head}</tr>{body}</table><p>{note}</p>"

    def __repr__(self) -> str:
        return f"DistillReport({self.summary()})"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"
