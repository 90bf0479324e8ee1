"""Kernel restart -> first head-only epoch, without and with the disk feature cache. JSON.

Each contender is a fresh Python process (what a restarted kernel is): import workbench, load the
data and the pretrained backbone, build a Session (head only) and train one epoch. "recompute"
starts every time with an empty cache folder (what a restart cost before train/disk_cache.py);
"disk" uses a folder an untimed first process filled, so its first epoch reads the features.
Contenders alternate, reversing the order every other round; the figures are per-round ratios.

    python benchmarks/restart_cache.py [--rounds 3] [--cases image text]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {
    # (dataset, backbone, build options, subset per class or None)
    "image": ("mnist-5k", "efficientnet_lite0", {"image_size": 64}, None),
    "text": ("rotten-tomatoes", "minilm-l6", {"max_length": 64}, {"train": 1000, "valid": 200}),
}


def child(case: str) -> None:
    """One restarted kernel: time each stage up to the end of the first head-only epoch."""
    started = time.perf_counter()
    sys.path.insert(0, str(HERE.parent))
    import workbench as wb

    dataset, backbone, build, subset = CASES[case]
    data = wb.load_data(dataset)
    if subset:
        data = data.subset(**subset, seed=0)
    model = wb.load_backbone(backbone, num_classes=data.num_classes, pretrained=True, **build)
    session = wb.Session(data, model, batch_size=64, seed=0, freeze="head")
    ready = time.perf_counter()
    tasks: list[str] = []
    session.on("progress", lambda p: tasks.append(p.task) if p.done == 0 else None)
    result = session.step(progress=False)
    done = time.perf_counter()
    print(json.dumps({"setup_s": ready - started, "first_epoch_s": done - ready, "accuracy": result.valid_accuracy,
                      "read_from_disk": any(t.startswith("disk cache") for t in tasks),
                      "computed": any(t.startswith("features") for t in tasks)}))


def run_child(case: str, cache: Path) -> dict[str, float]:
    env = {"OMP_WAIT_POLICY": "PASSIVE",  # spin-waiting OpenMP threads collapse on a shared CPU (both contenders)
           **os.environ, "WORKBENCH_FEATURE_CACHE": "1", "WORKBENCH_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", case], env=env,
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    record = json.loads(out.stdout.strip().splitlines()[-1])
    return {**record, "restart_to_first_epoch_s": wall}


def measure(case: str, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="wb-restart-") as tmp:
        warm = Path(tmp) / "disk"
        primed = run_child(case, warm)  # untimed: fills the folder the "disk" contender reads
        assert primed["computed"] and not primed["read_from_disk"]
        runs: dict[str, list[dict[str, float]]] = {"recompute": [], "disk": []}
        for r in range(rounds):
            order = ["recompute", "disk"] if r % 2 == 0 else ["disk", "recompute"]
            for name in order:
                cache = warm if name == "disk" else Path(tmp) / f"empty-{r}"
                runs[name].append(run_child(case, cache))
    assert all(x["read_from_disk"] and not x["computed"] for x in runs["disk"])
    assert all(x["computed"] and not x["read_from_disk"] for x in runs["recompute"])

    def stat(name: str, key: str) -> dict[str, float]:
        values = [x[key] for x in runs[name]]
        return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
                "max_s": round(max(values), 3)}

    def ratio(key: str) -> dict[str, float]:
        r = [a[key] / b[key] for a, b in zip(runs["disk"], runs["recompute"])]
        return {"median": round(statistics.median(r), 3), "min": round(min(r), 3), "max": round(max(r), 3)}

    return {
        "dataset": CASES[case][0], "backbone": CASES[case][1],
        "first_epoch": {"recompute": stat("recompute", "first_epoch_s"), "disk": stat("disk", "first_epoch_s"),
                        "ratio_disk_over_recompute": ratio("first_epoch_s")},
        "restart_to_first_epoch": {"recompute": stat("recompute", "restart_to_first_epoch_s"),
                                   "disk": stat("disk", "restart_to_first_epoch_s"),
                                   "ratio_disk_over_recompute": ratio("restart_to_first_epoch_s")},
        "same_accuracy": len({round(x["accuracy"], 6) for x in runs["disk"] + runs["recompute"]}) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    import platform

    import torch

    results = {case: measure(case, args.rounds) for case in args.cases}
    print(json.dumps({"benchmark": "restart_cache", "machine": {"python": platform.python_version(),
                      "torch": torch.__version__, "threads": torch.get_num_threads()},
                      "rounds": args.rounds, "results": results}, indent=1))


if __name__ == "__main__":
    main()
