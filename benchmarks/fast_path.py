"""Frozen-feature cache: build time vs one plain frozen forward pass over the same split.

Target ratio <= 1.2: building the cache may cost little more than the one forward pass it
replaces in every later epoch. Also reports a cached head-only epoch against that pass. JSON.

    python benchmarks/fast_path.py [--rounds 3]
"""

from __future__ import annotations

import argparse

import torch

from common import alternate, emit, ratio, summary

import workbench as wb


def case(data, backbone: str, rounds: int, **build) -> dict[str, object]:
    model = wb.load_backbone(backbone, num_classes=data.num_classes, pretrained=True, **build)
    session = wb.Session(data, model, batch_size=64, freeze="head")
    batcher = session.pipeline.batcher("train")  # input tensors built once, outside the timing

    def build_cache() -> None:
        session.cache.invalidate()
        session._features("train")

    @torch.no_grad()
    def frozen_forward() -> None:
        model.module.eval()
        for idx in torch.arange(len(data.train)).split(session._eval_batch()):  # the cache's batch size
            model.logits(batcher.batch(idx))

    times = alternate({"cache_build": build_cache, "frozen_forward": frozen_forward}, rounds=rounds)
    session.step()
    epoch = session.step().epoch_time_s
    return {"cache_build": summary(times["cache_build"]), "frozen_forward": summary(times["frozen_forward"]),
            "ratio": ratio(times, "cache_build", "frozen_forward"), "target": 1.2,
            "cached_head_only_epoch_s": round(epoch, 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    images = wb.load_data("mnist-5k").subset(train=100, valid=20)
    texts = wb.load_data("rotten-tomatoes").subset(train=300, valid=50)
    emit("fast_path", {"rounds": args.rounds, "results": {
        "image": case(images, "efficientnet_lite0", args.rounds, image_size=64),
        "text": case(texts, "minilm-l6", args.rounds, max_length=64),
    }})


if __name__ == "__main__":
    main()
