"""The Session with its defaults vs a naive plain loop on the same fine-tuning job. Prints JSON.

Both sides train with the same job settings (images: the Session's defaults, AdamW lr 1e-3 batch
64; text: lr 1e-4 batch 32 for full fine-tuning, lr 1e-2 for the head); each round trains each
one more epoch from the same starting weights (one untimed round first), and accuracy is compared
after the last.
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


def report(name: str, session, loop, times) -> dict[str, object]:
    acc = session.history[-1].valid_accuracy
    r = ratio(times, "session", "naive")
    return {"session": summary(times["session"]), "naive": summary(times["naive"]), "ratio": r,
            "target": TARGETS.get(name), "meets_target": r["median"] <= TARGETS.get(name, float("inf")),
            "session_accuracy": round(acc, 4), "naive_accuracy": round(loop.accuracy, 4),
            "accuracy_gap": round(abs(acc - loop.accuracy), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    images = wb.load_data("mnist-5k").subset(train=100, valid=30)
    texts = wb.load_data("rotten-tomatoes").subset(train=300, valid=100)
    r = {}
    image_job = {}  # the Session's defaults: AdamW, lr 1e-3, batch 64 (the image demo's settings)
    text_full_job = {"lr": 1e-4, "batch_size": 32}  # transformer fine-tuning needs a small LR
    text_head_job = {"lr": 1e-2, "batch_size": 32}  # the text demo's head-only settings
    r["image_full"] = report("image_full", *case(images, "efficientnet_lite0", "full", args.rounds,
                                                 {"channels_last": False}, image_job, image_size=64))
    r["text_full"] = report("text_full", *case(texts, "minilm-l6", "full", args.rounds, {"pad_to": 64}, text_full_job,
                                               max_length=64))
    r["image_head_only"] = report("image_head_only", *case(images, "efficientnet_lite0", "head", args.rounds,
                                                           {"use_cache": False, "channels_last": False}, image_job,
                                                           image_size=64))
    r["text_head_only"] = report("text_head_only", *case(texts, "minilm-l6", "head", args.rounds,
                                                         {"use_cache": False, "pad_to": 64}, text_head_job, max_length=64))
    # bf16 autocast on this CPU: the Session with amp="bf16" against the same plain loop in float32
    r["image_full_bf16_vs_fp32"] = report("image_full_bf16", *case(
        images, "efficientnet_lite0", "full", args.rounds, {"channels_last": True}, {"amp": "bf16"}, image_size=64))
    emit("speed", {"images": f"mnist-5k {len(images.train)}/{len(images.valid)} efficientnet_lite0 64px",
                   "texts": f"rotten-tomatoes {len(texts.train)}/{len(texts.valid)} minilm-l6 max_length 64",
                   "settings": {"image": "AdamW lr 1e-3 batch 64 (Session defaults)", "text_full": text_full_job,
                                "text_head_only": text_head_job, "same on both sides": True},
                   "rounds": args.rounds, "results": r})


if __name__ == "__main__":
    main()
