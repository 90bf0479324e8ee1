"""Epoch scrubber latency: moving the slider to epoch k until the explorer's confusion matrix, side
panels and gallery hold epoch k's predictions, for 50 kept epochs x 10,000 validation samples.

A session over 10,000 validation images (28 px noise, 10 classes) whose record holds 50 epochs of
validation predictions (random logits drifting toward the labels, as training would), an
ErrorExplorer with a confusion cell selected (its gallery shows that cell's samples, highest loss
first), and scrubber.show(k) to random epochs, timed in the kernel: everything the kernel does
before the browser receives the new matrix and gallery. The first visit of an epoch encodes its
gallery's thumbnails once; a revisit reuses them (both reported). Wall time is what a person waits;
the process's CPU time is reported too, with the load average: on a shared machine the wall time
includes waiting for a core. Target: <= 200 ms. Prints JSON.

    python benchmarks/scrub_latency.py [--epochs 50] [--samples 10000] [--moves 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from common import emit

import workbench as wb
from workbench.train.records import Predictions


def build(epochs: int, samples: int, classes: int = 10, seed: int = 0) -> wb.Session:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(samples + 200, 28, 28), dtype=np.uint8)
    labels = np.concatenate([np.arange(200) % classes, rng.integers(0, classes, samples)])
    names = [f"class {i}" for i in range(classes)]
    data = wb.Data.from_arrays(images[:200], [names[i] for i in labels[:200]], classes=names, name="scrub",
                               valid=(images[200:], [names[i] for i in labels[200:]]))
    model = wb.load_backbone("resnet18", classes, pretrained=False, image_size=16)
    session = wb.Session(data, model, batch_size=64)
    y = data.valid.labels
    onehot = np.eye(classes, dtype=np.float32)[y]
    for e in range(1, epochs + 1):
        logits = rng.normal(0, 1, (samples, classes)).astype(np.float32) + 3.0 * (e / epochs) * onehot
        z = logits - logits.max(1, keepdims=True)
        losses = -(z[np.arange(samples), y] - np.log(np.exp(z).sum(1)))
        p = Predictions(logits, y.astype(np.int64), losses.astype(np.float32), np.arange(samples), e)
        session.dynamics.record_valid(p)
        session.previous_predictions, session.predictions = session.predictions, p
    return session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--moves", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    session = build(args.epochs, args.samples)
    explorer = wb.ErrorExplorer(session)
    explorer.select(3, 5)  # an error cell: its samples fill the gallery, highest loss first
    rng = np.random.default_rng(1)
    targets = rng.integers(1, args.epochs, size=args.moves).tolist()  # earlier epochs (the last is "latest")
    first, again, cpu, seen = [], [], [], set()
    for k in targets:
        start, start_cpu = time.perf_counter(), time.process_time()
        explorer.scrubber.show(int(k))
        took = time.perf_counter() - start
        cpu.append(time.process_time() - start_cpu)
        assert explorer.analysis.epoch == k and explorer.shown_ids, "the scrub did not show epoch k"
        (again if k in seen else first).append(took)
        seen.add(k)
    every = first + again
    ms = lambda xs: {"median_ms": round(1000 * statistics.median(xs), 1),  # noqa: E731
                     "p90_ms": round(1000 * float(np.percentile(xs, 90)), 1), "max_ms": round(1000 * max(xs), 1),
                     "n": len(xs)} if xs else None
    emit("scrub_latency", {
        "epochs_kept": len(session.dynamics.valid_epochs), "valid_samples": args.samples,
        "kept_bytes": session.dynamics.valid.nbytes(), "gallery_cards": min(len(explorer.shown_ids), 50),
        "every_move": ms(every), "first_visit": ms(first), "revisit": ms(again),
        "every_move_cpu_time": ms(cpu), "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "target_ms": 200, "met": statistics.median(every) <= 0.2,
    })


if __name__ == "__main__":
    main()
