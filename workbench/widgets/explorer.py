"""ErrorExplorer: a clickable confusion matrix linked to the samples behind each cell.

Clicking cell (true i, predicted j) sets the synced trait `selected = (i, j)`, and the gallery
shows exactly `analysis.indices(i, j)`, highest loss first; `explorer.selected = (i, j)` from code
takes the same path. Beside the matrix: top losses, most-confused pairs, per-class scores (click a
class for its errors), flips since the previous epoch, and the samples flagged for relabelling.
Each card has Why? (explained in the Why tab below), Flag / Unflag and "relabel as…"; every one
has a method twin (explain, flag, unflag, relabel). The explorer re-reads the session's latest
predictions after epochs: during a run at most every 2 s, at its end always, and only while it is
shown (a hidden Workbench tab repaints when opened). With many classes the matrix shows those in
the most confusion, and any others can be picked.
"""

from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as W
import numpy as np
import traitlets
from matplotlib import colormaps
from matplotlib.colors import to_hex

from ..analysis import ErrorAnalysis
from ..plots import rank_by_confusion
from ..validate import whole
from .common import STYLE, MessageBox, Painter, esc, guarded, readable_on, table_html
from .gallery import CardGallery, ThumbnailCache, gallery_html

MAX_CELLS = 12  # classes shown in the matrix before it collapses to those in the most confusion
SIDE_TITLES = ("Top losses", "Most confused", "Per class", "Flips", "Flagged")


def _cell_px(n: int) -> int:
    return 52 if n <= 4 else 42 if n <= 10 else 36


class ErrorExplorer(W.VBox):
    """Explore the latest validation errors of a Session (`selected` is the clicked cell)."""

    selected = traitlets.Tuple(allow_none=True, default_value=None).tag(sync=True)  # (true, predicted) indices
    # the epoch shown: None = the latest; an earlier one as the session kept it (the epoch scrubber sets it)
    epoch = traitlets.Int(allow_none=True, default_value=None).tag(sync=True)

    def __init__(self, session, max_cells: int = MAX_CELLS) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self.max_cells = max_cells
        self.message = MessageBox()
        self.analysis: ErrorAnalysis | None = None
        self.flagged: list[dict[str, object]] = []  # survives refreshes; analysis.flagged is this list
        self.shown_ids: list[int] = []  # the gallery's samples, in order
        self._title = ""
        self._lock = threading.RLock()  # refreshes come from the training thread, clicks from the main one
        self._thumbs = ThumbnailCache(self.data) if self.data.kind == "image" else None
        k = self.data.num_classes
        self.mode = W.ToggleButtons(options=[("count", "count"), ("row %", "rate")], value="count",
                                    style={"button_width": "auto"}, layout=W.Layout(width="auto"),
                                    tooltips=["cell colour by count", "by share of the true class"])
        self.classes_pick = W.SelectMultiple(options=[(c, i) for i, c in enumerate(self.data.classes)],
                                             rows=6, description="classes", layout=W.Layout(width="260px"))
        self.classes_pick.layout.display = "none" if k <= max_cells else ""
        self.header = W.HTML()
        n = min(k, max_cells)
        cell = f"{_cell_px(n)}px"
        self._shown: list[int] = list(range(n))  # class index at each matrix position
        # One Layout shared by all cells and one by all labels (they never change): each widget
        # model is one more state a reloaded page must fetch before it can draw the Workbench
        # (docs/ARCHITECTURE.md, "Rendering": reloads). Columns shrink to 26 px on a narrow notebook.
        label_layout = W.Layout(width="auto")
        cell_layout = W.Layout(width="auto", height="30px", padding="0", margin="0", min_width="0")
        self._col_labels = [W.HTML(layout=label_layout) for _ in range(n)]
        self._row_labels = [W.HTML(layout=label_layout) for _ in range(n)]
        self._cells = [[W.Button(layout=cell_layout) for _ in range(n)] for _ in range(n)]
        grid: list[W.Widget] = [W.HTML('<span class="wb-muted">true ↓ pred →</span>', layout=W.Layout(width="auto")),
                                *self._col_labels]
        for r in range(n):
            grid.append(self._row_labels[r])
            for c in range(n):
                self._cells[r][c].on_click(lambda _, r=r, c=c: self.select(self._shown[r], self._shown[c]))
                grid.append(self._cells[r][c])
        columns = f"max-content repeat({n}, minmax(26px, {cell}))"
        self.matrix = W.GridBox(grid, layout=W.Layout(grid_gap="2px", overflow="visible", width="auto",
                                                      grid_template_columns=columns))
        self.matrix.add_class("wb-matrix")
        self.gallery = CardGallery()
        self.gallery.add_class("wb-gallery-box")
        self.gallery.observe(lambda change: self._on_card(change["new"]), names="clicked")
        self.top_button = W.Button(description="Show the top losses", icon="sort-amount-desc", layout=W.Layout(width="auto"))
        self._pair_of: dict[int, tuple[int, int]] = {}
        self._pair_buttons = [W.Button(layout=W.Layout(width="auto", display="none")) for _ in range(10)]
        for n_, b in enumerate(self._pair_buttons):
            b.on_click(lambda _, n_=n_: self.select(*self._pair_of[n_]))
        self.pairs = W.VBox(self._pair_buttons, layout=W.Layout(width="auto", overflow="visible"))
        header_cells = [W.HTML(f"<b>{h}</b>", layout=label_layout)
                        for h in ("class", "precision", "recall", "F1", "support")]
        self._class_rows: list[list[W.Label]] = []
        rows: list[W.Widget] = []
        for i, name in enumerate(self.data.classes):
            b = W.Button(description=_short(str(name), 18), tooltip=f"errors of class {name}",
                         layout=W.Layout(width="auto", max_width="180px"))
            b.on_click(lambda _, i=i: self.show_class_errors(i))
            labels = [W.Label(layout=label_layout) for _ in range(4)]
            self._class_rows.append(labels)
            rows += [b, *labels]
        self.per_class = W.GridBox(header_cells + rows, layout=W.Layout(
            grid_template_columns="max-content repeat(4, max-content)", grid_gap="0 14px", overflow="visible",
            width="auto"))
        self.flip_buttons = (W.Button(description="right → wrong", layout=W.Layout(width="auto")),
                             W.Button(description="wrong → right", layout=W.Layout(width="auto")))
        self.export_path = W.Text(value="flagged.csv", description="CSV", layout=W.Layout(width="240px"),
                                  style={"description_width": "initial"})
        self.export_button = W.Button(description="Export", icon="download", layout=W.Layout(width="auto"))
        self.flag_list = W.HTML()
        self.flag_list.add_class("wb-flag-list")
        flips = W.HBox(list(self.flip_buttons), layout=W.Layout(width="auto"))
        export = W.HBox([self.export_path, self.export_button], layout=W.Layout(width="auto"))
        for row in (flips, export):
            row.add_class("wb-wrap-row")
        self.side = W.Tab(children=[
            W.VBox([W.HTML('<span class="wb-muted">every validation sample, highest loss first</span>'),
                    self.top_button], layout=W.Layout(overflow="visible")),
            self.pairs, self.per_class,
            W.VBox([W.HTML('<span class="wb-muted">samples whose correctness changed since the epoch before</span>'),
                    flips], layout=W.Layout(overflow="visible")),
            W.VBox([self.flag_list, export], layout=W.Layout(overflow="visible")),
        ], layout=W.Layout(width="auto", flex="1 1 340px", max_width="560px", min_width="0"))
        for i, t in enumerate(SIDE_TITLES):
            self.side.set_title(i, t)
        self.side.add_class("wb-subtabs")
        self.side.add_class("wb-side")
        self.top_button.on_click(lambda _: self.show_top_losses())
        self.flip_buttons[0].on_click(lambda _: self.show_flips("right_to_wrong"))
        self.flip_buttons[1].on_click(lambda _: self.show_flips("wrong_to_right"))
        self.export_button.on_click(lambda _: self.export(self.export_path.value))
        self.mode.observe(lambda _: self._paint(), names="value")
        self.classes_pick.observe(lambda _: self._place_classes(), names="value")
        self.observe(self._on_selected, names="selected")
        self.observe(lambda _: self.refresh(), names="epoch")
        controls = W.HBox([self.mode, self.classes_pick], layout=W.Layout(width="auto"))
        controls.add_class("wb-wrap-row")
        left = W.VBox([controls, self.matrix], layout=W.Layout(width="auto", overflow="visible", flex="0 1 auto"))
        top = W.HBox([left, self.side], layout=W.Layout(align_items="flex-start"))
        top.add_class("wb-wrap-row")
        self.children = [W.HTML(STYLE), self.header, top, self.message, self.gallery]
        self.add_class("wb-explorer")
        self.add_class("wb-view")
        self.painter = Painter(self.refresh, interval=2.0, budget=0.03)
        # -- "Explain the errors" sub-tabs (Why, Label issues, Map) under the gallery: explain_tabs.py --
        from .explain_tabs import attach

        attach(self)
        session.on("fit_start", lambda _: self.painter.hold())
        session.on("epoch_end", lambda _: self.painter.request())
        session.on("fit_end", lambda _: self.painter.flush())
        self._show_flags()
        self.painter.paint()

    @property
    def visible(self) -> bool:
        return self.painter.visible

    @visible.setter
    def visible(self, shown: bool) -> None:
        """Shown or not (a Workbench tab): hidden, it and its Why panel and map only mark themselves
        stale after epochs, and repaint when shown again."""
        for painter in (self.painter, self.why.painter, self.data_map.painter, *getattr(self, "extra_painters", ())):
            painter.visible = shown

    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was (no kernel, no widget state)
        return f"ErrorExplorer widget (run the notebook to use it): {self.analysis!r}"

    # ---- public twins -------------------------------------------------------------------------
    @guarded()
    def select(self, true: int | str, pred: int | str) -> None:
        """Show the samples of class `true` predicted as `pred` (a click on that matrix cell)."""
        a = self._need()
        cell = (a._class_index(true), a._class_index(pred))
        if self.selected == cell:
            self._show_cell(*cell)  # the same cell again (e.g. after an epoch): show it anew
        else:
            self.selected = cell  # -> _on_selected shows it, as for `explorer.selected = ...` from code

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
        previous = self._previous()
        if previous is None:
            self.message.show("Flips need two evaluated epochs: train one more epoch.", "info")
            return
        flips = a.flips(previous)
        ids = getattr(flips, which)
        label = "right before, wrong now" if which == "right_to_wrong" else "wrong before, right now"
        self.selected = None
        self._show(ids, f"flips since epoch {previous.epoch}: {label}")

    @guarded()
    def explain(self, sample_id: int) -> None:
        """Why did the model decide so for this sample (a card's picture or Why? button): the Why tab."""
        self.why.show(sample_id)  # checked there: an int id, never coerced
        self.explain_tabs.selected_index = 0

    @guarded()
    def flag(self, ids, note: str = "label looks wrong") -> None:
        """Mark samples whose given label looks wrong; `errors.flagged` (this explorer's list) holds them."""
        a = self._need()
        for i in a.check_ids(_ids(ids)):  # all checked before the first is flagged
            a.flag(i, note=note)
        self._show_flags()

    @guarded()
    def unflag(self, ids) -> None:
        a = self._need()
        for i in [whole("unflag id", i) for i in _ids(ids)]:
            a.unflag(i)
        self._show_flags()

    @guarded()
    def relabel(self, sample_id: int, label: int | str) -> None:
        """Flag a sample with the label it should have ("relabel as <class>" in the CSV's note)."""
        a = self._need()
        name = a.classes[a._class_index(label)]
        sample_id = a.check_ids([sample_id])[0]
        a.unflag(sample_id)
        a.flag(sample_id, note=f"relabel as {name}")
        self._show_flags()

    @guarded()
    def export(self, path) -> Path:
        """Write the flagged samples as CSV (id, given label, predicted label, note)."""
        out = self._need().export_flagged(path)
        self.message.show(f"Wrote {len(self.flagged)} flagged samples to {out.resolve()}", "ok")
        return out

    def refresh(self) -> None:
        """Re-read the session's latest predictions (after epochs; safe from the training thread)."""
        with self._lock:
            if self.session.predictions is None:
                self.header.value = ('<span class="wb-muted">No predictions yet: train an epoch, then come '
                                     "back.</span>")
                return
            analysis = ErrorAnalysis.from_session(self.session, epoch=self.epoch)
            analysis.flagged = self.flagged  # flags survive epochs
            self.analysis = analysis
            errors = int((analysis.predicted != analysis.labels).sum())
            self.header.value = (f'{STYLE}<div class="wb-card">epoch {analysis.epoch} · accuracy '
                                 f"<b>{analysis.accuracy:.3f}</b> · macro-F1 <b>{analysis.macro_f1:.3f}</b> · "
                                 f"{errors} errors of {len(analysis.labels)} · click a cell to see its samples</div>")
            self._place_classes()
            self._update_side()
            if self.selected is not None:
                self._show_cell(*self.selected)
            elif self.shown_ids:
                self._show(self.shown_ids, self._title)

    # ---- plumbing --------------------------------------------------------------------------------
    def _on_selected(self, change) -> None:
        if change["new"] is not None:
            self._select_now(*change["new"])

    @guarded()
    def _select_now(self, true: int, pred: int) -> None:
        a = self._need()
        self._show_cell(a._class_index(true), a._class_index(pred))

    def _show_cell(self, t: int, p: int) -> None:
        a = self.analysis
        title = (f"class {a.classes[t]}, predicted correctly" if t == p
                 else f"true {a.classes[t]}, predicted as {a.classes[p]}")
        self._show(a.indices(t, p), title)

    def _on_card(self, click: dict) -> None:
        action, i = click.get("action"), click.get("id")
        if i is None:
            return
        if action == "why":
            self.explain(i)
        elif action == "flag":
            self.flag([i])
        elif action == "unflag":
            self.unflag([i])
        elif action == "relabel" and click.get("label") is not None:
            self.relabel(i, int(click["label"]))

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
            name = esc(classes[i])
            self._col_labels[pos].value = (f'<div style="text-align:center;font-size:12px;line-height:1.2" '
                                           f'title="{name}">{esc(_short(classes[i], 8))}</div>')
            self._row_labels[pos].value = (f'<div style="font-size:12px;line-height:30px;white-space:nowrap" '
                                           f'title="{name}">{esc(_short(classes[i], 14))}</div>')
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
        shade = 0.08 + 0.8 * values  # correct in blue, errors in red; one colormap call each for all cells
        blues, reds = colormaps["Blues"](shade), colormaps["Reds"](shade)
        for r, i in enumerate(self._shown):
            for c, j in enumerate(self._shown):
                b = self._cells[r][c]
                b.description = f"{rate[i, j]:.0%}" if self.mode.value == "rate" else str(cm[i, j])
                b.style.button_color = to_hex((blues if i == j else reds)[i, j]) if cm[i, j] else "#ffffff"
                b.style.text_color = readable_on(b.style.button_color)

    # ---- side panels -----------------------------------------------------------------------------
    def _update_side(self) -> None:
        a = self.analysis
        pairs = a.most_confused(min_count=1).head(len(self._pair_buttons))
        for n_, b in enumerate(self._pair_buttons):
            if n_ < len(pairs):
                row = pairs.iloc[n_]
                self._pair_of[n_] = (int(row.true_index), int(row.pred_index))
                b.description = f"{_short(str(row.true), 16)} → {_short(str(row.predicted), 16)}: {row['count']}"
                b.tooltip = f"true {row.true}, predicted {row.predicted}: {row['count']} samples"
                b.layout.display = ""
            else:
                b.layout.display = "none"
        table = a.per_class()
        for labels, (_, row) in zip(self._class_rows, table.iterrows()):
            for label, col in zip(labels, ("precision", "recall", "f1")):
                label.value = f"{row[col]:.3f}"
            labels[3].value = str(int(row["support"]))
        previous = self._previous()
        if previous is not None:
            flips = a.flips(previous)
            self.flip_buttons[0].description = f"right → wrong: {len(flips.right_to_wrong)}"
            self.flip_buttons[1].description = f"wrong → right: {len(flips.wrong_to_right)}"

    def _show(self, ids, title: str) -> None:
        with self._lock:
            self.shown_ids, self._title = [int(i) for i in ids], title
            flagged = {int(f["id"]) for f in self.flagged}
            self.gallery.html = gallery_html(self.analysis, self.data, self.shown_ids, self._thumbs, title,
                                             flagged=flagged, actions=True)

    def _show_flags(self) -> None:
        rows = [[f["id"], f["given_label"], f["predicted_label"], f["note"]] for f in self.flagged]
        count = f'<div class="wb-card"><b>{len(self.flagged)} flagged</b>'
        hint = (" · flag samples from their cards (Flag, or relabel as…); Export writes them as CSV</div>")
        self.flag_list.value = count + hint + (table_html(["id", "given", "predicted", "note"], rows, wrap=(3,))
                                               if rows else "")
        self.side.set_title(4, f"Flagged ({len(self.flagged)})" if self.flagged else "Flagged")
        if self.shown_ids and self.analysis is not None:
            self._show(self.shown_ids, self._title)

    def _previous(self):
        """What flips compare with: the epoch before the one shown (kept by the session for earlier ones)."""
        if self.epoch is None:
            return self.session.previous_predictions
        from ..analysis.dynamics_views import kept_before

        return kept_before(ErrorAnalysis, self.session, self.epoch)

    def _need(self) -> ErrorAnalysis:
        if self.analysis is None:
            from ..errors import ConfigError

            raise ConfigError("No predictions yet: train an epoch first (session.step() or the Step epoch button).")
        return self.analysis


def _short(name: str, width: int = 10) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"


def _ids(ids) -> list:
    """One id or several, as given: each is checked where it is used (an int id, never coerced)."""
    return list(ids) if isinstance(ids, (list, tuple, set, np.ndarray)) else [ids]
