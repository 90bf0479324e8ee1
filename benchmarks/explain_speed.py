"""How fast the explanations are on this CPU: a gallery's attributions, neighbours, rankings, maps.

- gallery_images_s: wb.explain_many for 12 validation images at 64 px (EfficientNet-Lite0, the
  bundled weights), computed and rendered (Grad-CAM overlays to PNG, as the panel shows them).
  Target < 1.5 s.
- gallery_texts_s: the same for 12 Rotten Tomatoes texts (MiniLM, integrated gradients with the
  budgeted steps), rendered as escaped HTML tokens. Target < 1.5 s.
- why_pair_*_s: one sample, true and predicted class (the Why panel's call).
- neighbours_ms: one query against 10,000 training features of width 1280 (top 8). Target < 50 ms.
- label_issues_train_s: cross-validated logistic regression + cleanlab on 4,000 MNIST features.
- map_pca_5000_s: PCA of 5,000 validation features.

Median and range of `--rounds` after one warm-up (Captum import, layer discovery). The machine is
shared with other jobs, so figures are noisy; the JSON says so.

    PYTHONPATH=. .venv/bin/python benchmarks/explain_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import emit, summary

import workbench as wb
from workbench import plots
from workbench.analysis.label_issues import cross_val_probabilities, rank_label_issues
from workbench.analysis.neighbours import NeighbourIndex
from workbench.analysis.embedding import project


def repeat(fn, rounds: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def image_session(size: int = 64):
    data = wb.load_data("mnist-5k").subset(train=100, valid=20, seed=0)
    model = wb.load_backbone("efficientnet_lite0", data.num_classes, pretrained=True, image_size=size)
    session = wb.Session(data, model, lr=1e-2, batch_size=64, seed=0)
    session.fit(3)
    return session


def text_session():
    data = wb.load_data("rotten-tomatoes").subset(train=200, valid=40, seed=0)
    session = wb.Session(data, wb.load_backbone("minilm-l6", 2), lr=5e-3, batch_size=32, seed=0)
    session.fit(3)
    return session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    results: dict[str, object] = {}
    ids = list(range(12))

    s = image_session()
    render_images = lambda atts: [plots.image_png(plots.overlay(a)) for a in atts]  # noqa: E731
    results["gallery_images_s"] = summary(repeat(lambda: render_images(wb.explain_many(s, ids)), args.rounds))
    results["why_pair_image_s"] = summary(repeat(lambda: wb.explain_many(s, [0, 0], ["true", "pred"]), args.rounds))

    t = text_session()
    render_texts = lambda atts: [plots.tokens_html(a) for a in atts]  # noqa: E731
    results["gallery_texts_s"] = summary(repeat(lambda: render_texts(wb.explain_many(t, ids)), args.rounds))
    results["gallery_texts_method"] = wb.explain_many(t, ids)[0].method
    results["why_pair_text_s"] = summary(repeat(lambda: wb.explain_many(t, [0, 0], ["true", "pred"]), args.rounds))

    rng = np.random.default_rng(0)
    train = torch.from_numpy(rng.normal(size=(10_000, 1280)).astype(np.float32))
    index = NeighbourIndex(train, rng.integers(0, 10, 10_000), [str(i) for i in range(10)])
    query = train[rng.integers(0, 10_000)] + 0.1
    ms = [1000 * v for v in repeat(lambda: index.query(query, 8), 50)]
    results["neighbours_ms"] = {"median_ms": round(float(np.median(ms)), 2), "max_ms": round(max(ms), 2),
                                "train_features": [10_000, 1280]}

    digits = wb.load_data("mnist-5k")
    m = wb.load_backbone("efficientnet_lite0", 10, pretrained=True, image_size=32)
    big = wb.Session(digits, m, lr=1e-2, batch_size=64, seed=0)
    feats = big.features("train")
    labels = digits.train.labels
    results["label_issues_train_s"] = summary(repeat(
        lambda: rank_label_issues(labels, cross_val_probabilities(feats, labels), np.arange(len(labels)),
                                  digits.classes, "train"), 2))
    valid = torch.cat([big.features("valid")] * 5)[:5000]
    results["map_pca_5000_s"] = summary(repeat(lambda: project(valid, "pca"), args.rounds))
    results["note"] = "2-core CPU shared with two other engineers' jobs: figures are noisy upper bounds"
    emit("explain_speed", results)


if __name__ == "__main__":
    main()
