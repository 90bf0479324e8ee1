"""The data map of Dataset Cartography (Swayamdipta et al. 2020) from `errors.data_map()`.

Each train sample is a point: x = variability (std of its label's probability over epochs), y =
confidence (their mean), colour = correctness (share of epochs it was right). The region lines are
the thresholds the frame's `region` column uses; region names carry their counts. Text is fixed
(no class names), so nothing a dataset supplies is parsed as mathtext.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .core import PlotFigure

REGION_COLORS = {"easy-to-learn": "#2e7d32", "ambiguous": "#ef6c00", "hard-to-learn": "#c62828"}


def data_map_figure(data_map, highlight: Sequence[int] | None = None, size: tuple[float, float] = (6.5, 4.8)) -> Figure:
    """Confidence over variability per train sample, coloured by correctness; `highlight` ids ringed."""
    frame = data_map.frame[data_map.frame["epochs_seen"] > 0]
    fig = PlotFigure(figsize=size, layout="constrained")
    ax = fig.subplots()
    x, y = frame["variability"].to_numpy(), frame["confidence"].to_numpy()
    dots = ax.scatter(x, y, c=frame["correctness"].to_numpy(), cmap="RdYlGn", vmin=0, vmax=1, s=7, alpha=0.75,
                      linewidths=0, rasterized=True)
    fig.colorbar(dots, ax=ax, label="correctness", shrink=0.85)
    if highlight is not None and len(highlight):
        ring = frame.index.isin(np.asarray(highlight, dtype=np.int64))
        ax.scatter(x[ring], y[ring], s=36, facecolors="none", edgecolors="black", linewidths=0.8,
                   label=f"highlighted ({int(ring.sum())})")
        ax.legend(loc="lower right", fontsize=8, frameon=True, framealpha=0.85)
    right = max(0.5, float(np.nanmax(x)) * 1.05 if len(x) else 0.5)
    for (x0, y0), (x1, y1) in region_lines(data_map.thresholds, right):
        ax.plot([x0, x1], [y0, y1], color="grey", lw=0.9, ls="--")
    counts = data_map.counts()
    for name, (tx, ty, va) in region_labels(data_map.thresholds, right).items():
        ax.text(tx, ty, f"{name} ({counts[name]})", ha="left" if tx < right * 0.9 else "right", va=va, fontsize=9,
                color=REGION_COLORS[name], fontweight="bold", bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
    epochs = list(data_map.epochs)
    span = f"epochs {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}" if epochs else "no epochs"
    ax.set(xlim=(0, right), ylim=(-0.02, 1.02), xlabel="variability (std of p(label) over epochs)",
           ylabel="confidence (mean p(label))", title=f"data map: {len(frame)} train samples, {span}")
    ax.grid(alpha=0.25)
    return fig


def region_lines(t: dict[str, float], right: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The region borders in (variability, confidence): hard-to-learn below one line, easy-to-learn in
    the top-left box (the widget's canvas draws the same lines)."""
    hard, easy, var = t["hard_below"], t["easy_above"], t["variable_above"]
    return [((0, hard), (right, hard)), ((0, easy), (var, easy)), ((var, easy), (var, 1.0))]


def region_labels(t: dict[str, float], right: float) -> dict[str, tuple[float, float, str]]:
    """Where each region's name goes: (x, y, vertical alignment) in data coordinates."""
    # where no sample can be: a high variability needs a confidence away from 0 and 1 (std <= sqrt(c(1 - c)))
    return {"easy-to-learn": (t["variable_above"] + 0.01, 1.0, "top"), "hard-to-learn": (right * 0.99, 0.0, "bottom"),
            "ambiguous": (right * 0.99, (t["hard_below"] + 1.0) / 2, "center")}
