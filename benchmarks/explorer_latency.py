"""ErrorExplorer: click on a confusion-matrix cell -> gallery of 50 thumbnails shown, in a real JupyterLab.

A generated notebook shows an ErrorExplorer over mnist-5k's validation split (100 per class) with
predictions built directly (every sample predicted as the next class), so cells (0 -> 1) and
(1 -> 2) each hold 100 samples and the gallery shows the first 50. Clicks alternate between the
two cells. Each latency runs from Date.now() in a capture-phase click listener (before the widget
sends its message to the kernel) until, polled every animation frame, the gallery box holds a new
`.wb-gallery` with 50 figures whose images are all complete. The first click on each cell also
encodes its thumbnails (cold cache); later ones reuse them. Prints JSON. Target: median <= 300 ms.

    cd benchmarks && ../.venv/bin/python explorer_latency.py [--clicks 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser.lab import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, VIEWPORT, open_notebook, run_all, start_lab, wait_until_idle)

TARGET_MS = 300
N = 50
CELLS = ("cm-cell-0-1", "cm-cell-1-2")

NOTEBOOK = [
    "from types import SimpleNamespace\n"
    "import numpy as np\n"
    "import workbench as wb\n"
    "from workbench.train.records import Predictions\n"
    "data = wb.load_data('mnist-5k')\n"
    "y = data.valid.labels\n"
    "pred = (y + 1) % data.num_classes  # every sample wrong: cell (i, i+1) holds all of class i\n"
    "rng = np.random.default_rng(0)\n"
    "logits = rng.normal(size=(len(y), data.num_classes)).astype(np.float32)\n"
    "logits[np.arange(len(y)), pred] += 6.0\n"
    "z = logits - logits.max(1, keepdims=True)\n"
    "losses = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(y)), y]\n"
    "preds = Predictions(logits, np.asarray(y), losses.astype(np.float32), np.arange(len(y)), 1)\n"
    "fake = SimpleNamespace(data=data, predictions=preds, previous_predictions=None, on=lambda e, fn: fn)",
    "x = wb.ErrorExplorer(fake); x",
]

# Installed once in the page: each click on a matrix cell pushes its latency (ms) to __wbLat.
PROBE_JS = """n => {
  window.__wbLat = [];
  document.addEventListener('click', e => {
    if (!e.target.closest('.wb-matrix button')) return;
    const t0 = Date.now();
    const box = document.querySelector('.wb-gallery-box');
    const old = box.querySelector('.wb-gallery');
    const poll = () => {
      const g = box.querySelector('.wb-gallery');
      const imgs = g && g !== old ? [...g.querySelectorAll('figure.wb-item img')] : [];
      if (imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0)) {
        window.__wbLat.push(Date.now() - t0);
      } else {
        requestAnimationFrame(poll);
      }
    };
    requestAnimationFrame(poll);
  }, true);
}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clicks", type=int, default=6)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="wb-explorer-bench-") as tmp:
        lab = start_lab(Path(tmp), notebooks=Path(tmp) / "no-notebooks")
        errors: list[str] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.set_default_timeout(60_000)
                open_notebook(page, lab, lab.write_notebook("explorer_bench.ipynb", NOTEBOOK))
                run_all(page)
                wait_until_idle(page, timeout=120)
                page.locator(".wb-explorer .wb-matrix").wait_for()
                page.evaluate(PROBE_JS, N)
                for k in range(args.clicks):
                    page.locator(f".wb-matrix button.{CELLS[k % 2]}").click()
                    page.wait_for_function("k => window.__wbLat.length > k", arg=k, timeout=30_000, polling=50)
                    page.wait_for_timeout(200)  # let the frontend settle before the next click
                latencies = page.evaluate("() => window.__wbLat")
                browser.close()
        finally:
            lab.stop()

    med = statistics.median(latencies)
    print(json.dumps({
        "benchmark": "explorer_latency",
        "what": f"click on a matrix cell -> {N} thumbnails shown and loaded (ms), alternating {CELLS}",
        "latencies_ms": latencies,
        "note": "clicks 1 and 2 encode their cell's thumbnails (cold cache)",
        "median_ms": med, "min_ms": min(latencies), "max_ms": max(latencies),
        "target_ms": TARGET_MS, "meets_target": med <= TARGET_MS,
        "console_errors": errors,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
