"""ScatterCanvas: a 2-D scatter on one <canvas>, with click and lasso selection (an anywidget).

Chosen by measuring in a real JupyterLab (benchmarks/map_widgets.py, 5,000 points, shared 2-core
CPU): this canvas drew in 66-86 ms and answered a lasso (page -> kernel -> gallery) in 33-45 ms
median; plotly 7.1's FigureWidget took 5.5-5.9 s to first draw (its bundle) and 122-282 ms per
lasso in the one run of three where its selection reached the kernel at all; bqplot 0.13.1 has no
ScatterGL, its SVG Scatter drew in ~650 ms and its lasso never reached the kernel. It ships ~150
lines of JavaScript instead of a plotting library. No server, no ports:
anywidget runs the module below in the page and syncs traits over the kernel's comm.

Points travel as one float32 buffer (binary, not JSON). Interaction state is a trait like bqplot's
`selected`: the positions (into the point arrays) the user clicked or lassoed. The lasso is a
polygon in data coordinates tested by even-odd ray casting, the same test as
`Embedding.inside`, so a polygon from code selects the same points.
"""

from __future__ import annotations

import anywidget
import numpy as np
import traitlets

_ESM = r"""
function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "wb-scatter-canvas";
  canvas.style.cursor = "crosshair";
  canvas.style.touchAction = "none";
  el.appendChild(canvas);
  el.classList.add("wb-scatter");
  const ctx = canvas.getContext("2d");
  let xy = new Float32Array(0), cls = new Uint8Array(0), wrong = new Uint8Array(0);
  let box = [0, 1, 0, 1], lasso = null;
  const W = () => model.get("width"), H = () => model.get("height");
  // left and bottom make room for tick labels and axis titles when there are any
  const L = () => (model.get("axes")[1] ? 44 : 12), B = () => (model.get("axes")[0] ? 34 : 12), pad = 12;
  const toPx = (x, y) => [L() + (x - box[0]) / (box[1] - box[0]) * (W() - L() - pad),
                          H() - B() - (y - box[2]) / (box[3] - box[2]) * (H() - B() - pad)];
  const toData = (px, py) => [box[0] + (px - L()) / (W() - L() - pad) * (box[1] - box[0]),
                              box[2] + (H() - B() - py) / (H() - B() - pad) * (box[3] - box[2])];
  function load() {
    const dv = model.get("points");
    xy = dv && dv.byteLength ? new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength)) : new Float32Array(0);
    const c = model.get("classes"), w = model.get("wrong");
    cls = c && c.byteLength ? new Uint8Array(c.buffer.slice(c.byteOffset, c.byteOffset + c.byteLength)) : new Uint8Array(0);
    wrong = w && w.byteLength ? new Uint8Array(w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength)) : new Uint8Array(0);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < xy.length; i += 2) {
      x0 = Math.min(x0, xy[i]); x1 = Math.max(x1, xy[i]); y0 = Math.min(y0, xy[i + 1]); y1 = Math.max(y1, xy[i + 1]);
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    const fixed = model.get("box");
    box = fixed && fixed.length === 4 ? fixed : [x0, x1, y0, y1];
  }
  function guides() {                                  // dashed lines, labels and axis titles (canvas text: never HTML)
    ctx.save();
    ctx.strokeStyle = "#888"; ctx.lineWidth = 1; ctx.setLineDash([5, 4]);
    for (const [ax, ay, bx, by] of model.get("lines")) {
      const [p, q] = toPx(ax, ay), [r, s] = toPx(bx, by);
      ctx.beginPath(); ctx.moveTo(p, q); ctx.lineTo(r, s); ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.font = "bold 12px sans-serif";
    for (const [x, y, text, color, align] of model.get("labels")) {
      const [px, py] = toPx(x, y);
      ctx.fillStyle = color || "#333"; ctx.textAlign = align || "left";
      ctx.fillText(String(text), px, Math.min(Math.max(py, 14), H() - 16));
    }
    const [xt, yt] = model.get("axes");
    ctx.font = "11px sans-serif"; ctx.fillStyle = "#555";
    const [xs, ys] = model.get("ticks").length === 2 ? model.get("ticks") : [[], []];
    ctx.textAlign = "center";
    for (const v of xs) { const [px] = toPx(v, box[2]); ctx.fillText(String(v), px, H() - B() + 13); }
    ctx.textAlign = "right";
    for (const v of ys) { const [, py] = toPx(box[0], v); ctx.fillText(String(v), L() - 4, py + 4); }
    if (xt) { ctx.textAlign = "center"; ctx.fillText(String(xt), L() + (W() - L()) / 2, H() - 4); }
    if (yt) { ctx.translate(11, H() / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center"; ctx.fillText(String(yt), 0, 0); }
    ctx.restore();
  }
  function draw() {
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W() * dpr; canvas.height = H() * dpr;
    // at most as wide as its box (a narrow notebook): scaled down, pointers scaled back in pos()
    canvas.style.width = W() + "px"; canvas.style.maxWidth = "100%"; canvas.style.height = "auto";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W(), H());
    ctx.strokeStyle = "#ddd"; ctx.strokeRect(0.5, 0.5, W() - 1, H() - 1);
    const palette = model.get("palette"), r = model.get("radius");
    const sel = new Set(model.get("selected")), hi = new Set(model.get("highlighted"));
    const dim = hi.size > 0;
    const n = xy.length / 2;
    for (let pass = 0; pass < 2; pass++) {          // right answers first, errors on top
      for (let i = 0; i < n; i++) {
        if ((wrong[i] === 1) !== (pass === 1)) continue;
        const [px, py] = toPx(xy[2 * i], xy[2 * i + 1]);
        ctx.globalAlpha = dim && !hi.has(i) ? 0.15 : 0.85;
        ctx.fillStyle = palette[cls[i] % palette.length] || "#888";
        if (wrong[i]) {
          ctx.beginPath(); ctx.arc(px, py, r + 1.5, 0, 6.2832); ctx.fill();
          ctx.strokeStyle = "#000"; ctx.lineWidth = 1; ctx.stroke();
        } else {
          ctx.fillRect(px - r, py - r, 2 * r, 2 * r);
        }
      }
    }
    ctx.globalAlpha = 1;
    guides();
    ctx.lineWidth = 1.5;
    for (const set of [hi, sel]) {
      ctx.strokeStyle = set === sel ? "#ff9800" : "#000";
      for (const i of set) {
        if (i >= n) continue;
        const [px, py] = toPx(xy[2 * i], xy[2 * i + 1]);
        ctx.beginPath(); ctx.arc(px, py, r + 4, 0, 6.2832); ctx.stroke();
      }
    }
    if (lasso && lasso.length > 1) {
      ctx.strokeStyle = "#333"; ctx.setLineDash([4, 3]); ctx.beginPath();
      lasso.forEach(([x, y], k) => k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)); ctx.closePath(); ctx.stroke();
      ctx.setLineDash([]);
    }
    el.dataset.drawn = String(n);
    el.dataset.drawMs = (performance.now() - t0).toFixed(1);
  }
  function inside(poly) {                              // even-odd ray casting, as Embedding.inside
    const out = [];
    const n = xy.length / 2;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      let c = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [ax, ay] = poly[a], [bx, by] = poly[b];
        if ((ay > y) !== (by > y) && x < ax + (y - ay) * (bx - ax) / (by - ay)) c = !c;
      }
      if (c) out.push(i);
    }
    return out;
  }
  function select(ids, polygon) {
    el.dataset.selectedAt = String(Date.now());
    model.set("selected", ids);
    model.set("lasso", polygon);
    model.save_changes();
  }
  const pos = (e) => {  // in drawing px: the canvas may be shown smaller than W() x H()
    const b = canvas.getBoundingClientRect(), k = b.width ? W() / b.width : 1;
    return [(e.clientX - b.left) * k, (e.clientY - b.top) * k];
  };
  canvas.addEventListener("pointerdown", (e) => { lasso = [pos(e)]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointermove", (e) => { if (lasso) { lasso.push(pos(e)); draw(); } });
  canvas.addEventListener("pointerup", (e) => {
    const path = lasso || [pos(e)]; lasso = null;
    let travel = 0;
    for (let k = 1; k < path.length; k++) travel += Math.hypot(path[k][0] - path[k - 1][0], path[k][1] - path[k - 1][1]);
    if (path.length < 3 || travel < 8) {              // a click: the nearest point within 8 px
      const [px, py] = path[path.length - 1];
      let best = -1, bestD = 64;
      for (let i = 0; i < xy.length / 2; i++) {
        const [qx, qy] = toPx(xy[2 * i], xy[2 * i + 1]);
        const d = (qx - px) ** 2 + (qy - py) ** 2;
        if (d < bestD) { best = i; bestD = d; }
      }
      select(best >= 0 ? [best] : [], []);
    } else {
      const poly = path.map(([x, y]) => toData(x, y));
      select(inside(poly), poly);
    }
    draw();
  });
  const redraw = () => { load(); draw(); };
  model.on("change:points", redraw);
  model.on("change:classes", redraw);
  model.on("change:wrong", redraw);
  model.on("change:box", redraw);
  for (const name of ["selected", "highlighted", "palette", "width", "height", "radius", "lines", "labels", "axes",
                      "ticks"]) {
    model.on("change:" + name, draw);
  }
  redraw();
}
export default { render };
"""


class ScatterCanvas(anywidget.AnyWidget):
    """Points with a class colour and an error mark; click or lasso to set `selected` (positions)."""

    _esm = _ESM
    points = traitlets.Bytes(b"").tag(sync=True)  # float32 (N, 2), C order
    classes = traitlets.Bytes(b"").tag(sync=True)  # uint8 (N,): index into palette
    wrong = traitlets.Bytes(b"").tag(sync=True)  # uint8 (N,): 1 = an error, drawn as a ringed dot on top
    palette = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.List(traitlets.Int()).tag(sync=True)  # positions the user picked
    highlighted = traitlets.List(traitlets.Int()).tag(sync=True)  # positions ringed, others dimmed
    lasso = traitlets.List().tag(sync=True)  # the last lasso polygon, data coordinates
    width = traitlets.Int(520).tag(sync=True)
    height = traitlets.Int(420).tag(sync=True)
    radius = traitlets.Float(2.5).tag(sync=True)
    box = traitlets.List(traitlets.Float()).tag(sync=True)  # [x0, x1, y0, y1]: fixed data bounds; empty = fit the points
    lines = traitlets.List().tag(sync=True)  # [[x0, y0, x1, y1], ...] dashed guide lines in data coordinates
    labels = traitlets.List().tag(sync=True)  # [[x, y, text, colour, "left" | "right"], ...] drawn as canvas text
    axes = traitlets.List(traitlets.Unicode(), default_value=["", ""]).tag(sync=True)  # x and y axis titles
    ticks = traitlets.List().tag(sync=True)  # [[x values], [y values]] labelled along the axes (with axis titles)

    def set_points(self, coords: np.ndarray, classes: np.ndarray, wrong: np.ndarray, palette: list[str]) -> None:
        """Replace the points (one message: traits are held and sent together)."""
        with self.hold_sync():
            self.selected, self.highlighted, self.lasso = [], [], []
            self.palette = list(palette)
            self.classes = np.asarray(classes, dtype=np.uint8).tobytes()
            self.wrong = np.asarray(wrong, dtype=np.uint8).tobytes()
            self.points = np.ascontiguousarray(coords, dtype=np.float32).tobytes()
