"""wb.sweep: epochs saved by pruning, against the same trials unpruned. Prints JSON.

The same sweep twice per seed, pruned (`--pruner`, default "quartile") and unpruned (None), on one
base session: a bundled backbone (head only, features computed once and shared by every trial),
searching lr (log range), optimizer and label smoothing. mnist-5k and digits: EfficientNet-Lite0 at 48 / 32 px;
rotten-tomatoes: MiniLM-L6 at 48 tokens on 500 + 300 reviews per class. The random sampler draws
the same params for trial n whatever happened to earlier trials, so both runs try exactly the same
trials; the contenders alternate in order from seed to seed. Target: pruning saves >= 30% of the
epochs and finds the same best value. Default pruner settings (startup_trials=2, the pruner's own
warm-up); the bar counts pruned trials too (workbench/train/pruning.py). The JSON keeps every trial's
unpruned curve, so benchmarks/sweep_replay.py can replay other pruning rules on them.

    python benchmarks/sweep_pruning.py [--data mnist-5k|digits|rotten-tomatoes] [--trials 16] [--epochs 6]
        [--seeds 0 1 ... 9] [--threads 2] [--pruner quartile|median]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import emit

import workbench as wb
from workbench.train.sweep import PERCENTILES

SPACE = {"lr": (1e-5, 3.0), "optimizer": ["adamw", "sgd"], "label_smoothing": (0.0, 0.2)}


def run(base, pruner, seed: int, trials: int, epochs: int) -> dict:
    t0 = time.perf_counter()
    s = wb.Sweep(base, SPACE, trials, epochs=epochs, pruner=pruner, sampler="random", seed=seed,
                 name=f"{pruner or 'unpruned'} seed {seed}").run()
    best = s.best
    return {"seconds": time.perf_counter() - t0, "epochs": s.epochs_run, "best_value": best.value,
            "best_trial": best.number, "pruned": [t.number for t in s.trials if t.state == "pruned"],
            "values": {t.number: t.values for t in s.trials}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--data", choices=("mnist-5k", "digits", "rotten-tomatoes"), default="mnist-5k")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pruner", choices=tuple(PERCENTILES), default="quartile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.data == "rotten-tomatoes":
        data = wb.load_data(args.data).subset(train=500, valid=300, seed=0)
        model = wb.load_backbone("minilm-l6", data.num_classes, max_length=48)
    else:
        data = wb.load_data(args.data)
        model = wb.load_backbone("efficientnet_lite0", data.num_classes, image_size=48 if args.data == "mnist-5k" else 32)
    base = wb.Session(data, model, seed=0)
    base.features("train"), base.features("valid")  # once, shared by every trial of both contenders
    rows = []
    for i, seed in enumerate(args.seeds):
        order = (args.pruner, None) if i % 2 == 0 else (None, args.pruner)
        got = {p: run(base, p, seed, args.trials, args.epochs) for p in order}
        pruned, full = got[args.pruner], got[None]
        same_trials = all(full["values"][n][: len(v)] == v for n, v in pruned["values"].items())
        rows.append({"seed": seed, "epochs_pruned": pruned["epochs"], "epochs_unpruned": full["epochs"],
                     "epochs_saved": round(1 - pruned["epochs"] / full["epochs"], 3),
                     "best_pruned": pruned["best_value"], "best_unpruned": full["best_value"],
                     "same_best": pruned["best_value"] == full["best_value"],
                     "best_trial_pruned": pruned["best_trial"], "best_trial_unpruned": full["best_trial"],
                     "trials_pruned": pruned["pruned"], "same_values_where_both_ran": same_trials,
                     "seconds_pruned": round(pruned["seconds"], 1), "seconds_unpruned": round(full["seconds"], 1),
                     # every trial's whole curve: other pruning rules can be replayed on them offline
                     "unpruned_curves": [full["values"][n] for n in sorted(full["values"])]})
    saved = [r["epochs_saved"] for r in rows]
    total = 1 - sum(r["epochs_pruned"] for r in rows) / sum(r["epochs_unpruned"] for r in rows)
    same = sum(r["same_best"] for r in rows)
    warmup = wb.Sweep(base, SPACE, 1, epochs=args.epochs, pruner=args.pruner).warmup_epochs
    emit("sweep_pruning", {"data": args.data, "threads": args.threads, "trials": args.trials,
                           "epochs_per_trial": args.epochs, "space": SPACE,
                           "pruner": f"{args.pruner} of every trial at the epoch (startup_trials=2, warmup_epochs={warmup})",
                           "rule": {"warmup_epochs": warmup, "startup_trials": 2,  # for sweep_replay.py
                                    "percentile": PERCENTILES[args.pruner]},
                           "sampler": "random (the same trials in both contenders)",
                           "epochs_saved_overall": round(total, 3), "min_epochs_saved": min(saved),
                           "mean_epochs_saved": round(sum(saved) / len(saved), 3),
                           "same_best": f"{same} of {len(rows)} seeds", "all_same_best": same == len(rows), "runs": rows})


if __name__ == "__main__":
    main()
