"""Figures for a run and its errors (workbench.plots re-exports them).

matplotlib `Figure` + `FigureCanvasAgg`, never pyplot: safe to build in a training thread, and
the same figure a widget shows is what a script saves. `png(fig)` gives the bytes a widget needs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from ..validate import integer

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


def min_text_px(fig: Figure, dpi: float) -> float:
    """The smallest font of any visible text in `fig`, in pixels of a PNG rendered at `dpi`: shown
    at its own size, that is what a reader gets (views keep it >= 11 px)."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=float("inf")) * dpi / 72


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
    Readable on a projector: valid accuracy drawn over macro-F1 (both visible where they agree),
    the best accuracy labelled inside the axes, the LR axis spanning at least a decade with
    ticks at each power of ten, legend names in full.
    """

    def __init__(self, size: tuple[float, float] = (10.5, 2.9)) -> None:
        from matplotlib.ticker import FuncFormatter, LogLocator

        self.fig = fig = PlotFigure(figsize=size)
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.9, wspace=0.28)  # no constrained layout: ~100 ms
        self.ax_loss, self.ax_metric, self.ax_lr = axes = fig.subplots(1, 3)
        lo, me, lr = axes
        self.batch, = lo.plot([], [], color=COLORS["batch"], lw=0.8)
        self.train, = lo.plot([], [], "o-", color=COLORS["train"], ms=4, label="train")
        self.valid, = lo.plot([], [], "o-", color=COLORS["valid"], ms=4, label="valid")
        self.unfreeze, = lo.plot([], [], color="grey", lw=0.8, ls=":", transform=lo.get_xaxis_transform())
        self.train_acc, = me.plot([], [], "o--", color=COLORS["train"], ms=3, lw=1, label="train acc", zorder=2)
        self.f1, = me.plot([], [], "s:", color=COLORS["f1"], ms=7, lw=1.4, mfc="none", mew=1.4,
                           label="valid macro-F1", zorder=3)
        self.valid_acc, = me.plot([], [], "o-", color=COLORS["valid"], ms=4, lw=1.6, label="valid acc", zorder=4)
        self.best = me.annotate("", (0, 0), textcoords="offset points", xytext=(0, -10), ha="center", va="top",
                                fontsize=8, annotation_clip=False)
        self.batch_lr, = lr.plot([], [], color="black", lw=0.6, alpha=0.5)
        self.lr_lines: dict[str, object] = {}
        lo.legend(loc="upper right", fontsize=8, frameon=False)
        me.legend(loc="best", fontsize=8, frameon=True, framealpha=0.85, edgecolor="none")  # few points: cheap
        lo.set(title="loss (light: every batch)", xlabel="epoch")
        me.set(title="accuracy and macro-F1 (valid)", xlabel="epoch", ylim=(0, 1.05))
        lr.set(title="learning rate per block", xlabel="epoch")
        lr.set_yscale("log")
        lr.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
        lr.yaxis.set_major_formatter(FuncFormatter(_lr_tick))  # plain "1e-3": mathtext cost ~30 ms a render
        lr.yaxis.set_minor_locator(NullLocator())  # log minor ticks were the costliest part
        lr.set_ylim(1e-4, 1e-2)
        self.empty = [ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes,
                              color="grey") for ax in axes]
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))

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
        n = max([r.epoch for r in history] + ([live[0]] if live else []), default=1)
        if done:
            best = max(done, key=lambda r: r.valid_accuracy)
            self.best.xy = (best.epoch, best.valid_accuracy)
            self.best.set_text(f"best {best.valid_accuracy:.3f}")
            # inside the axes: below a high point, above a low one, leaning left at the last epoch
            high = best.valid_accuracy > 0.8
            self.best.set_position((0, -10 if high else 8))
            self.best.set_verticalalignment("top" if high else "bottom")
            self.best.set_horizontalalignment("right" if best.epoch == n and n > 1 else "left" if best.epoch == 1 else
                                              "center")
            self.best.set_visible(True)
        else:
            self.best.set_visible(False)
        self._update_lr(history)
        for ax, text in zip((self.ax_loss, self.ax_metric, self.ax_lr), self.empty):
            text.set_visible(not history)
            if ax is self.ax_loss:
                ax.relim()
                ax.autoscale_view()
            ax.set_xlim(0.5 if n <= 1 else 0, max(n, 1) + 0.3)
        return self.fig

    def _update_lr(self, history: Sequence) -> None:
        groups: dict[str, list[tuple[int, float]]] = {}
        for r in history:
            for name, lr in r.lrs.items():
                groups.setdefault(name, []).append((r.epoch, lr))
        for name in groups:
            if name not in self.lr_lines:  # a block joined the optimizer: a new line (rare)
                self.lr_lines[name], = self.ax_lr.plot([], [], "o-", ms=3, lw=1)
        batch = _per_batch(history, "batch_lrs")
        self.batch_lr.set_data(*batch)
        values = [lr for points in groups.values() for _, lr in points] + [v for v in batch[1] if v == v and v > 0]
        for name, line in self.lr_lines.items():
            points = groups.get(name, [])
            line.set_data([p[0] for p in points], [p[1] for p in points])
        positive = [v for v in values if v > 0]
        if positive:  # at least one decade, padded, so no point sits on an edge and >= 2 ticks show
            lo, hi = np.log10(min(positive)), np.log10(max(positive))
            mid, half = (lo + hi) / 2, max((hi - lo) / 2 + 0.25, 0.55)
            self.ax_lr.set_ylim(10 ** (mid - half), 10 ** (mid + half))
        names = list(self.lr_lines)
        # the head and the blocks just below it (record.trainable is in forward order): the ones a person changes
        labelled = [n for n in history[-1].trainable if n in self.lr_lines][-4:] if history else []
        for name, line in self.lr_lines.items():
            line.set_label(legend_label(_short(name, 24)) if name in labelled else "_nolegend_")
        key = (tuple(names), tuple(labelled))
        if names and getattr(self, "_legend_for", None) != key:
            hidden = len(names) - len(labelled)
            more = f" (+{hidden} more)" if hidden > 0 else ""
            self.ax_lr.legend(loc="best", fontsize=7, frameon=True, framealpha=0.8, edgecolor="none",
                              title=f"blocks{more}", title_fontsize=7)
            self._legend_for = key


def _lr_tick(value: float, _pos=None) -> str:
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


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


def literal(text) -> str:
    """User text (class, run and block names, dataset texts) as a figure must show it: every "$"
    escaped, so matplotlib never parses it as mathtext (a class "$5" or "a$x^{$" raised a
    ParseException at render time, or drew a formula). Apply it last, after shortening or wrapping."""
    return str(text).replace("$", r"\$")


def legend_label(text) -> str:
    """literal(text) for a legend entry: a label starting with "_" would be left out of the legend
    (matplotlib's convention for hidden artists), so it gets a leading space."""
    shown = literal(text)
    return " " + shown if shown.startswith("_") else shown


def confusion_figure(analysis, normalize: bool = False, max_classes: int = 30, size: float = 5.5) -> Figure:
    """Seaborn heatmap of the confusion matrix (counts, or each row as shares of its true class)."""
    import seaborn as sns

    max_classes = integer("max_classes", max_classes, low=1, hint="How many classes the matrix shows at most.")
    matrix = analysis.normalized_confusion() if normalize else analysis.confusion_matrix
    classes = list(analysis.classes)
    if len(classes) > max_classes:  # keep the classes in the most confusion
        keep = involved_classes(analysis.confusion_matrix, max_classes)
        matrix, classes = matrix[np.ix_(keep, keep)], [classes[i] for i in keep]
    fig = PlotFigure(figsize=(size, size * 0.85), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(matrix, ax=ax, cmap="Blues", annot=len(classes) <= 12, fmt=".2f" if normalize else "d",
                xticklabels=[literal(c) for c in classes], yticklabels=[literal(c) for c in classes], cbar=True,
                square=True, linewidths=0.5)
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
    columns = integer("columns", columns, low=1, hint="Samples per row, e.g. 6.")
    table = analysis.top_losses(k)
    rows = max(1, int(np.ceil(len(table) / columns)))
    fig = PlotFigure(figsize=(columns * 2.0, rows * 2.45), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, table.itertuples()):
        item = data.item(int(row.id), "valid")
        title = f"{literal(row.true)} → {literal(row.predicted)}\np={row.probability:.2f} loss={row.loss:.2f}"
        if isinstance(item, str):
            ax.text(0, 1, literal(_wrap(item, 26, 7)), va="top", fontsize=8.5, transform=ax.transAxes, wrap=True)
        else:
            ax.imshow(np.asarray(item), cmap="gray" if item.mode == "L" else None)
        ax.set_title(title, fontsize=10, color="#b00" if row.true != row.predicted else "black")
    fig.suptitle("top losses (true → predicted)", fontsize=12)
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


# ---- explanations (wb.explain, errors.neighbours, errors.embedding) ---------------------------------
def overlay(attribution, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """The image the model saw with its Grad-CAM heatmap blended on top: uint8 (S, S, 3)."""
    from matplotlib import colormaps

    heat = colormaps[cmap](np.clip(attribution.heatmap, 0, 1))[..., :3]
    base = attribution.image.astype(np.float32) / 255
    return (255 * ((1 - alpha * attribution.heatmap[..., None]) * base + alpha * attribution.heatmap[..., None] * heat)
            ).clip(0, 255).astype(np.uint8)


def image_png(pixels: np.ndarray, size: int = 160) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes, scaled up to `size` px with nearest neighbours (small inputs stay crisp)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if max(image.size) < size:
        image = image.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def tokens_html(attribution, max_tokens: int = 200) -> str:
    """Tokens as HTML spans, green for toward the class, red against, by score. Every token is
    escaped (it is dataset text); word pieces ("##ing") join the word before them."""
    import html

    out = []
    for token, score, special in list(zip(attribution.tokens, attribution.scores, attribution.special))[:max_tokens]:
        if special:
            continue
        piece = token.startswith("##")
        text = html.escape(token[2:] if piece else token)
        rgb = "46,125,50" if score >= 0 else "198,40,40"
        # at most 0.6 opaque: the text on it keeps a contrast >= 4.5:1 in light (dark text) and dark themes
        style = f"background:rgba({rgb},{0.6 * min(abs(float(score)), 1):.2f});border-radius:3px;padding:0 1px"
        out.append(("" if piece or not out else " ") + f'<span class="wb-token" title="{score:+.2f}" style="{style}">{text}</span>')
    return f'<span class="wb-tokens" style="line-height:1.9">{"".join(out)}</span>'


def attribution_figure(attributions: Sequence, columns: int = 4, size: float = 2.4) -> Figure:
    """Attributions side by side (e.g. true vs predicted): Grad-CAM overlays, or coloured tokens."""
    n = len(attributions)
    columns = integer("columns", columns, low=1, hint="Attributions per row, e.g. 4.")
    if attributions and attributions[0].kind == "text":
        fig = PlotFigure(figsize=(9, 0.9 + 0.75 * n), layout="constrained")
        ax = fig.subplots()
        ax.axis("off")
        for row, a in enumerate(attributions):
            y = 1 - (row + 0.5) / n
            ax.text(0, y + 0.3 / n, _title(a), fontsize=8, transform=ax.transAxes, va="bottom")
            x = 0.0
            for token, score, special in zip(a.tokens, a.scores, a.special):
                if special:
                    continue
                color = (0.18, 0.49, 0.2, min(abs(score), 1)) if score >= 0 else (0.78, 0.16, 0.16, min(abs(score), 1))
                ax.text(x, y, literal(token), fontsize=9, transform=ax.transAxes, va="center",
                            bbox=dict(facecolor=color, edgecolor="none", pad=1))
                x += 0.012 + 0.0105 * len(token)
                if x > 0.95:
                    break
        return fig
    rows = max(1, int(np.ceil(n / columns)))
    fig = PlotFigure(figsize=(min(n, columns) * size, rows * (size + 0.35)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, min(n, columns))).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, a in zip(axes, attributions):
        ax.imshow(overlay(a))
        ax.set_title(_title(a), fontsize=8, color="black" if a.correct else "#b00")
    return fig


def _title(a) -> str:
    p = float(a.probabilities[a.target])
    return (f"#{a.index} true {literal(a.classes[a.true])} · pred {literal(a.classes[a.predicted])}\n"
            f"why {literal(a.target_name)}? (p={p:.2f})")


def embedding_figure(embedding, size: tuple[float, float] = (6.5, 5), highlight=None) -> Figure:
    """The 2-D map: points coloured by true class, errors as black-edged crosses, `highlight` ids ringed."""
    fig = PlotFigure(figsize=size, layout="constrained")
    ax = fig.subplots()
    palette = class_palette(len(embedding.classes))
    colors = [palette[c] for c in embedding.labels]
    right = ~embedding.wrong
    ax.scatter(*embedding.coords[right].T, s=8, c=[colors[i] for i in np.flatnonzero(right)], alpha=0.7, linewidths=0)
    ax.scatter(*embedding.coords[~right].T, s=22, c=[colors[i] for i in np.flatnonzero(~right)], marker="X",
               edgecolors="black", linewidths=0.5, label="error")
    if highlight is not None and len(highlight):
        pos = np.isin(embedding.ids, np.asarray(highlight))
        ax.scatter(*embedding.coords[pos].T, s=70, facecolors="none", edgecolors="black", linewidths=1.2)
    for c, name in enumerate(embedding.classes[:20]):
        ax.scatter([], [], s=20, color=palette[c], label=legend_label(_short(str(name), 14)))
    ax.legend(fontsize=7, frameon=False, loc="best", ncols=2 if len(embedding.classes) > 8 else 1)
    what = embedding.method.upper() if embedding.method == "pca" else embedding.method
    ev = f" ({sum(embedding.explained_variance):.0%} of variance)" if embedding.explained_variance else ""
    ax.set(title=f"validation features, {what}{ev}: colour = true class, X = error", xticks=[], yticks=[])
    return fig


def class_palette(k: int) -> list[str]:
    """k distinguishable colours (tab10, then tab20, then a hue wheel)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if k <= 10:
        return [to_hex(colormaps["tab10"](i)) for i in range(k)]
    if k <= 20:
        return [to_hex(colormaps["tab20"](i)) for i in range(k)]
    return [to_hex(colormaps["hsv"](i / k)) for i in range(k)]
