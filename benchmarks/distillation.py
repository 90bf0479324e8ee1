"""Distillation: a small student trained on a teacher's logits vs the same student trained on the labels
alone, paired over seeds. Prints JSON.

Default (text): Rotten Tomatoes, 300 train + 200 valid reviews per class. Teacher: the bundled MiniLM-L6
(22.6 M parameters) at 48 tokens, its last two layers fine-tuned for 3 epochs (AdamW, lr 1e-3, lr_decay
0.5). Student: `load_backbone("minilm-l6", depth=1)`, the teacher's own embeddings and first layer as
bundled with a new head (13.7 M parameters, most of them the embedding table), all of it trained for 4
epochs (AdamW one-cycle to 5e-4, batch 32). Each seed builds the student from that seed and trains it
twice on the same reviews: `teacher.distil(student, temperature, alpha)` (T=2, alpha=0.7) and a plain
Session with the same settings.

--data mnist-5k: the image setting (EfficientNet-Lite0 teacher at 48 px, last 2 blocks, 4 epochs on 50
digits per class; a 3-layer CNN student from random weights, `--width` channels, 20 epochs one-cycle to
3e-3; --augment for teacher and students). There the teacher (0.926) is no better than a 24 k CNN
trained on the labels, and distillation did not help: -0.001 +- 0.001 at width 16 (T=2, alpha=0.5),
-0.13 +- 0.02 at width 4 (1.8 k parameters, T=4, alpha=0.7), worse with augmentation.

--transfer N: the distilled student trains on N samples per class of the same data set (the same valid
split) through `distil(data=...)`, with --alpha 1 on the teacher's logits alone; the plain student keeps
the labelled subset. mnist-5k, --transfer 400 --alpha 1 --temperature 2 --epochs 10: +0.064 +- 0.008.

Reported: the teacher's accuracy, each arm's valid accuracy per seed, the paired difference (distilled -
plain) with its mean and standard error, agreement with the teacher, parameters and CPU latency.

    python benchmarks/distillation.py [--data rotten-tomatoes|mnist-5k] [--train N] [--epochs N]
        [--temperature 2] [--alpha 0.7] [--seeds 3] [--width 16] [--augment] [--transfer N]
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


def small_cnn(num_classes: int, seed: int, width: int = 16) -> wb.Model:
    """A 3-layer CNN with `width`, 2x and 4x channels (24 k parameters at width 16, 1.7 k at 4) for
    28 px digits, random weights drawn from `seed`."""
    a, b, c = width, 2 * width, 4 * width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(c, num_classes))  # fmt: skip
    return wb.Model.from_module(net, num_classes=num_classes, name="small CNN",
                                preprocess=ImagePreprocess(size=28, mean=(0.5,) * 3, std=(0.5,) * 3), seed=seed)


def text_setup(args: argparse.Namespace) -> tuple:
    """Rotten Tomatoes: MiniLM-L6 teacher (last 2 layers, 3 epochs), its own first layer as the student."""
    data = wb.load_data("rotten-tomatoes").subset(train=args.train or 300, valid=200, seed=0)
    args.full = lambda n: wb.load_data("rotten-tomatoes").subset(train=n, valid=200, seed=0)
    teacher = wb.Session(data, wb.load_backbone("minilm-l6", data.num_classes, max_length=48), seed=0,
                         freeze=wb.last(2), optimizer="adamw", lr=1e-3, lr_decay=0.5, batch_size=32, name="teacher")
    teacher.fit(3, progress=False)

    def student(seed: int) -> wb.Model:
        return wb.load_backbone("minilm-l6", data.num_classes, max_length=48, depth=1, seed=seed)

    settings = dict(lr=5e-4, schedule="onecycle", batch_size=32, epochs=args.epochs or 4)
    described = {"data": f"rotten-tomatoes, {args.train or 300} train + 200 valid reviews per class",
                 "teacher": "minilm-l6 (6 layers), 48 tokens, last 2 blocks, AdamW 1e-3 lr_decay 0.5, 3 epochs",
                 "student": "minilm-l6 depth=1 (embeddings + first layer as bundled, new head), all trained"}
    return data, teacher, student, settings, described


def image_setup(args: argparse.Namespace) -> tuple:
    """mnist-5k: EfficientNet-Lite0 teacher at 48 px (last 2 blocks, 4 epochs), a small CNN student."""
    data = wb.load_data("mnist-5k").subset(train=args.train or 50, valid=50, seed=0)
    args.full = lambda n: wb.load_data("mnist-5k").subset(train=n, valid=50, seed=0)
    augment = dict(rotation=10.0, crop=True) if args.augment else None
    teacher = wb.Session(data, wb.load_backbone("efficientnet_lite0", data.num_classes, image_size=48), seed=0,
                         freeze=wb.last(2), optimizer="adamw", lr=2e-3, lr_decay=0.5, batch_size=32, name="teacher",
                         augment=augment)
    teacher.fit(4, progress=False)

    def student(seed: int) -> wb.Model:
        return small_cnn(data.num_classes, seed, args.width)

    settings = dict(lr=3e-3, schedule="onecycle", batch_size=32, epochs=args.epochs or 20, augment=augment)
    described = {"data": f"mnist-5k, {args.train or 50} train + 50 valid digits per class",
                 "teacher": "efficientnet_lite0 48 px, last 2 blocks, 4 epochs",
                 "student": f"small CNN 28 px, width {args.width}, random init", "augment": augment}
    return data, teacher, student, settings, described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("rotten-tomatoes", "mnist-5k"), default="rotten-tomatoes")
    parser.add_argument("--train", type=int, default=None, help="train samples per class (300 texts, 50 digits)")
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (4 text, 20 image)")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--width", type=int, default=16, help="image: the student CNN's first-layer channels")
    parser.add_argument("--augment", action="store_true", help="image: teacher and students with augmentation")
    parser.add_argument("--transfer", type=int, default=None,
                        help="the distilled student trains on N samples per class (the same valid split) that only "
                             "the teacher labels: distil(data=...), use with --alpha 1 (their labels never used)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    data, teacher, student, settings, described = (text_setup if args.data == "rotten-tomatoes" else image_setup)(args)
    runs = []
    transfer = args.full(args.transfer) if args.transfer else None
    if transfer is not None:
        assert list(transfer.valid.ids) == list(data.valid.ids)  # the same valid samples for both arms
        described["transfer"] = (f"the distilled student trains on {args.transfer} samples per class labelled by the "
                                 f"teacher (alpha {args.alpha}); the plain one on the labelled ones above")
    for seed in range(args.seeds):
        d = teacher.distil(student(seed), temperature=args.temperature, alpha=args.alpha, progress=False, seed=seed,
                           data=transfer, **settings)
        plain = wb.Session(data, student(seed), freeze="full", seed=seed, **settings)
        plain.fit(settings["epochs"], progress=False)
        y = data.valid.labels
        teacher_pred = d.report.teacher_logits.argmax(1)
        plain_pred = plain.predictions.logits.argmax(1)
        runs.append({"seed": seed, "distilled": round(d.student_accuracy, 4),
                     "plain": round(float((plain_pred == y).mean()), 4),
                     "agreement_distilled": round(d.agreement, 4),
                     "agreement_plain": round(float((plain_pred == teacher_pred).mean()), 4)})
    diff = np.array([r["distilled"] - r["plain"] for r in runs])
    emit("distillation", {
        **described,
        "teacher_result": {"accuracy": round(teacher.history[-1].valid_accuracy, 4), "params": d.teacher_params,
                           "cpu_ms_per_32": round(d.teacher_latency_ms, 2)},
        "student_result": {"params": d.student_params, "cpu_ms_per_32": round(d.student_latency_ms, 2),
                           "epochs": settings["epochs"], "lr": settings["lr"]},
        "temperature": args.temperature, "alpha": args.alpha, "seeds": runs,
        "distilled_minus_plain": {"mean": round(float(diff.mean()), 4),
                                  "se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4) if len(diff) > 1 else None},
        "target_met": bool(diff.mean() > 0),
        "seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
