"""Figures for reports, saved notebooks and the widgets' live views.

matplotlib `Figure` + `FigureCanvasAgg`, never pyplot: safe to build in a training thread, and
the same figure a widget shows is what a script saves. `png(fig)` gives the bytes a widget needs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = {"train": "#1f77b4", "valid": "#d62728", "f1": "#2ca02c", "batch": "#9ecae1"}


class PlotFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in a notebook (no pyplot needed), so a
    figure on a cell's last line becomes a plain image output that a saved notebook keeps."""

    def _repr_png_(self) -> bytes:
        return png(self)


def png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (~70 ms for the training figure)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


Live = tuple[int, int, Sequence[tuple[int, float]]]  # (epoch, batches in it, [(batch, loss), ...])


def training_figure(history: Sequence, live: Live | None = None, size: tuple[float, float] = (10.5, 2.9)) -> Figure:
    """Loss (every batch, and per epoch train/valid), accuracy and macro-F1, and LR per block.

    `history` is `session.history`; `live` holds the batch losses seen so far of the epoch in
    progress (1-based epoch), drawn before that epoch is recorded.
    """
    fig = PlotFigure(figsize=size, layout="constrained")
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    _loss_panel(ax_loss, history, live)
    _metric_panel(ax_metric, history)
    _lr_panel(ax_lr, history)
    return fig


def _batch_x(epoch: int, n_batches: int, count: int) -> np.ndarray:
    """x positions of an epoch's batches: epoch - 1 + fraction done, so epoch k ends at x = k."""
    return epoch - 1 + np.arange(1, count + 1) / max(n_batches, 1)


def _loss_panel(ax, history, live: Live | None) -> None:
    for r in history:
        if r.batch_losses:
            ax.plot(_batch_x(r.epoch, r.num_batches, len(r.batch_losses)), r.batch_losses,
                    color=COLORS["batch"], lw=0.8)
    if live and live[2]:
        epoch, n_batches, points = live
        ax.plot([epoch - 1 + b / max(n_batches, 1) for b, _ in points], [loss for _, loss in points],
                color=COLORS["batch"], lw=0.8)
    done = [r for r in history if r.completed]
    if done:
        ax.plot([r.epoch for r in done], [r.train_loss for r in done], "o-", color=COLORS["train"], ms=4, label="train")
        ax.plot([r.epoch for r in done], [r.valid_loss for r in done], "o-", color=COLORS["valid"], ms=4, label="valid")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    for r in history:
        if not r.fast_path and r.epoch > 1 and history[r.epoch - 2].fast_path:
            ax.axvline(r.epoch - 1, color="grey", lw=0.8, ls=":")  # where unfreezing began
    ax.set(title="loss (light: every batch)", xlabel="epoch")
    _finish(ax, history, live)


def _metric_panel(ax, history) -> None:
    done = [r for r in history if r.completed and r.valid_accuracy is not None]
    if done:
        epochs = [r.epoch for r in done]
        ax.plot(epochs, [r.train_accuracy for r in done], "o--", color=COLORS["train"], ms=3, lw=1, label="train acc")
        ax.plot(epochs, [r.valid_accuracy for r in done], "o-", color=COLORS["valid"], ms=4, label="valid acc")
        ax.plot(epochs, [r.valid_macro_f1 for r in done], "s-", color=COLORS["f1"], ms=3, label="valid macro-F1")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        best = max(done, key=lambda r: r.valid_accuracy)
        ax.annotate(f"{best.valid_accuracy:.3f}", (best.epoch, best.valid_accuracy), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set(title="accuracy and macro-F1 (valid)", xlabel="epoch", ylim=(0, 1.05))
    _finish(ax, history)


def _lr_panel(ax, history) -> None:
    groups: dict[str, list[tuple[int, float]]] = {}
    for r in history:
        for name, lr in r.lrs.items():
            groups.setdefault(name, []).append((r.epoch, lr))
    for name, points in list(groups.items())[-6:]:  # the top blocks: the ones a person changes
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o-", ms=3, lw=1, label=_short(name))
    batch = [(_batch_x(r.epoch, r.num_batches, len(r.batch_lrs)), r.batch_lrs) for r in history if r.batch_lrs]
    for xs, ys in batch:
        ax.plot(xs, ys, color="black", lw=0.6, alpha=0.5)
    if groups:
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize=7, frameon=False)
    ax.set(title="learning rate per block", xlabel="epoch")
    _finish(ax, history)


def _finish(ax, history, live: Live | None = None) -> None:
    n = max([r.epoch for r in history] + ([live[0]] if live else []), default=1)
    ax.set_xlim(0, max(n, 1) + 0.2)
    ax.grid(alpha=0.3)
    if not history:
        ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes, color="grey")


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def confusion_figure(analysis, normalize: bool = False, max_classes: int = 30, size: float = 5.5) -> Figure:
    """Seaborn heatmap of the confusion matrix (counts, or each row as shares of its true class)."""
    import seaborn as sns

    matrix = analysis.normalized_confusion() if normalize else analysis.confusion_matrix
    classes = list(analysis.classes)
    if len(classes) > max_classes:  # keep the classes in the most confusion
        keep = involved_classes(analysis.confusion_matrix, max_classes)
        matrix, classes = matrix[np.ix_(keep, keep)], [classes[i] for i in keep]
    fig = PlotFigure(figsize=(size, size * 0.85), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(matrix, ax=ax, cmap="Blues", annot=len(classes) <= 12, fmt=".2f" if normalize else "d",
                xticklabels=classes, yticklabels=classes, cbar=True, square=True, linewidths=0.5)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"confusion ({'row shares' if normalize else 'counts'}), accuracy {analysis.accuracy:.3f}")
    return fig


def rank_by_confusion(confusion: np.ndarray) -> list[int]:
    """Class indices, most off-diagonal errors first (as true or as predicted class)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    score = off.sum(axis=0) + off.sum(axis=1)
    return np.argsort(-score, kind="stable").tolist()


def involved_classes(confusion: np.ndarray, k: int) -> list[int]:
    """The k classes with the most off-diagonal errors (as true or predicted), in class order."""
    return sorted(rank_by_confusion(confusion)[:k])


def top_losses_figure(analysis, data, k: int = 12, columns: int = 6) -> Figure:
    """The k highest-loss validation samples: images with labels, or text snippets."""
    table = analysis.top_losses(k)
    rows = max(1, int(np.ceil(len(table) / columns)))
    fig = PlotFigure(figsize=(columns * 1.7, rows * 1.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, table.itertuples()):
        item = data.item(int(row.id), "valid")
        title = f"{row.true} → {row.predicted}\np={row.probability:.2f} loss={row.loss:.2f}"
        if isinstance(item, str):
            ax.text(0, 1, _wrap(item, 28, 7), va="top", fontsize=7, transform=ax.transAxes, wrap=True)
        else:
            ax.imshow(np.asarray(item), cmap="gray" if item.mode == "L" else None)
        ax.set_title(title, fontsize=7, color="#b00" if row.true != row.predicted else "black")
    fig.suptitle("top losses (true → predicted)", fontsize=9)
    return fig


def _wrap(text: str, width: int, lines: int) -> str:
    import textwrap

    wrapped = textwrap.wrap(text, width)[:lines]
    return "\n".join(wrapped) + ("…" if len(textwrap.wrap(text, width)) > lines else "")


def lr_finder_figure(result, size: tuple[float, float] = (5, 3.2)) -> Figure:
    """Loss against LR (log scale) from `session.find_lr()`, with the suggestion marked."""
    fig = PlotFigure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.plot(result.lrs, result.raw_losses, color=COLORS["batch"], lw=0.8, label="batch loss")
    ax.plot(result.lrs, result.losses, color=COLORS["train"], label="smoothed")
    ax.axvline(result.suggestion, color=COLORS["valid"], ls="--", label=f"suggestion {result.suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss", title="LR range test")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig
