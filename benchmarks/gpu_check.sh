#!/usr/bin/env bash
# One command for the GPU check (benchmarks/gpu_check.py says what runs): the CUDA-only tests,
# then overhead.py, speed.py and the throughput benchmark on CUDA, as one JSON object. On a
# machine without CUDA it says so and exits 0. Uses the project's .venv when there is one, else
# python3; a .gpukit/ folder (benchmarks/gpu_kit.py) supplies the offline assets where nothing
# can be installed.
#
#   benchmarks/gpu_check.sh [--out DIR] [--suite] [--only STAGE ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"
