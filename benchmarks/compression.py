"""Compression: a fine-tuned model against its int8 and pruned copies, on 2 CPU threads. Prints JSON.

The text model: MiniLM-L6 (minilm-l6, max 64 tokens) with its head fitted exactly on the cached
features (`fit_head`) on Rotten Tomatoes (300 train reviews per class, 1000 valid reviews per class:
the accuracy difference needs many valid samples; its paired standard error is reported). Then
`session.compress("int8")` and `session.compress("prune", amount=0.5)`: valid accuracy and
agreement against the float model, MB as torch.save writes them (and gzipped), and CPU time two ways:
one review at a time (the first 8 valid reviews, each a batch of 1: the latency a request meets) and
a batch of 32 valid reviews (throughput), float and compressed timed in turns (`ROUNDS` rounds, order
reversed every other round), each reported as the median of the per-round ratios with its range.
Targets: int8 at most 0.01 less accurate than float and >= 1.5x faster; the JSON says which of the two
speeds meets it (they differ by CPU: see workbench/models/compress.py).

With --image: the same for EfficientNet-Lite0 (64 px) on mnist-5k (50 + 50 digits per class); only its
classifier is an nn.Linear, so int8 changes almost nothing there (shown for honesty).

    python benchmarks/compression.py [--image] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import alternate, emit, ratio, steady_malloc

import workbench as wb
from workbench.models.measure import (LATENCY_BATCH, LATENCY_SINGLES, forward_each_fn, forward_fn, latency_input,
                                      single_inputs)

ROUNDS = 15


def paired_se(r) -> float:
    """Standard error of the accuracy difference, paired per valid sample (right/wrong in each)."""
    diff = (r.original_logits.argmax(1) == r.labels).astype(float) - (r.compressed_logits.argmax(1) == r.labels)
    return float(diff.std(ddof=1) / np.sqrt(len(diff)))


def case(data, backbone: str, options: dict, rounds: int) -> dict:
    started = time.perf_counter()
    session = wb.Session(data, wb.load_backbone(backbone, data.num_classes, **options), seed=0)
    session.fit_head()
    out: dict = {"data": data.name, "train": len(data.train), "valid": len(data.valid), "model": backbone, **options,
                 "float_accuracy": round(session.history[-1].valid_accuracy, 4)}
    for label, method, amount in (("int8", "int8", None), ("prune50", "prune", 0.5)):
        c = session.compress(method, amount=amount)
        r = c.report
        x = latency_input(data, c.model, LATENCY_BATCH)
        kind = c.model.kind
        times = alternate({"float": forward_fn(c._original, kind, x), "compressed": forward_fn(c.module, kind, x)},
                          rounds=rounds, warmup=2)
        singles = single_inputs(data, c.model, LATENCY_SINGLES)
        times_one = alternate({"float": forward_each_fn(c._original, kind, singles),
                               "compressed": forward_each_fn(c.module, kind, singles)}, rounds=rounds, warmup=2)
        out[label] = {
            "accuracy": round(r.compressed_accuracy, 4),
            "float_accuracy_cpu": round(r.original_accuracy, 4),
            "accuracy_drop": round(r.original_accuracy - r.compressed_accuracy, 4),
            "accuracy_drop_se": round(paired_se(r), 4),
            "agreement": round(r.agreement, 4),
            "speedup_one_at_a_time": ratio(times_one, "float", "compressed"),
            f"speedup_batch_{LATENCY_BATCH}": ratio(times, "float", "compressed"),
            "ms_one_at_a_time": {k: round(statistics.median(v) * 1e3 / len(singles), 2) for k, v in times_one.items()},
            f"ms_batch_{LATENCY_BATCH}": {k: round(statistics.median(v) * 1e3, 1) for k, v in times.items()},
            "size_mb": round(r.compressed_bytes[0] / 1e6, 2), "float_size_mb": round(r.original_bytes[0] / 1e6, 2),
            "gzip_mb": round(r.compressed_bytes[1] / 1e6, 2), "float_gzip_mb": round(r.original_bytes[1] / 1e6, 2),
            **({"sparsity": round(r.sparsity, 4)} if r.sparsity is not None else {}),
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="store_true", help="also EfficientNet-Lite0 on mnist-5k")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    malloc = steady_malloc()
    text = wb.load_data("rotten-tomatoes").subset(train=300, valid=1000, seed=0)
    cases = [case(text, "minilm-l6", {"max_length": 64}, args.rounds)]
    if args.image:
        digits = wb.load_data("mnist-5k").subset(train=50, valid=50, seed=0)
        cases.append(case(digits, "efficientnet_lite0", {"image_size": 64}, args.rounds))
    t = cases[0]["int8"]
    emit("compression", {
        "malloc": malloc, "latency_batch": LATENCY_BATCH, "latency_singles": LATENCY_SINGLES, "rounds": args.rounds,
        "target": "minilm-l6 int8: accuracy within 0.01 of float, >= 1.5x faster on 2 CPU threads",
        "met": {"accuracy": t["accuracy_drop"] <= 0.01,
                "speed_one_at_a_time": t["speedup_one_at_a_time"]["median"] >= 1.5,
                f"speed_batch_{LATENCY_BATCH}": t[f"speedup_batch_{LATENCY_BATCH}"]["median"] >= 1.5},
        "cases": cases,
    })


if __name__ == "__main__":
    main()
