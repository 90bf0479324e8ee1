"""Shared by the benchmark scripts: alternate contenders, repeat, report median and range as JSON.

Machines here are shared and noisy, so figures are ratios measured in one run, contenders
alternate within each round (drift hits both), and we print the median with the range.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
# Benchmarks time the work itself: the disk feature cache (train/disk_cache.py) would let a second
# Session read features an earlier one computed. restart_cache.py turns it on where it measures it.
os.environ.setdefault("WORKBENCH_FEATURE_CACHE", "0")


def steady_malloc() -> str:
    """Keep freed memory in this process (glibc malloc's trim and mmap thresholds raised).

    By default glibc hands large freed blocks back to the OS and page-faults them in again on the
    next batch: a full MiniLM epoch took 30k-140k minor faults, varying epoch to epoch by 10%
    for either contender. Raised thresholds take the faults (and that noise) out of both sides, so
    a ratio measures the loop, not allocator luck. Process-wide, so only benchmarks call it.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "default (not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 32 * 1024**2) == 1 and libc.mallopt(m_trim_threshold, 1024**3) == 1
    return "steady (glibc mmap threshold 32 MiB, trim threshold 1 GiB)" if ok else "default (mallopt refused)"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(contenders: dict[str, Callable[[], object]], rounds: int = 3, warmup: int = 1) -> dict[str, list[float]]:
    """Run each contender once per round, in turn, reversing the order every other round (so
    neither always runs first, on a cache the other warmed); `warmup` untimed rounds first."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        names = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in names:
            times[name].append(timed(contenders[name]))
    return times


def ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Median and range of per-round ratios num/den (paired within a round)."""
    r = [a / b for a, b in zip(times[num], times[den])]
    return {"median": round(statistics.median(r), 4), "min": round(min(r), 4), "max": round(max(r), 4)}


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4), "max_s": round(max(times), 4)}


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What the figures depend on: int8 and bf16 speed-ups change with the CPU's vector units (an AVX2
    machine and an AVX-512 one differ), so the JSON names them."""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def emit(name: str, result: dict[str, object]) -> None:
    print(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=1))
