"""ErrorAnalysis over 10,000 predictions (target <= 50 ms), and against scikit-learn. Prints JSON.

Times what the explorer does after each epoch: build the analysis (probabilities, confusion
matrix), per-class precision/recall/F1, most-confused pairs, top losses, and one cell's samples.
The ratio compares it with scikit-learn computing only the confusion matrix and per-class scores
on the same arrays, measured in the same run.

    python benchmarks/analysis_speed.py [--n 10000] [--classes 10] [--rounds 7]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from common import alternate, emit, ratio, summary

from workbench.analysis import ErrorAnalysis


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    k = args.classes
    labels = rng.integers(0, k, args.n)
    logits = rng.normal(size=(args.n, k)).astype(np.float32)
    logits[np.arange(args.n), labels] += 1.5
    classes = [f"class {i}" for i in range(k)]

    def workbench_analysis() -> None:
        a = ErrorAnalysis.from_predictions(labels, logits, classes)
        a.per_class()
        a.most_confused(min_count=2)
        a.top_losses(50)
        a.indices(1, 2)

    def sklearn_core() -> None:
        pred = logits.argmax(1)
        confusion_matrix(labels, pred, labels=range(k))
        precision_recall_fscore_support(labels, pred, labels=range(k), zero_division=0)

    times = alternate({"workbench": workbench_analysis, "sklearn_core": sklearn_core}, rounds=args.rounds)
    median_ms = summary(times["workbench"])["median_s"] * 1000
    emit("analysis_speed", {"n": args.n, "classes": k, "rounds": args.rounds, "target_ms": 50,
                            "workbench": summary(times["workbench"]), "sklearn_core": summary(times["sklearn_core"]),
                            "ratio_to_sklearn_core": ratio(times, "workbench", "sklearn_core"),
                            "median_ms": round(median_ms, 2), "meets_target": median_ms <= 50})


if __name__ == "__main__":
    main()
