"""Session epoch time vs a plain PyTorch loop doing the same work. Target ratio <= 1.03.

Same model (a copy with the same weights), data tensors, batch size, batch order, optimizer
(torch's fused AdamW, as the Session builds it), loss, memory layout and train/eval modes; both train one epoch and then evaluate the valid split
(per-sample losses and accuracy). Head-only uses cached features in both, and the Session's
head preconditioner in both. Prints JSON.

    python benchmarks/overhead.py [--rounds 3] [--quick] [--only image_head_only ...] [--default-malloc]

Both contenders run with glibc malloc keeping freed memory (common.steady_malloc): otherwise
page faults from memory handed back to the OS vary an epoch by ~10% on either side.
"""

from __future__ import annotations

import argparse
import copy

import torch

from common import alternate, emit, ratio, steady_malloc, summary
from plain import PlainLoop

import workbench as wb


def case(data, backbone: str, freeze, rounds: int, **build) -> dict[str, object]:
    torch.manual_seed(0)
    model = wb.load_backbone(backbone, num_classes=data.num_classes, pretrained=True, **build)
    twin = copy.deepcopy(model)
    session = wb.Session(data, model, optimizer="adamw", lr=1e-4, batch_size=32, freeze=freeze,
                         precondition_head=True)  # head-only: the defaults' preconditioned gradient
    session.step()  # builds the batch tensors and, head-only, the feature cache: shared set-up
    # the same optimizer kernels and valid batch size: only bookkeeping differs
    plain = PlainLoop(session, twin, fused=True, eval_batch=session._eval_batch(), amp=True,
                      precondition=session._preconditioner is not None)
    times = alternate({"session": session.step, "plain": plain}, rounds=rounds)
    return {"session": summary(times["session"]), "plain": summary(times["plain"]),
            "ratio": ratio(times, "session", "plain")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument("--only", nargs="*", help="run only these cases, e.g. --only image_head_only")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (page-fault noise on both sides)")
    args = parser.parse_args()
    malloc = "default" if args.default_malloc else steady_malloc()
    n_img, n_txt = (20, 40) if args.quick else (60, 150)
    images = wb.load_data("mnist-5k").subset(train=n_img, valid=n_img // 2)
    texts = wb.load_data("rotten-tomatoes").subset(train=n_txt, valid=n_txt // 2)
    # Head-only epochs on cached features are milliseconds: they run on the whole bundled
    # datasets (the demo's job), and on the small subsets too, where fixed per-epoch
    # bookkeeping (history, predictions, events) weighs most.
    whole_images = images if args.quick else wb.load_data("mnist-5k")
    whole_texts = texts if args.quick else wb.load_data("rotten-tomatoes")
    cases = {
        "image_head_only": lambda: case(whole_images, "efficientnet_lite0", "head", args.rounds, image_size=64),
        "text_head_only": lambda: case(whole_texts, "minilm-l6", "head", args.rounds, max_length=64),
        "image_head_only_small": lambda: case(images, "efficientnet_lite0", "head", args.rounds, image_size=64),
        "text_head_only_small": lambda: case(texts, "minilm-l6", "head", args.rounds, max_length=64),
    }
    for label, freeze in (("last_2", wb.last(2)), ("full", "full")):
        cases[f"image_{label}"] = lambda f=freeze: case(images, "efficientnet_lite0", f, args.rounds, image_size=64)
        cases[f"text_{label}"] = lambda f=freeze: case(texts, "minilm-l6", f, args.rounds, max_length=64)
    results = {name: run() for name, run in cases.items() if not args.only or name in args.only}
    size = lambda d: f"{len(d.train)}/{len(d.valid)}"  # noqa: E731
    emit("overhead", {"target": "ratio median <= 1.03",
                      "images": f"mnist-5k {size(images)} (head_only: {size(whole_images)}) efficientnet_lite0 64px",
                      "texts": f"rotten-tomatoes {size(texts)} (head_only: {size(whole_texts)}) minilm-l6 max_length 64",
                      "batch_size": 32, "rounds": args.rounds, "malloc": malloc, "results": results})


if __name__ == "__main__":
    main()
