"""Which interactive scatter for the data map: measured in a real JupyterLab, 5,000 points.

Candidates: plotly's FigureWidget (Scattergl, lasso), bqplot (Scatter, SVG: 0.13.1 has no
ScatterGL, + LassoSelector) and our
own anywidget canvas (workbench.widgets.scatter.ScatterCanvas). For each, a generated notebook
draws 5,000 points in 10 clusters and an HTML "gallery" that a selection callback fills, as the
Map tab does. Measured, both clocks this machine's (Date.now() in the page, time.time() in the
kernel):

- render_ms: from the cell starting in the kernel to the points drawn in the page (the canvas /
  WebGL layer present and, for ours, its data-drawn attribute = 5000);
- select_ms: from the mouse-up that ends a lasso drag to the gallery text changing (page -> kernel
  callback -> page), median of `--rounds` lassos at alternating places.

    PYTHONPATH=. .venv/bin/python benchmarks/map_widgets.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser.lab import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, open_notebook, run_all, start_lab, wait_until_idle  # noqa: E402

SETUP = (
    "import time, numpy as np, ipywidgets as W\n"
    "rng = np.random.default_rng(0)\n"
    "centres = rng.normal(scale=6, size=(10, 2))\n"
    "labels = rng.integers(0, 10, 5000)\n"
    "xy = (centres[labels] + rng.normal(size=(5000, 2))).astype('float32')\n"
    "gallery = W.HTML('nothing selected'); gallery.add_class('bench-gallery')\n"
    "def show(ids):\n"
    "    ids = list(ids or [])\n"
    "    gallery.value = f'selected {len(ids)} at {time.time():.3f}: ' + ', '.join(map(str, ids[:20]))\n"
)

CANDIDATES = {
    "anywidget_canvas": (
        "from workbench.widgets.scatter import ScatterCanvas\n"
        "from workbench.plots import class_palette\n"
        "print('T0', time.time())\n"
        "w = ScatterCanvas(width=600, height=450)\n"
        "w.set_points(xy, labels, labels % 7 == 0, class_palette(10))\n"
        "w.observe(lambda c: show(c.new), names='selected')\n"
        "W.VBox([w, gallery])",
        "() => { const e = document.querySelector('.wb-scatter'); return e && e.dataset.drawn === '5000' ? Date.now() : false }",
        ".wb-scatter canvas",
    ),
    "plotly_figurewidget": (
        "import plotly.graph_objects as go\n"
        "print('T0', time.time())\n"
        "w = go.FigureWidget(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode='markers',\n"
        "                     marker=dict(color=labels, colorscale='Turbo', size=5)))\n"
        "w.update_layout(width=600, height=450, dragmode='lasso', margin=dict(l=10, r=10, t=10, b=10))\n"
        "w.data[0].on_selection(lambda trace, points, state: show(points.point_inds))\n"
        "W.VBox([w, gallery])",
        "() => { const e = document.querySelector('.js-plotly-plot .gl-container canvas'); return e ? Date.now() : false }",
        ".js-plotly-plot .nsewdrag",
    ),
    "bqplot_scatter": (
        "import bqplot as bq\n"
        "print('T0', time.time())\n"
        "sx, sy = bq.LinearScale(), bq.LinearScale()\n"
        "sc = bq.Scatter(x=xy[:, 0], y=xy[:, 1], color=labels.astype(float), scales={'x': sx, 'y': sy,\n"
        "                'color': bq.ColorScale(scheme='RdYlBu')}, default_size=12)  # 0.13.1 has no ScatterGL\n"
        "lasso = bq.interacts.LassoSelector(x_scale=sx, y_scale=sy, marks=[sc])\n"
        "w = bq.Figure(marks=[sc], interaction=lasso, layout=W.Layout(width='600px', height='450px'))\n"
        "sc.observe(lambda c: show(c.new), names='selected')\n"
        "W.VBox([w, gallery])",
        "() => document.querySelectorAll('.bqplot .scatter .dot, .bqplot path.dot').length >= 5000 ? Date.now() : false",
        ".bqplot",
    ),
}

GALLERY_CHANGED = """old => { const e = document.querySelector('.bench-gallery');
  const t = e ? e.textContent : ''; return t !== old && t.startsWith('selected') ? Date.now() : false }"""


partial: dict[str, dict] = {}  # what a candidate measured before it failed


def measure(page, lab, name: str, rounds: int) -> dict:
    code, drawn_js, target = CANDIDATES[name]
    nb = lab.write_notebook(f"map_{name}.ipynb", [SETUP, code])
    open_notebook(page, lab, nb)
    run_all(page)
    drawn_at = page.wait_for_function(drawn_js, timeout=120_000, polling=10).json_value()
    wait_until_idle(page, timeout=120)
    out = page.locator(".jp-OutputArea-output").all_inner_texts()
    t0 = next(float(line.split()[1]) for text in out for line in text.splitlines() if line.startswith("T0 "))
    box = page.locator(target).first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    partial[name] = {"render_ms": round(drawn_at - t0 * 1000)}
    latencies = []
    for r in range(rounds):
        dx = -80 if r % 2 == 0 else 40
        old = page.locator(".bench-gallery").inner_text()
        page.mouse.move(cx + dx, cy - 50)
        page.mouse.down()
        for px, py in ((cx + dx + 60, cy - 50), (cx + dx + 60, cy + 30), (cx + dx, cy + 30), (cx + dx, cy - 45)):
            page.mouse.move(px, py, steps=4)
        start = page.evaluate("Date.now()")
        page.mouse.up()
        done = page.wait_for_function(GALLERY_CHANGED, arg=old, timeout=30_000, polling=5).json_value()
        latencies.append(done - start)
        page.wait_for_timeout(300)
    text = page.locator(".bench-gallery").inner_text()
    page.screenshot(path=str(REPO / "test-artifacts" / f"map_{name}.png"))
    return {"render_ms": round(drawn_at - t0 * 1000), "select_ms_median": round(statistics.median(latencies)),
            "select_ms": [round(v) for v in latencies], "last_selection": text.split(":")[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = parser.parse_args()
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    from playwright.sync_api import sync_playwright

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        lab = start_lab(Path(tmp), notebooks=Path(tmp) / "none")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                for name in [c for c in CANDIDATES if not args.only or c in args.only]:
                    context = browser.new_context(viewport=VIEWPORT)
                    page = context.new_page()
                    errors = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    try:
                        results[name] = measure(page, lab, name, args.rounds)
                    except Exception as exc:  # a candidate that fails to render is a result too
                        results[name] = {**partial.get(name, {}), "failed": f"{type(exc).__name__}: {str(exc)[:300]}"}
                        page.screenshot(path=str(REPO / "test-artifacts" / f"map_{name}_failed.png"))
                        results[name]["dom"] = page.evaluate(
                            "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerHTML.slice(0, 400))")
                    if errors:
                        results[name]["page_errors"] = errors[:3]
                    context.close()
                    lab.reset()
                browser.close()
        finally:
            lab.stop()
    print(json.dumps({"benchmark": "map_widgets", "points": 5000, "machine": "2-core CPU shared with two other "
                      "engineers' jobs (timings noisy)", "results": results}, indent=1))


if __name__ == "__main__":
    main()
