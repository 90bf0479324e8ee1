"""Finding planted label noise with training dynamics: recall of the flipped labels in the top 10%.

mnist-5k with 10% of its train labels flipped (data.with_label_noise), the bundled EfficientNet-Lite0
at 48 px, five head-only epochs with the defaults. Each signal ranks all train samples, most suspicious
first: the combined ranking (errors.label_issues("train", combine=True)), AUM alone, confidence alone
(hard-to-learn), cleanlab alone (cross-validated probabilities on the features), forgetting alone
(never learned first, then most forgotten). Recall = share of the flips in the top 10% (a perfect
ranking scores 1.0). Target: combined >= 0.8. Prints JSON.

    python benchmarks/dynamics_recall.py [--epochs 5] [--fraction 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import emit

import workbench as wb
from workbench.analysis.dynamics import recall_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="100 images per class, for a smoke run")
    args = parser.parse_args()
    clean = wb.load_data("mnist-5k")
    if args.quick:
        clean = clean.subset(train=100, valid=30)
    data = clean.with_label_noise(args.fraction, seed=args.seed)
    flips = np.flatnonzero(data.train.labels != clean.train.labels)
    torch.manual_seed(0)
    model = wb.load_backbone("efficientnet_lite0", data.num_classes, pretrained=True, image_size=args.image_size)
    session = wb.Session(data, model, seed=args.seed)
    start = time.perf_counter()
    session.fit(args.epochs, progress=False)
    train_s = time.perf_counter() - start
    errors = wb.ErrorAnalysis.from_session(session)
    frame = errors.dynamics()
    start = time.perf_counter()
    combined = errors.label_issues("train", combine=True)
    rank_s = time.perf_counter() - start
    cleanlab = errors.label_issues("train")
    forgetting = frame.assign(learned=~frame["never_learned"]).sort_values(
        ["learned", "forgetting"], ascending=[True, False], kind="stable")
    n = len(frame)
    recall = {
        "combined": recall_at(combined, flips, 0.1, n),
        "aum": recall_at(frame.sort_values("aum", kind="stable"), flips, 0.1, n),
        "confidence (hard-to-learn)": recall_at(frame.sort_values("confidence", kind="stable"), flips, 0.1, n),
        "cleanlab": recall_at(cleanlab, flips, 0.1, n),
        "forgetting": recall_at(forgetting, flips, 0.1, n),
    }
    hard = frame["region"] == "hard-to-learn"
    emit("dynamics_recall", {
        "data": f"mnist-5k{' (quick subset)' if args.quick else ''}", "train_samples": n, "flipped": len(flips),
        "backbone": f"efficientnet_lite0 at {args.image_size} px, head only", "epochs": args.epochs,
        "valid_accuracy": [round(r.valid_accuracy, 4) for r in session.history],
        "recall_in_top_10_percent": {k: round(v, 4) for k, v in recall.items()},
        "target_combined": 0.8, "met": recall["combined"] >= 0.8,
        "hard_to_learn_region": {"samples": int(hard.sum()), "flips_in_it": int(hard.iloc[flips].sum())},
        "seconds": {"training": round(train_s, 1), "combined_ranking": round(rank_s, 1)},
    })


if __name__ == "__main__":
    main()
