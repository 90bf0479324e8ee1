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
from matplotlib.ticker import NullLocator

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
    return TrainingPlot(size).update(history, live)


class TrainingPlot:
    """The training figure kept alive between renders: updates only set new data on its lines.

    Re-rendering an existing figure took 83 ms here against 155 ms for building a new one
    (matplotlib caches text layouts per figure), so the live dashboard keeps one of these.
    """

    def __init__(self, size: tuple[float, float] = (10.5, 2.9)) -> None:
        self.fig = fig = PlotFigure(figsize=size)
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.9, wspace=0.28)  # no constrained layout: ~100 ms
        self.ax_loss, self.ax_metric, self.ax_lr = axes = fig.subplots(1, 3)
        lo, me, lr = axes
        self.batch, = lo.plot([], [], color=COLORS["batch"], lw=0.8)
        self.train, = lo.plot([], [], "o-", color=COLORS["train"], ms=4, label="train")
        self.valid, = lo.plot([], [], "o-", color=COLORS["valid"], ms=4, label="valid")
        self.unfreeze, = lo.plot([], [], color="grey", lw=0.8, ls=":", transform=lo.get_xaxis_transform())
        self.train_acc, = me.plot([], [], "o--", color=COLORS["train"], ms=3, lw=1, label="train acc")
        self.valid_acc, = me.plot([], [], "o-", color=COLORS["valid"], ms=4, label="valid acc")
        self.f1, = me.plot([], [], "s-", color=COLORS["f1"], ms=3, label="valid macro-F1")
        self.best = me.annotate("", (0, 0), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        self.batch_lr, = lr.plot([], [], color="black", lw=0.6, alpha=0.5)
        self.lr_lines: dict[str, object] = {}
        lo.legend(loc="upper right", fontsize=8, frameon=False)
        me.legend(loc="lower right", fontsize=8, frameon=False)
        lo.set(title="loss (light: every batch)", xlabel="epoch")
        me.set(title="accuracy and macro-F1 (valid)", xlabel="epoch", ylim=(0, 1.05))
        lr.set(title="learning rate per block", xlabel="epoch")
        self.empty = [ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes,
                              color="grey") for ax in axes]
        for ax in axes:
            ax.grid(alpha=0.3)

    def update(self, history: Sequence, live: Live | None = None) -> Figure:
        """Show `history` (and the epoch in progress); returns the figure."""
        xs, ys = _per_batch(history, "batch_losses")
        if live and live[2]:
            epoch, n_batches, points = live
            xs += [epoch - 1 + b / max(n_batches, 1) for b, _ in points]
            ys += [loss for _, loss in points]
        self.batch.set_data(xs, ys)
        done = [r for r in history if r.completed and r.valid_loss is not None]
        epochs = [r.epoch for r in done]
        self.train.set_data(epochs, [r.train_loss for r in done])
        self.valid.set_data(epochs, [r.valid_loss for r in done])
        starts = [r.epoch - 1 for r in history[1:] if not r.fast_path and history[r.epoch - 2].fast_path]
        self.unfreeze.set_data(np.repeat(starts, 3), [0, 1, np.nan] * len(starts))  # where unfreezing began
        self.train_acc.set_data(epochs, [r.train_accuracy for r in done])
        self.valid_acc.set_data(epochs, [r.valid_accuracy for r in done])
        self.f1.set_data(epochs, [r.valid_macro_f1 for r in done])
        if done:
            best = max(done, key=lambda r: r.valid_accuracy)
            self.best.xy = (best.epoch, best.valid_accuracy)
            self.best.set_text(f"{best.valid_accuracy:.3f}")
        self._update_lr(history)
        n = max([r.epoch for r in history] + ([live[0]] if live else []), default=1)
        for ax, text in zip((self.ax_loss, self.ax_metric, self.ax_lr), self.empty):
            text.set_visible(not history)
            if ax is not self.ax_metric:
                ax.relim()
                ax.autoscale_view()
            ax.set_xlim(0, max(n, 1) + 0.2)
        return self.fig

    def _update_lr(self, history: Sequence) -> None:
        groups: dict[str, list[tuple[int, float]]] = {}
        for r in history:
            for name, lr in r.lrs.items():
                groups.setdefault(name, []).append((r.epoch, lr))
        for name in groups:
            if name not in self.lr_lines:  # a block joined the optimizer: a new line (rare)
                self.lr_lines[name], = self.ax_lr.plot([], [], "o-", ms=3, lw=1)
        self.batch_lr.set_data(*_per_batch(history, "batch_lrs"))
        for name, line in self.lr_lines.items():
            points = groups.get(name, [])
            line.set_data([p[0] for p in points], [p[1] for p in points])
        if groups and self.ax_lr.get_yscale() != "log":
            self.ax_lr.set_yscale("log")
            self.ax_lr.yaxis.set_minor_locator(NullLocator())  # log minor ticks were the costliest part
        names = list(self.lr_lines)
        # the head and the blocks just below it (record.trainable is in forward order): the ones a person changes
        labelled = [n for n in history[-1].trainable if n in self.lr_lines][-4:] if history else []
        for name, line in self.lr_lines.items():
            line.set_label(_short(name, 14) if name in labelled else "_nolegend_")
        if names and getattr(self, "_legend_for", None) != tuple(names):
            more = f" (+{len(names) - 4} more)" if len(names) > 4 else ""
            self.ax_lr.legend(loc="lower left", fontsize=7, frameon=False, title=f"blocks{more}", title_fontsize=7)
            self._legend_for = tuple(names)


def _per_batch(history: Sequence, field: str) -> tuple[list[float], list[float]]:
    """One series over all epochs of a per-batch record field, NaN between epochs (one line)."""
    xs: list[float] = []
    ys: list[float] = []
    for r in history:
        values = getattr(r, field)
        if values:
            xs += [*_batch_x(r.epoch, r.num_batches, len(values)), np.nan]
            ys += [*values, np.nan]
    return xs, ys


def _batch_x(epoch: int, n_batches: int, count: int) -> np.ndarray:
    """x positions of an epoch's batches: epoch - 1 + fraction done, so epoch k ends at x = k."""
    return epoch - 1 + np.arange(1, count + 1) / max(n_batches, 1)


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
