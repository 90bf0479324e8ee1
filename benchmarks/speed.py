"""The Session with its defaults vs a naive plain loop on the same fine-tuning job. Prints JSON.

Both sides train with the same job settings (images: the Session's defaults, AdamW lr 1e-3 batch
64; text: lr 1e-4 batch 32 for full fine-tuning, lr 1e-2 for the head); each round trains each
one more epoch from the same starting weights (one untimed round first), and accuracy is compared
after the last, paired per valid sample (the gap and its standard error).
Targets (time ratios, Session / naive, accuracy within 0.02):
image full fine-tune <= 0.6 (naive: NCHW), text full fine-tune <= 0.8 (naive: pad every batch to
max_length), head-only epoch <= 0.02 (naive: runs the frozen backbone every batch). Also
measures bf16 autocast on the CPU against the float32 default.

    python benchmarks/speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy

import torch

from common import alternate, emit, ratio, summary
from plain import PlainLoop

import workbench as wb

TARGETS = {"image_full": 0.6, "text_full": 0.8, "image_head_only": 0.02, "text_head_only": 0.02}


def case(data, backbone: str, freeze, rounds: int, naive: dict, session_settings: dict | None = None, **build):
    torch.manual_seed(0)
    model = wb.load_backbone(backbone, num_classes=data.num_classes, pretrained=True, **build)
    twin = copy.deepcopy(model)
    session = wb.Session(data, model, freeze=freeze, **(session_settings or {}))  # defaults: AdamW, lr, batch
    loop = PlainLoop(session, twin, **naive)
    times = alternate({"session": session.step, "naive": loop}, rounds=rounds, warmup=1)  # + 1 untimed epoch each
    return session, loop, times


def paired_gap(session, loop) -> tuple[float, float]:
    """Accuracy difference (Session - naive) on the same valid samples, and its standard error
    from the samples only one side got right (McNemar's pairing)."""
    truth = session.predictions.labels
    a = session.predictions.logits.argmax(1) == truth
    b = loop.predicted.numpy() == truth
    n, only_a, only_b = len(truth), int((a & ~b).sum()), int((~a & b).sum())
    gap = (only_a - only_b) / n
    se = max(only_a + only_b - n * gap**2, 0.0) ** 0.5 / n
    return gap, se


def measured(name: str, session, loop, times) -> dict[str, object]:
    acc = session.history[-1].valid_accuracy
    r = ratio(times, "session", "naive")
    gap, se = paired_gap(session, loop)
    return {"session": summary(times["session"]), "naive": summary(times["naive"]), "ratio": r,
            "target": TARGETS.get(name), "meets_target": r["median"] <= TARGETS.get(name, float("inf")),
            "session_accuracy": round(acc, 4), "naive_accuracy": round(loop.accuracy, 4),
            "accuracy_gap": round(abs(gap), 4), "accuracy_gap_se": round(se, 4),
            "accuracy_within_0.02": abs(gap) <= 0.02}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="run only these cases, e.g. --only text_full")
    args = parser.parse_args()
    images = wb.load_data("mnist-5k").subset(train=100, valid=30)
    # 2,000 / 1,000 texts: with 600 / 200, accuracy after a few epochs swung by +-0.05 between batch
    # orders; the paired gap's standard error was 0.011 on 1,000 valid texts (~0.018 on the 400 used
    # before, as it scales with 1/sqrt(n))
    texts = wb.load_data("rotten-tomatoes").subset(train=1000, valid=500)
    image_job = {}  # the Session's defaults: AdamW, lr 1e-3, batch 64 (the image demo's settings)
    text_full_job = {"lr": 1e-4, "batch_size": 32}  # transformer fine-tuning needs a small LR
    text_head_job = {"lr": 1e-2, "batch_size": 32}  # the text demo's head-only settings
    lite0, minilm = ("efficientnet_lite0", {"image_size": 64}), ("minilm-l6", {"max_length": 64})
    cases = {  # name: (data, backbone, freeze, naive loop options, session settings)
        "image_full": (images, lite0, "full", {"channels_last": False}, image_job),
        # the naive loop pads every batch to 64 but takes the Session's batches (bucketing alone saves
        # nothing when padding to max_length), so both train on the same batches and accuracy compares
        "text_full": (texts, minilm, "full", {"pad_to": 64, "bucket": True}, text_full_job),
        "image_head_only": (images, lite0, "head", {"use_cache": False, "channels_last": False}, image_job),
        "text_head_only": (texts, minilm, "head", {"use_cache": False, "pad_to": 64, "bucket": True}, text_head_job),
        # bf16 autocast on this CPU: the Session with amp="bf16" against the plain loop in float32
        "image_full_bf16_vs_fp32": (images, lite0, "full", {"channels_last": True}, {"amp": "bf16"}),
    }
    results = {}
    for name, (data, (backbone, build), freeze, naive, settings) in cases.items():
        if not args.only or name in args.only:
            results[name] = measured(name, *case(data, backbone, freeze, args.rounds, naive, settings, **build))
    emit("speed", {"images": f"mnist-5k {len(images.train)}/{len(images.valid)} efficientnet_lite0 64px",
                   "texts": f"rotten-tomatoes {len(texts.train)}/{len(texts.valid)} minilm-l6 max_length 64",
                   "settings": {"image": "AdamW lr 1e-3 batch 64 (Session defaults)", "text_full": text_full_job,
                                "text_head_only": text_head_job, "same on both sides": True},
                   "rounds": args.rounds, "results": results})


if __name__ == "__main__":
    main()
