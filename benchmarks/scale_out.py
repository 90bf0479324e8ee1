"""The same fine-tuning script in one process and in N, through `accelerate launch`: time and accuracy.

A session trains a head, then its last two blocks, in a notebook; `session.to_script()` writes the
script; this runs it with 1 process and with N (CPU: gloo, `ACCELERATE_USE_CPU=1`; with CUDA: one
process per GPU) and reports each run's wall time (launch included), its epochs' valid accuracy,
the notebook's own accuracy (one process replays it exactly on the CPU), and the time ratio.
On a 2-core machine two processes share the cores the one process had, so expect no speed-up
there: the figure shows the overhead of the gradient all-reduce, and that accuracy holds.

    cd benchmarks && ../.venv/bin/python scale_out.py [--processes 2] [--train 600] [--epochs 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import emit

import workbench as wb

REPO = Path(__file__).resolve().parents[1]


def launch(script: Path, out: Path, processes: int, threads: int) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--num_processes", str(processes)]
    if processes > 1:
        cmd.append("--multi_gpu")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WORKBENCH_PROGRESS": "0", "OMP_NUM_THREADS": str(threads)}
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"
    start = time.perf_counter()
    done = subprocess.run([*cmd, str(script), "--out", str(out)], cwd=script.parent, capture_output=True, text=True,
                          timeout=3600, env=env)
    return time.perf_counter() - start, done


def epochs(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["type"] == "epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--valid", type=int, default=300)
    parser.add_argument("--epochs", default="1,2", help="head-only epochs, then last(2) epochs")
    args = parser.parse_args()
    head_epochs, body_epochs = (int(n) for n in args.epochs.split(","))
    cores = os.cpu_count() or 1

    data = wb.load_data("mnist-5k").subset(train=args.train, valid=args.valid, seed=0)
    model = wb.load_backbone("efficientnet_lite0", data.num_classes, pretrained=True, image_size=64)
    session = wb.Session(data, model, batch_size=32, seed=0, name="scale-out")
    session.fit(head_epochs, progress=False)
    session.freeze(wb.last(2))
    session.fit(body_epochs, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        script = session.to_script(Path(tmp) / "train.py")
        runs = {}
        for n in (1, args.processes):
            seconds, done = launch(script, Path(tmp) / f"run{n}", n, threads=max(1, cores // n))
            if done.returncode != 0:
                raise SystemExit(f"{n} process(es) failed:\n{done.stderr[-3000:]}")
            accs = [e["valid_accuracy"] for e in epochs(Path(tmp) / f"run{n}")]
            runs[f"processes_{n}"] = {"seconds": round(seconds, 1), "threads_per_process": max(1, cores // n),
                                      "valid_accuracy": accs}
    one, many = runs["processes_1"], runs[f"processes_{args.processes}"]
    emit("scale_out", {
        "task": f"mnist-5k {args.train}/{args.valid}, efficientnet_lite0 64 px, batch 32 (global), "
                f"{head_epochs} head-only + {body_epochs} last(2) epochs",
        "notebook_valid_accuracy": [r.valid_accuracy for r in session.history],
        "one_process_replays_the_notebook": one["valid_accuracy"] == [r.valid_accuracy for r in session.history],
        **runs,
        "time_ratio_n_over_1": round(many["seconds"] / one["seconds"], 3),
        "final_accuracy_gap_n_minus_1": round(many["valid_accuracy"][-1] - one["valid_accuracy"][-1], 4),
    })


if __name__ == "__main__":
    main()
