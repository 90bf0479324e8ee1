"""Full fine-tuning: the Session's defaults vs a naive plain loop, paired over seeds. Prints JSON.

For each seed, the same pretrained backbone with the same new head (load_backbone(seed=...)) is
fine-tuned one epoch with everything trainable: by `wb.Session(data, model, freeze="full",
seed=seed)` with its default settings, and by a plain PyTorch loop written the naive way (float32,
NCHW, the default AdamW, the Session's LR and batches). The valid accuracy gap (Session - naive)
is paired per sample within a seed (its standard error from the samples only one side got right),
then averaged over the seeds with the standard error of that mean. Target: mean gap >= -0.01.

    python benchmarks/finetune_accuracy.py [--seeds 0 1 2] [--epochs 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from common import emit
from plain import PlainLoop
from speed import paired_gap

import workbench as wb


def one_seed(data, backbone: str, build: dict, seed: int, epochs: int) -> dict[str, float]:
    model = wb.load_backbone(backbone, num_classes=data.num_classes, seed=seed, **build)
    twin = copy.deepcopy(model)
    session = wb.Session(data, model, freeze="full", seed=seed)  # every other setting: the defaults
    naive = PlainLoop(session, twin, channels_last=False)
    for _ in range(epochs):
        session.step(progress=False)
        naive()
    gap, se = paired_gap(session, naive)
    return {"seed": seed, "session": round(session.history[-1].valid_accuracy, 4), "naive": round(naive.accuracy, 4),
            "gap": round(gap, 4), "gap_se": round(se, 4), "lr": session._describe_lr()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    cases = {
        "image: efficientnet_lite0 64 px, mnist-5k 4000/1000": (wb.load_data("mnist-5k"), "efficientnet_lite0",
                                                               {"image_size": 64}),
        "text: minilm-l6, rotten-tomatoes 2000/1000": (wb.load_data("rotten-tomatoes").subset(train=1000, valid=500),
                                                        "minilm-l6", {"max_length": 64}),
    }
    results = {}
    for name, (data, backbone, build) in cases.items():
        if args.only and not any(o in name for o in args.only):
            continue
        runs = [one_seed(data, backbone, build, s, args.epochs) for s in args.seeds]
        gaps = [r["gap"] for r in runs]
        mean = statistics.mean(gaps)
        se = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else float("nan")
        results[name] = {"seeds": runs, "mean_gap": round(mean, 4), "mean_gap_se": round(se, 4),
                         "meets_target": mean >= -0.01}
    emit("finetune_accuracy", {"target": "mean paired gap (Session - naive) >= -0.01", "epochs": args.epochs,
                               "naive": "float32 NCHW, torch's default AdamW, same LR, batches and head init",
                               "results": results})


if __name__ == "__main__":
    main()
