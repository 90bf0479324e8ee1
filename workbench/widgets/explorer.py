"""ErrorExplorer: a clickable confusion matrix linked to the samples behind each cell.

Clicking cell (true i, predicted j) fills the gallery with exactly `analysis.indices(i, j)`,
highest loss first. Beside it: top losses, most-confused pairs, per-class scores (click a class
for its errors), flips since the previous epoch, and the samples flagged for relabelling. It
refreshes itself after each epoch; with many classes the matrix shows the classes in the most
confusion, and any others can be picked.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as W
import numpy as np
import traitlets
from matplotlib import colormaps
from matplotlib.colors import to_hex

from ..analysis import ErrorAnalysis
from ..plots import rank_by_confusion
from .common import STYLE, MessageBox, esc, guarded
from .gallery import ThumbnailCache, gallery_html

MAX_CELLS = 12  # classes shown in the matrix before it collapses to those in the most confusion
CELL = "46px"


class ErrorExplorer(W.VBox):
    """Explore the latest validation errors of a Session (`selected` is the clicked cell)."""

    selected = traitlets.Tuple(allow_none=True, default_value=None)  # (true, predicted) class indices

    def __init__(self, session, max_cells: int = MAX_CELLS) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self.max_cells = max_cells
        self.message = MessageBox()
        self.analysis: ErrorAnalysis | None = None
        self.flagged: list[dict[str, object]] = []  # survives refreshes; analysis.flagged is this list
        self.shown_ids: list[int] = []  # the gallery's samples, in order
        self._thumbs = ThumbnailCache(self.data) if self.data.kind == "image" else None
        k = self.data.num_classes
        self.mode = W.ToggleButtons(options=[("count", "count"), ("row %", "rate")], value="count",
                                    style={"button_width": "72px"}, tooltips=["cell colour by count", "by share of the true class"])
        self.classes_pick = W.SelectMultiple(options=[(c, i) for i, c in enumerate(self.data.classes)],
                                             rows=6, description="classes", layout=W.Layout(width="260px"))
        self.classes_pick.layout.display = "none" if k <= max_cells else ""
        self.header = W.HTML()
        n = min(k, max_cells)
        self._shown: list[int] = list(range(n))  # class index at each matrix position
        self._col_labels = [W.HTML() for _ in range(n)]
        self._row_labels = [W.HTML() for _ in range(n)]
        self._cells = [[W.Button(layout=W.Layout(width=CELL, height="30px", padding="0")) for _ in range(n)]
                       for _ in range(n)]
        grid: list[W.Widget] = [W.HTML('<span class="wb-muted">true ↓ pred →</span>'), *self._col_labels]
        for r in range(n):
            grid.append(self._row_labels[r])
            for c in range(n):
                self._cells[r][c].on_click(lambda _, r=r, c=c: self.select(self._shown[r], self._shown[c]))
                grid.append(self._cells[r][c])
        self.matrix = W.GridBox(grid, layout=W.Layout(grid_gap="2px", grid_template_columns=f"90px repeat({n}, {CELL})"))
        self.matrix.add_class("wb-matrix")
        self.gallery = W.HTML()
        self.gallery.add_class("wb-gallery-box")
        self.top_button = W.Button(description="Top losses", icon="sort-amount-desc")
        self._pair_of: dict[int, tuple[int, int]] = {}
        self._pair_buttons = [W.Button(layout=W.Layout(width="300px", display="none")) for _ in range(10)]
        for n_, b in enumerate(self._pair_buttons):
            b.on_click(lambda _, n_=n_: self.select(*self._pair_of[n_]))
        self.pairs = W.VBox(self._pair_buttons)
        header_cells = [W.HTML(f"<b>{h}</b>") for h in ("class", "precision", "recall", "F1", "support")]
        self._class_rows: list[list[W.Label]] = []
        rows: list[W.Widget] = []
        for i, name in enumerate(self.data.classes):
            b = W.Button(description=str(name), tooltip=f"errors of class {name}", layout=W.Layout(width="140px"))
            b.on_click(lambda _, i=i: self.show_class_errors(i))
            labels = [W.Label() for _ in range(4)]
            self._class_rows.append(labels)
            rows += [b, *labels]
        self.per_class = W.GridBox(header_cells + rows, layout=W.Layout(grid_template_columns="150px 70px 70px 70px 70px"))
        self.flip_buttons = (W.Button(description="right → wrong"), W.Button(description="wrong → right"))
        self.flag_pick = W.SelectMultiple(rows=5, description="samples", layout=W.Layout(width="330px"))
        self.flag_button = W.Button(description="Label looks wrong", icon="flag", button_style="warning")
        self.unflag_button = W.Button(description="Unflag", icon="times")
        self.export_path = W.Text(value="flagged.csv", description="CSV", layout=W.Layout(width="260px"))
        self.export_button = W.Button(description="Export", icon="download")
        self.flag_list = W.HTML()
        side = W.Tab(children=[
            W.VBox([self.top_button]), self.pairs, self.per_class,
            W.HBox(list(self.flip_buttons)),
            W.VBox([self.flag_pick, W.HBox([self.flag_button, self.unflag_button]),
                    W.HBox([self.export_path, self.export_button]), self.flag_list]),
        ], layout=W.Layout(width="520px"))
        for i, t in enumerate(("Top losses", "Most confused", "Per class", "Flips", "Flagged")):
            side.set_title(i, t)
        self.top_button.on_click(lambda _: self.show_top_losses())
        self.flip_buttons[0].on_click(lambda _: self.show_flips("right_to_wrong"))
        self.flip_buttons[1].on_click(lambda _: self.show_flips("wrong_to_right"))
        self.flag_button.on_click(lambda _: self.flag(list(self.flag_pick.value)))
        self.unflag_button.on_click(lambda _: self.unflag(list(self.flag_pick.value)))
        self.export_button.on_click(lambda _: self.export(self.export_path.value))
        self.mode.observe(lambda _: self._paint(), names="value")
        self.classes_pick.observe(lambda _: self._place_classes(), names="value")
        self.children = [W.HTML(STYLE), self.header, W.HBox([W.VBox([W.HBox([self.mode, self.classes_pick]),
                                                                     self.matrix]), side],
                                                              layout=W.Layout(flex_flow="row wrap")),
                         self.message, self.gallery]
        self.add_class("wb-explorer")
        # -- "Explain the errors" sub-tabs (Why, Label issues, Map) under the gallery: explain_tabs.py --
        from .explain_tabs import attach

        attach(self)
        session.on("epoch_end", lambda _: self.refresh())
        self.refresh()

    # ---- public twins -------------------------------------------------------------------------
    @guarded()
    def select(self, true: int | str, pred: int | str) -> None:
        """Show the samples of class `true` predicted as `pred` (a click on that matrix cell)."""
        a = self._need()
        t, p = a._class_index(true), a._class_index(pred)
        self.selected = (t, p)
        title = (f"class {a.classes[t]}, predicted correctly" if t == p
                 else f"true {a.classes[t]}, predicted as {a.classes[p]}")
        self._show(a.indices(t, p), title)

    @guarded()
    def show_class_errors(self, cls: int | str) -> None:
        """All misclassified samples of one true class, highest loss first (a per-class row click)."""
        a = self._need()
        t = a._class_index(cls)
        rows = np.flatnonzero((a.labels == t) & (a.predicted != t))
        rows = rows[np.argsort(-a.losses[rows], kind="stable")]
        self.selected = None
        self._show(a.ids[rows], f"errors of class {a.classes[t]}")

    @guarded()
    def show_top_losses(self, k: int = 50) -> None:
        a = self._need()
        self.selected = None
        self._show(a.top_losses(k)["id"].tolist(), "top losses (all samples, highest loss first)")

    @guarded()
    def show_flips(self, which: str = "right_to_wrong") -> None:
        """Samples whose correctness changed since the previous epoch (forgetting after unfreezing)."""
        a = self._need()
        previous = self.session.previous_predictions
        if previous is None:
            self.message.show("Flips need two evaluated epochs: train one more epoch.", "info")
            return
        flips = a.flips(previous)
        ids = getattr(flips, which)
        label = "right before, wrong now" if which == "right_to_wrong" else "wrong before, right now"
        self.selected = None
        self._show(ids, f"flips since epoch {previous.epoch}: {label}")

    @guarded()
    def flag(self, ids) -> None:
        """Mark samples whose given label looks wrong; `errors.flagged` (this explorer's list) holds them."""
        a = self._need()
        for i in ids:
            a.flag(int(i))
        self._show_flags()

    @guarded()
    def unflag(self, ids) -> None:
        a = self._need()
        for i in ids:
            a.unflag(int(i))
        self.flagged[:] = a.flagged
        self._show_flags()

    @guarded()
    def export(self, path) -> Path:
        """Write the flagged samples as CSV (id, given label, predicted label, note)."""
        out = self._need().export_flagged(path)
        self.message.show(f"Wrote {len(self.flagged)} flagged samples to {out.resolve()}", "ok")
        return out

    def refresh(self) -> None:
        """Re-read the session's latest predictions (after each epoch; safe from the training thread)."""
        if self.session.predictions is None:
            self.header.value = '<span class="wb-muted">No predictions yet: train an epoch, then come back.</span>'
            return
        analysis = ErrorAnalysis.from_session(self.session)
        analysis.flagged = self.flagged  # flags survive epochs
        self.analysis = analysis
        self.header.value = (f'{STYLE}<div class="wb-card">epoch {analysis.epoch} · accuracy <b>{analysis.accuracy:.3f}</b>'
                             f" · macro-F1 <b>{analysis.macro_f1:.3f}</b> · "
                             f"{int((analysis.predicted != analysis.labels).sum())} errors of {len(analysis.labels)} · "
                             "click a cell to see its samples</div>")
        self._place_classes()
        self._update_side()
        if self.selected is not None:
            self.select(*self.selected)

    # ---- matrix ---------------------------------------------------------------------------------
    def _classes_shown(self) -> list[int]:
        k = len(self.data.classes)
        if k <= self.max_cells:
            return list(range(k))
        picked = sorted(self.classes_pick.value)[: self.max_cells]
        rest = [i for i in rank_by_confusion(self.analysis.confusion_matrix) if i not in picked]
        return sorted(picked + rest[: self.max_cells - len(picked)])

    def _place_classes(self) -> None:
        """Map matrix positions to classes (all of them, or the most confused / picked ones)."""
        if self.analysis is None:
            return
        classes = self.data.classes
        self._shown = self._classes_shown()
        for pos, i in enumerate(self._shown):
            self._col_labels[pos].value = f'<div style="text-align:center;font-size:11px">{esc(_short(classes[i]))}</div>'
            self._row_labels[pos].value = f'<div style="font-size:11px">{esc(_short(classes[i]))}</div>'
        for r, i in enumerate(self._shown):
            for c, j in enumerate(self._shown):
                cell = self._cells[r][c]
                cell.tooltip = f"true {classes[i]}, predicted {classes[j]}"
                cell._dom_classes = (f"cm-cell-{i}-{j}",)
        if len(classes) > self.max_cells:
            how = "your picks first, then " if self.classes_pick.value else ""
            self.message.show(f"Showing {len(self._shown)} of {len(classes)} classes: {how}those in the most "
                              "confusion. Pick classes in the list to show others.", "info")
        self._paint()

    def _paint(self) -> None:
        a = self.analysis
        if a is None:
            return
        cm, rate = a.confusion_matrix, a.normalized_confusion()
        values = rate if self.mode.value == "rate" else cm / max(cm.max(), 1)
        blues, reds = colormaps["Blues"], colormaps["Reds"]
        for r, i in enumerate(self._shown):
            for c, j in enumerate(self._shown):
                b, v = self._cells[r][c], float(values[i, j])
                b.description = f"{rate[i, j]:.0%}" if self.mode.value == "rate" else str(cm[i, j])
                cmap = blues if i == j else reds  # correct in blue, errors in red
                b.style.button_color = to_hex(cmap(0.08 + 0.8 * v)) if cm[i, j] else "#ffffff"
                b.style.text_color = "white" if v > 0.55 else "black"

    # ---- side panels -----------------------------------------------------------------------------
    def _update_side(self) -> None:
        a = self.analysis
        pairs = a.most_confused(min_count=1).head(len(self._pair_buttons))
        for n_, b in enumerate(self._pair_buttons):
            if n_ < len(pairs):
                row = pairs.iloc[n_]
                self._pair_of[n_] = (int(row.true_index), int(row.pred_index))
                b.description = f"{row.true} → {row.predicted}: {row['count']}"
                b.layout.display = ""
            else:
                b.layout.display = "none"
        table = a.per_class()
        for labels, (_, row) in zip(self._class_rows, table.iterrows()):
            for label, col in zip(labels, ("precision", "recall", "f1")):
                label.value = f"{row[col]:.3f}"
            labels[3].value = str(int(row["support"]))
        previous = self.session.previous_predictions
        if previous is not None:
            flips = a.flips(previous)
            self.flip_buttons[0].description = f"right → wrong: {len(flips.right_to_wrong)}"
            self.flip_buttons[1].description = f"wrong → right: {len(flips.wrong_to_right)}"

    def _show(self, ids, title: str) -> None:
        self.shown_ids, self._title = [int(i) for i in ids], title
        flagged = {int(f["id"]) for f in self.flagged}
        self.gallery.value = gallery_html(self.analysis, self.data, self.shown_ids, self._thumbs, title, flagged=flagged)
        table = self.analysis.table(self.shown_ids[:50]) if self.shown_ids else None
        self.flag_pick.options = [] if table is None else [
            (f"#{r.id} {r.true} → {r.predicted} (loss {r.loss:.2f})", int(r.id)) for r in table.itertuples()]

    def _show_flags(self) -> None:
        rows = "".join(f"<li>#{esc(f['id'])}: given {esc(f['given_label'])}, predicted {esc(f['predicted_label'])}</li>"
                       for f in self.flagged)
        self.flag_list.value = f"<b>{len(self.flagged)} flagged</b><ul>{rows}</ul>"
        if self.shown_ids:
            self._show(self.shown_ids, self._title)

    def _need(self) -> ErrorAnalysis:
        if self.analysis is None:
            from ..errors import ConfigError

            raise ConfigError("No predictions yet: train an epoch first (session.step() or the Step epoch button).")
        return self.analysis


def _short(name: str, width: int = 10) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
