"""Distillation: a small student trained on a teacher's logits vs the same student trained on the labels
alone, paired over seeds. Prints JSON.

Teacher: the bundled, ImageNet-pretrained EfficientNet-Lite0 (3.4 M parameters with a 10-class head)
at 48 px, its last two blocks fine-tuned for 4 epochs (AdamW, lr 2e-3, lr_decay 0.5) on mnist-5k
(`--train` digits per class, 50 valid per class). Student: a 3-layer CNN of 24 k parameters at 28 px
(`Model.from_module`), from random weights: nothing offline ships a small pretrained digit model, and
a from-scratch student is the textbook case. Each seed builds the student with that seed and trains it
`--epochs` epochs (AdamW one-cycle to 3e-3, batch 32) twice: `teacher.distil(student, temperature,
alpha)` and a plain Session with the same settings. --augment: teacher and students with augmentation
(rotation 10 degrees, random crops; the teacher then reads each batch's augmented pixels). Reported:
the teacher's accuracy, each arm's valid accuracy per seed, the paired difference (distilled - plain)
with its mean and standard error, agreement with the teacher, parameters and CPU latency.

    python benchmarks/distillation.py [--train 50] [--epochs 20] [--temperature 2] [--alpha 0.5] [--seeds 3] [--augment]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from common import emit

import workbench as wb
from workbench.models import ImagePreprocess


def small_cnn(num_classes: int, seed: int) -> wb.Model:
    """A 3-layer CNN (24 k parameters) for 28 px digits, random weights drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, num_classes))  # fmt: skip
    return wb.Model.from_module(net, num_classes=num_classes, name="small CNN",
                                preprocess=ImagePreprocess(size=28, mean=(0.5,) * 3, std=(0.5,) * 3), seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50, help="train digits per class")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--augment", action="store_true", help="teacher and students with augmentation")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    data = wb.load_data("mnist-5k").subset(train=args.train, valid=50, seed=0)
    augment = dict(rotation=10.0, crop=True) if args.augment else None
    teacher = wb.Session(data, wb.load_backbone("efficientnet_lite0", data.num_classes, image_size=48), seed=0,
                         freeze=wb.last(2), optimizer="adamw", lr=2e-3, lr_decay=0.5, batch_size=32, name="teacher",
                         augment=augment)
    teacher.fit(4, progress=False)
    settings = dict(lr=3e-3, schedule="onecycle", batch_size=32, epochs=args.epochs, augment=augment)
    runs = []
    for seed in range(args.seeds):
        d = teacher.distil(small_cnn(data.num_classes, seed), temperature=args.temperature, alpha=args.alpha,
                           progress=False, seed=seed, **settings)
        plain = wb.Session(data, small_cnn(data.num_classes, seed), freeze="full", seed=seed, **settings)
        plain.fit(args.epochs, progress=False)
        y = data.valid.labels
        teacher_pred = d.report.teacher_logits.argmax(1)
        plain_pred = plain.predictions.logits.argmax(1)
        runs.append({"seed": seed, "distilled": round(d.student_accuracy, 4),
                     "plain": round(float((plain_pred == y).mean()), 4),
                     "agreement_distilled": round(d.agreement, 4),
                     "agreement_plain": round(float((plain_pred == teacher_pred).mean()), 4)})
    diff = np.array([r["distilled"] - r["plain"] for r in runs])
    emit("distillation", {
        "data": f"mnist-5k, {args.train} train + 50 valid digits per class",
        "teacher": {"model": "efficientnet_lite0 48 px, last 2 blocks, 4 epochs",
                    "accuracy": round(teacher.history[-1].valid_accuracy, 4), "params": d.teacher_params,
                    "cpu_ms_per_32": round(d.teacher_latency_ms, 2)},
        "student": {"model": "small CNN 28 px, random init", "params": d.student_params,
                    "cpu_ms_per_32": round(d.student_latency_ms, 2), "epochs": args.epochs},
        "augment": augment, "temperature": args.temperature, "alpha": args.alpha, "seeds": runs,
        "distilled_minus_plain": {"mean": round(float(diff.mean()), 4),
                                  "se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4) if len(diff) > 1 else None},
        "target_met": bool(diff.mean() > 0),
        "seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
