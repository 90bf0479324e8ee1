"""What recording training dynamics costs: epoch time with recording on vs off, same session.

One session per path; each round trains one epoch with `session.dynamics.enabled = True` and one
with it False, alternating which goes first (common.alternate), so both see the same model, data,
cache and machine drift. An epoch is the whole `session.step()`: training, the valid pass, and (on)
the per-sample train record and the kept valid predictions. On a shared, loaded machine the paired
ratio carries the noise of two whole epochs, so the script also times the recording work itself
inside the recording epochs (the recorder's calls from the loop, the epoch's commit to the host
arrays, the kept valid predictions) and reports it as a share of those epochs' wall time: the
overhead without the noise of the rest. Targets: <= 5% on full fine-tuning, <= 20% head-only.

    python benchmarks/dynamics_overhead.py [--rounds 7] [--quick] [--only head_only]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import alternate, emit, ratio, steady_malloc, summary

import workbench as wb


class Stopwatch:
    """Wraps the session's recording entry points and sums the wall time spent in them."""

    def __init__(self, dynamics) -> None:
        self.seconds = 0.0
        for name in ("start_epoch", "commit", "record_valid", "record_all"):
            setattr(dynamics, name, self.timed(getattr(dynamics, name), wrap_result=name == "start_epoch"))

    def timed(self, fn, wrap_result: bool = False):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            return self.timed(out) if wrap_result and out is not None else out
        return run


def case(data, freeze, rounds: int, **build) -> dict[str, object]:
    torch.manual_seed(0)
    model = wb.load_backbone("efficientnet_lite0", num_classes=data.num_classes, pretrained=True, **build)
    session = wb.Session(data, model, batch_size=32, freeze=freeze, seed=0)
    session.step(progress=False)  # builds the batches and, head-only, the feature cache: shared set-up
    watch = Stopwatch(session.dynamics)
    shares: list[float] = []

    def epoch(enabled: bool):
        def run() -> None:
            session.dynamics.enabled = enabled
            before, start = watch.seconds, time.perf_counter()
            session.step(progress=False)
            if enabled:
                shares.append((watch.seconds - before) / (time.perf_counter() - start))
        return run

    times = alternate({"recording": epoch(True), "off": epoch(False)}, rounds=rounds)
    path = "cached features" if session.history[-1].fast_path else "full forward"
    return {"path": path, "train_samples": len(data.train), "valid_samples": len(data.valid),
            "recording": summary(times["recording"]), "off": summary(times["off"]),
            "ratio": ratio(times, "recording", "off"),
            "recording_share_of_epoch": {"median": round(statistics.median(shares), 5),
                                         "max": round(max(shares), 5), "n": len(shares)},
            "epochs_recorded": len(session.dynamics.epochs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument("--only", choices=["full_fine_tuning", "head_only"], help="run one case")
    args = parser.parse_args()
    malloc = steady_malloc()
    full = wb.load_data("mnist-5k").subset(train=5 if args.quick else 20, valid=5 if args.quick else 10)
    head = wb.load_data("mnist-5k").subset(train=30, valid=10) if args.quick else wb.load_data("mnist-5k")
    cases = {"full_fine_tuning": lambda: case(full, "full", args.rounds, image_size=48),
             "head_only": lambda: case(head, "head", args.rounds, image_size=48)}
    results = {name: run() for name, run in cases.items() if args.only in (None, name)}
    targets = {"full_fine_tuning": 0.05, "head_only": 0.20}
    for name, r in results.items():
        r["target_overhead"] = targets[name]
        r["met"] = (r["ratio"]["median"] - 1 <= targets[name]
                    and r["recording_share_of_epoch"]["median"] <= targets[name])
    emit("dynamics_overhead", {"malloc": malloc, "rounds": args.rounds, **results})


if __name__ == "__main__":
    main()
