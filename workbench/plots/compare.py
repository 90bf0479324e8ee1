"""Figures that compare runs (workbench.analysis.compare's Comparison): curves, per-class scores,
confusion matrices and the samples one run gets right and another wrong."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..validate import integer
from .core import PlotFigure, _batch_x, _short, _wrap, class_palette, involved_classes, legend_label, literal

PANELS = {
    "loss": "loss per epoch (solid: valid, dashed: train)",
    "accuracy": "accuracy per epoch (solid: valid, dashed: train)",
    "f1": "valid macro-F1 per epoch",
    "batch_loss": "training loss per batch (smoothed)",
    "time": "valid accuracy against seconds spent",
}


def _run_names(comparison, legend: str) -> list[str]:
    """What the runs are called in a figure: "differs" (the settings that differ) or "names"."""
    if legend not in ("differs", "names"):
        raise ValueError(f"legend={legend!r}: use 'differs' (the settings that differ) or 'names' (the runs' names).")
    return list(comparison.labels if legend == "differs" else comparison.names)


def compare_curves_figure(comparison, panels: Sequence[str] = ("loss", "accuracy"), smooth: int = 5,
                          size: tuple[float, float] | None = None, legend: str = "differs") -> Figure:
    """The runs' curves overlaid, one colour per run, named by what differs (`comparison.labels`;
    legend="names": by the runs' names).

    panels: any of "loss", "accuracy", "f1", "batch_loss" (every batch's training loss, smoothed
    over `smooth` batches, x in epochs) and "time" (valid accuracy against the seconds spent).
    """
    smooth = integer("smooth", smooth, low=1, hint="Batches the per-batch loss is averaged over, e.g. 5.")
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise ValueError(f"Unknown panels {unknown}: choose from {', '.join(PANELS)}.")
    fig = PlotFigure(figsize=size or (4.6 * len(panels) + 0.4, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    palette = class_palette(max(len(comparison.runs), 1))
    for color, name, run in zip(palette, _run_names(comparison, legend), comparison.runs):
        label = legend_label(name)
        h = run.history
        epochs = [r.epoch for r in h]
        for ax, panel in zip(axes, panels):
            if panel == "loss":
                ax.plot(epochs, [r.train_loss for r in h], "--", color=color, lw=1)
                ax.plot(epochs, [_nan(r.valid_loss) for r in h], "o-", color=color, ms=4, label=label)
            elif panel == "accuracy":
                ax.plot(epochs, [r.train_accuracy for r in h], "--", color=color, lw=1)
                ax.plot(epochs, [_nan(r.valid_accuracy) for r in h], "o-", color=color, ms=4, label=label)
            elif panel == "f1":
                ax.plot(epochs, [_nan(r.valid_macro_f1) for r in h], "o-", color=color, ms=4, label=label)
            elif panel == "batch_loss":
                y = np.concatenate([np.asarray(r.batch_losses, dtype=float) for r in h] or [np.zeros(0)])
                x = np.concatenate([_batch_x(r.epoch, r.num_batches, len(r.batch_losses)) for r in h] or [np.zeros(0)])
                n = max(1, min(smooth, len(y)))
                if len(y):
                    ax.plot(x[n - 1:], np.convolve(y, np.ones(n) / n, mode="valid"), color=color, lw=1.2, label=label)
            else:
                seconds = np.cumsum([r.epoch_time_s for r in h])
                ax.plot(seconds, [_nan(r.valid_accuracy) for r in h], "o-", color=color, ms=4, label=label)
    for ax, panel in zip(axes, panels):
        ax.set_title(textwrap.fill(PANELS[panel], 32 if len(panels) == 1 else 60), fontsize=11)
        ax.set(xlabel="seconds" if panel == "time" else "epoch")
        if panel != "time":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel in ("accuracy", "f1", "time"):
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9, frameon=False, loc="best")
    return fig


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def compare_per_class_figure(comparison, metric: str = "f1", highlight: Sequence[str] = (),
                             size: tuple[float, float] | None = None, legend: str = "differs") -> Figure:
    """`metric` per class as grouped bars, one colour per run; `highlight` shades some classes."""
    table = comparison.per_class(metric)
    classes = [str(c) for c in table.index]
    k, n = len(classes), len(comparison.runs)
    fig = PlotFigure(figsize=size or (min(max(6.0, 0.55 * k * max(n, 2) / 2 + 2), 16), 3.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(k)
    width = 0.8 / n
    for j, (color, name, label) in enumerate(zip(class_palette(n), comparison.names, _run_names(comparison, legend))):
        ax.bar(x - 0.4 + width * (j + 0.5), table[name].to_numpy(), width, color=color, label=legend_label(label))
    for c in highlight:
        if str(c) in classes:
            i = classes.index(str(c))
            ax.axvspan(i - 0.5, i + 0.5, color="grey", alpha=0.12, lw=0)
    ax.set_xticks(x, [literal(_short(c, 12)) for c in classes], rotation=45 if k > 12 else 0, ha="right" if k > 12 else "center")
    ax.set(title=f"{metric} per class (valid)", ylabel=metric, ylim=(0, 1.05), xlim=(-0.5, k - 0.5))
    ax.legend(fontsize=9, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12 if k <= 12 else -0.3),
              ncols=min(n, 3))
    ax.grid(alpha=0.3, axis="y")
    return fig


def compare_confusion_figure(comparison, normalize: bool = False, max_classes: int = 12, size: float = 3.8,
                             legend: str = "differs") -> Figure:
    """The runs' confusion matrices side by side on one colour scale (with many classes: those in
    the most confusion summed over the runs)."""
    import seaborn as sns

    max_classes = integer("max_classes", max_classes, low=1, hint="How many classes each matrix shows at most.")
    matrices = comparison.confusion_matrices()
    classes = list(comparison.runs[0].classes)
    keep = list(range(len(classes)))
    if len(classes) > max_classes:
        keep = involved_classes(sum(matrices), max_classes)
    shown = []
    for m in matrices:
        if normalize:
            totals = m.sum(axis=1, keepdims=True)
            m = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0)
        shown.append(m[np.ix_(keep, keep)])
    names = [literal(_short(str(classes[i]), 10)) for i in keep]
    vmax = max(float(m.max()) for m in shown) or 1.0
    n = len(shown)
    fig = PlotFigure(figsize=(size * n + 0.6, size * 0.95), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for j, (ax, m, label, a) in enumerate(zip(axes, shown, _run_names(comparison, legend), comparison.analyses)):
        sns.heatmap(m, ax=ax, cmap="Blues", vmin=0, vmax=vmax, annot=len(keep) <= 10, fmt=".2f" if normalize else "d",
                    annot_kws={"fontsize": 8}, xticklabels=names, yticklabels=names if j == 0 else False,
                    cbar=j == n - 1, square=True, linewidths=0.5)
        ax.set_title(f"{literal(_short(label, 36))}\naccuracy {a.accuracy:.3f}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("true")
    return fig


def compare_samples_figure(comparison, a=0, b=1, k: int = 12, columns: int = 6, legend: str = "differs") -> Figure:
    """The samples run `a` gets right and run `b` gets wrong (highest loss under b first)."""
    k = integer("k", k, low=1, hint="How many samples to show, e.g. 12.")
    columns = integer("columns", columns, low=1, hint="Samples per row, e.g. 6.")
    ia, ib = comparison.index(a), comparison.index(b)
    ids = comparison.right_wrong(ia, ib)[:k]
    data = comparison.data(ib)
    eb = comparison.analysis(ib)
    rows = max(1, int(np.ceil(len(ids) / columns)))
    fig = PlotFigure(figsize=(columns * 1.7, rows * 1.9 + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    table = eb.table(ids) if len(ids) else None
    for ax, row in zip(axes, table.itertuples() if table is not None else ()):
        item = data.item(int(row.id), "valid") if data is not None else f"sample {row.id}"
        if isinstance(item, str):
            ax.text(0, 1, literal(_wrap(item, 28, 7)), va="top", fontsize=7, transform=ax.transAxes, wrap=True)
        else:
            ax.imshow(np.asarray(item), cmap="gray" if item.mode == "L" else None)
        ax.set_title(f"#{row.id} true {literal(row.true)}\n{literal(_short(comparison.names[ib], 12))}: "
                     f"{literal(row.predicted)} (p={row.probability:.2f})",
                     fontsize=7, color="#b00")
    total = len(comparison.right_wrong(ia, ib))
    called = _run_names(comparison, legend)
    fig.suptitle(f"right in {literal(called[ia])}, wrong in {literal(called[ib])}: {total} samples"
                 + (f" (first {len(ids)})" if total > len(ids) else ""), fontsize=9)
    return fig
