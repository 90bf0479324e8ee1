"""Peak resident memory of the headless demos (`./run demo --headless [--text]`). Target <= 2 GB.

Each demo runs in its own child process; wait4 gives that child's own peak. JSON.

    python benchmarks/peak_rss.py image text
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import emit

TARGET_MB = 2048


def peak_mb(args: list[str]) -> tuple[float, float]:
    """Run one demo; return its own peak RSS (MiB, from wait4's rusage) and wall time."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "workbench.demo", "--headless", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"the demo {args} exited with {child.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    which = sys.argv[1:] or ["image"]
    results = {}
    for name in which:
        mb, seconds = peak_mb(["--text"] if name == "text" else [])
        results[name] = {"peak_rss_mb": round(mb), "seconds": round(seconds, 1), "meets_target": mb <= TARGET_MB}
    emit("peak_rss", {"target_mb": TARGET_MB, "results": results})


if __name__ == "__main__":
    main()
