"""The one-command GPU check (benchmarks/gpu_check.sh runs this). Prints one JSON object.

On a machine with CUDA, in this order, each stage in its own process with a time limit:
  cuda_tests   the CUDA-only tests (tests/cuda: bf16 autocast, channels_last, GPU-resident uint8
               data, deferred loss reads, a real out-of-memory error)
  suite        (--suite) the core test suite with the GPU as the default device: the CPU tests
               re-run where `device="auto"` means CUDA
  overhead     benchmarks/overhead.py: Session vs a plain loop doing the same work, on CUDA
  speed        benchmarks/speed.py: Session defaults vs a naive loop, on CUDA
  throughput   benchmarks/gpu_throughput.py: images/s and model FLOP utilisation, with anchors
Logs of every stage go to --out. Without CUDA it says so and exits 0.

    python benchmarks/gpu_check.py [--out gpu-check] [--suite] [--only overhead speed]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("cuda_tests", "suite", "overhead", "speed", "throughput")
LIMITS_S = {"cuda_tests": 150, "suite": 240, "overhead": 150, "speed": 150, "throughput": 120}


def pytest_stage(args: list[str], junit: Path) -> list[str]:
    xdist = subprocess.run([sys.executable, "-c", "import xdist"], capture_output=True).returncode == 0
    parallel = ["-n", "8"] if xdist and "tests/cuda" not in args else []
    return [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "-o", "addopts=--import-mode=importlib",
            f"--junitxml={junit}", "--timeout=120", *parallel]


def command(stage: str, out: Path) -> list[str]:
    bench = ROOT / "benchmarks"
    if stage == "cuda_tests":
        return pytest_stage(["tests/cuda", "-m", "cuda"], out / "cuda_tests.xml")
    if stage == "suite":
        return pytest_stage(["tests/train", "tests/models", "tests/analysis", "tests/data", "-m", "not slow"],
                            out / "suite.xml")
    script = {"overhead": "overhead.py", "speed": "speed.py", "throughput": "gpu_throughput.py"}[stage]
    return [sys.executable, str(bench / script), *(["--rounds", "3"] if stage != "throughput" else [])]


def junit_summary(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {"error": "no test report was written"}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for bad in list(case):
            if bad.tag in ("failure", "error"):
                message = (bad.get("message") or bad.text or "").strip().splitlines()
                failed.append(f"{case.get('classname')}::{case.get('name')}: {message[0][:300] if message else ''}")
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": failed}


def last_json(text: str) -> object:
    """The last top-level JSON object a script printed (the benchmarks print one, indented)."""
    start = text.rfind("\n{")
    start = 0 if start < 0 and text.startswith("{") else start
    try:
        return json.loads(text[start:])
    except (ValueError, TypeError):
        return None


def run_stage(stage: str, out: Path, env: dict[str, str]) -> dict[str, object]:
    started = time.perf_counter()
    log = out / f"{stage}.log"
    try:
        proc = subprocess.run(command(stage, out), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=LIMITS_S[stage])
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc = f"timed out after {LIMITS_S[stage]} s"
    log.write_text(text)
    result: dict[str, object] = {"seconds": round(time.perf_counter() - started, 1), "rc": rc}
    if stage in ("cuda_tests", "suite"):
        result.update(junit_summary(out / f"{stage}.xml"))
    else:
        parsed = last_json(proc.stdout if rc == 0 else text)
        result["result"] = parsed if parsed is not None else text[-1500:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check")
    parser.add_argument("--suite", action="store_true", help="also run the core suite with CUDA as the device")
    parser.add_argument("--only", nargs="*", choices=STAGES)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"gpu_check": {"cuda": False, "note": "no CUDA GPU on this machine: nothing to check"}}))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kit = ROOT / ".gpukit" / "site"
    paths = [str(ROOT), str(ROOT / "tests"), *([str(kit)] if kit.is_dir() else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    stages = args.only or [s for s in STAGES if s != "suite" or args.suite]
    started = time.perf_counter()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "offline_kit": kit.is_dir(), "stages": {}}
    for stage in stages:
        report["stages"][stage] = run_stage(stage, out, env)
        (out / "gpu_check.json").write_text(json.dumps({"gpu_check": report}, indent=1))
    report["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps({"gpu_check": report}, indent=1)
    (out / "gpu_check.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
