"""What recording training dynamics costs: epoch time with recording on vs off, same session.

One session per path; each round trains one epoch with `session.dynamics.enabled = True` and one
with it False, alternating which goes first (common.alternate), so both see the same model, data,
cache and machine drift. An epoch is the whole `session.step()`: training, the valid pass, and (on)
the per-sample train record and the kept valid predictions. Targets: <= 5% on full fine-tuning,
<= 20% on the head-only path. Prints JSON.

    python benchmarks/dynamics_overhead.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse

import torch

from common import alternate, emit, ratio, steady_malloc, summary

import workbench as wb


def case(data, freeze, rounds: int, **build) -> dict[str, object]:
    torch.manual_seed(0)
    model = wb.load_backbone("efficientnet_lite0", num_classes=data.num_classes, pretrained=True, **build)
    session = wb.Session(data, model, batch_size=32, freeze=freeze, seed=0)
    session.step(progress=False)  # builds the batches and, head-only, the feature cache: shared set-up

    def epoch(enabled: bool):
        def run() -> None:
            session.dynamics.enabled = enabled
            session.step(progress=False)
        return run

    times = alternate({"recording": epoch(True), "off": epoch(False)}, rounds=rounds)
    path = "cached features" if session.history[-1].fast_path else "full forward"
    return {"path": path, "train_samples": len(data.train), "valid_samples": len(data.valid),
            "recording": summary(times["recording"]), "off": summary(times["off"]),
            "ratio": ratio(times, "recording", "off"), "epochs_recorded": len(session.dynamics.epochs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    args = parser.parse_args()
    malloc = steady_malloc()
    full = wb.load_data("mnist-5k").subset(train=10 if args.quick else 40, valid=5 if args.quick else 20)
    head = wb.load_data("mnist-5k").subset(train=30, valid=10) if args.quick else wb.load_data("mnist-5k")
    results = {
        "full_fine_tuning": case(full, "full", args.rounds, image_size=64),
        "head_only": case(head, "head", args.rounds, image_size=48),
    }
    targets = {"full_fine_tuning": 1.05, "head_only": 1.20}
    for name, r in results.items():
        r["target_ratio"] = targets[name]
        r["met"] = r["ratio"]["median"] <= targets[name]
    emit("dynamics_overhead", {"malloc": malloc, "rounds": args.rounds, **results})


if __name__ == "__main__":
    main()
