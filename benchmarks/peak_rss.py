"""Peak resident memory of the headless demos (`./run demo --headless [--text]`). Target <= 2 GB.

Each demo runs in its own child process, with the malloc settings `./run demo` gives it; wait4
gives that child's own peak. JSON.

    python benchmarks/peak_rss.py image text
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import emit

TARGET_MB = 2048


def run_script_env() -> dict[str, str]:
    """The environment `./run demo` starts the demo with (its GLIBC_TUNABLES default)."""
    text = (Path(__file__).resolve().parents[1] / "run").read_text()
    found = re.search(r'GLIBC_TUNABLES="\$\{GLIBC_TUNABLES:-([^}]+)\}"', text)
    if found is None:
        raise RuntimeError("could not find the GLIBC_TUNABLES default in ./run; update peak_rss.py")
    return {**os.environ, "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", found.group(1))}


def peak_mb(args: list[str]) -> tuple[float, float]:
    """Run one demo; return its own peak RSS (MiB, from wait4's rusage) and wall time."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "workbench.demo", "--headless", *args],
                             stdout=subprocess.DEVNULL, env=run_script_env())
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
    emit("peak_rss", {"target_mb": TARGET_MB, "glibc_tunables": run_script_env()["GLIBC_TUNABLES"], "results": results})


if __name__ == "__main__":
    main()
