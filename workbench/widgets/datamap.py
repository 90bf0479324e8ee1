"""DataMap: the validation set's pooled features in 2-D; click or lasso points to see those samples.

Points are coloured by true class, errors are ringed dots drawn on top (errors.embedding). A
click or lasso on the canvas sets `selected`; the samples show as cards below the map, so the map
stays where it is (with `on_card`, the cards carry the explorer's Why / Flag / relabel), or go to
`show` when one is given. A confusion-cell click in the explorer rings that cell's points
(`highlight_cell`). Drawing says at once what it is doing (a t-SNE takes seconds).
Every gesture has a twin: `draw(method)`, `select(ids)`, `select_polygon(polygon)`,
`click(x, y)`, `highlight_cell(true, pred)`; the canvas and the twins select the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np
import traitlets

from ..analysis import ErrorAnalysis
from ..analysis.embedding import Embedding, available_methods
from ..plots import class_palette
from ..validate import sample_id
from .common import STYLE, BusyLine, MessageBox, Painter, esc, guarded
from .gallery import CardGallery, ThumbnailCache, gallery_html
from .scatter import ScatterCanvas

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


class DataMap(W.VBox):
    """A 2-D map of the validation features with click / lasso selection (`selected`: valid ids)."""

    selected = traitlets.List(traitlets.Int())  # valid positions of the selected points

    def __init__(self, session, analysis: Callable[[], ErrorAnalysis | None] | None = None,
                 show: Callable[[Sequence[int], str], None] | None = None, width: int = 560, height: int = 440,
                 on_card: Callable[[dict], None] | None = None, flagged: Callable[[], set[int]] | None = None) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self._analysis = analysis or (lambda: ErrorAnalysis.from_session(session) if session.predictions else None)
        self.message = MessageBox()
        self.method = W.Dropdown(options=[("PCA", "pca"), ("t-SNE (slow)", "tsne")]
                                 + ([("UMAP", "umap")] if "umap" in available_methods() else []),
                                 value="pca", description="map", layout=W.Layout(width="200px"))
        self.method.add_class("wb-map-method")
        self.draw_button = W.Button(description="Draw", icon="map")
        self.info = W.HTML()
        self.legend = W.HTML()
        self.canvas = ScatterCanvas(width=width, height=height)
        self.embedding: Embedding | None = None  # what the canvas shows
        self.cards = CardGallery()  # the selection's cards, below the map
        self.cards.add_class("wb-map-cards")
        self._on_card, self._flagged = on_card, flagged or (lambda: set())
        if on_card is not None:
            self.cards.observe(lambda change: on_card(change["new"]), names="clicked")
        self.busy = BusyLine(session)
        self._selection: tuple[list[int], str] = ([], "")
        self._thumbs = ThumbnailCache(self.data) if self.data.kind == "image" else None
        self._show = show or self._show_here
        self._quiet = False
        self.draw_button.on_click(lambda _: self.draw(self.method.value))
        self.canvas.observe(lambda c: self._picked(c.new), names="selected")
        plot = W.HBox([self.canvas, self.legend], layout=W.Layout(width="auto"))
        plot.add_class("wb-wrap-row")  # the legend goes below the map in a narrow notebook
        self.canvas.layout.max_width = "100%"
        self.children = [W.HTML(STYLE), W.HBox([self.method, self.draw_button]), self.busy, self.message, self.info,
                         plot, *([] if show else [self.cards])]
        self.add_class("wb-datamap")
        self.painter = Painter(self._model_changed, interval=0.0, budget=1.0)  # redrawn when shown
        session.on("fit_end", lambda _: self.embedding is not None and self.painter.request())

    # ---- public twins -----------------------------------------------------------------------------
    @guarded()
    def draw(self, method: str = "pca") -> Embedding:
        """Project the validation features (errors.embedding(method)) and draw them."""
        analysis = self._need()
        what = METHODS.get(method, method)
        slow = " (t-SNE takes a few seconds)" if method == "tsne" else ""
        with self.busy.working(f"drawing the {what} map of the {len(analysis.labels):,} validation samples{slow}",
                               self.session):
            emb = analysis.embedding(method)
        self.embedding = emb
        self.canvas.set_points(emb.coords, emb.labels % 256, emb.wrong, class_palette(len(emb.classes)))
        self.selected = []
        ev = f", {sum(emb.explained_variance):.0%} of the variance" if emb.explained_variance else ""
        self.info.value = (f'<div class="wb-card">{len(emb.ids)} validation samples, {what}{ev}, epoch {analysis.epoch}: '
                           f"colour = true class, ringed dot = error ({int(emb.wrong.sum())}). Click a point or drag a "
                           "lasso to see the samples.</div>")
        palette = class_palette(len(emb.classes))
        self.legend.value = "".join(
            f'<div style="font-size:12px"><span aria-hidden="true" style="color:{palette[i]}">■</span> {esc(name)}</div>'
            for i, name in enumerate(emb.classes[:30]))
        self.message.clear()
        return emb

    @guarded()
    def select(self, ids: Sequence[int]) -> None:
        """Select these validation ids (as a lasso would) and show them."""
        emb = self._need_embedding()
        position = {int(i): n for n, i in enumerate(emb.ids)}
        picked = [sample_id("select id", i, position, hint="Ids are positions in the valid split, as the map shows them.")
                  for i in ([ids] if isinstance(ids, (int, np.integer)) else ids)]
        self.canvas.selected = [position[i] for i in picked]

    def select_polygon(self, polygon: Sequence[Sequence[float]]) -> list[int]:
        """Select the points inside a polygon in map coordinates (the lasso's twin); returns their ids."""
        ids = self._need_embedding().inside(polygon)
        self.select(ids)
        return [int(i) for i in ids]

    def click(self, x: float, y: float) -> int:
        """Select the point nearest to (x, y) in map coordinates (a click's twin); returns its id."""
        i = self._need_embedding().nearest(x, y)
        self.select([i])
        return i

    def highlight_cell(self, cell: tuple[int, int] | None) -> None:
        """Ring the points of confusion cell (true, pred) and dim the others; None clears."""
        if self.embedding is None:
            return
        with self.hold_trait_notifications():
            self._quiet = True  # the cell's samples are in the gallery already: drop the old selection quietly
            try:
                self.canvas.selected = []
            finally:
                self._quiet = False
        if cell is None:
            self.canvas.highlighted = []
            return
        ids = set(self.embedding.cell(*cell).tolist())
        self.canvas.highlighted = [n for n, i in enumerate(self.embedding.ids) if int(i) in ids]

    # ---- plumbing ----------------------------------------------------------------------------------
    def _picked(self, positions: list[int]) -> None:
        emb = self.embedding
        if emb is None or self._quiet:
            return
        ids = [int(emb.ids[p]) for p in positions]
        self.selected = ids
        wrong = int(emb.wrong[positions].sum()) if positions else 0
        how = "point" if len(ids) == 1 else "lasso"
        self._show(ids, f"map {how}: {len(ids)} selected, {wrong} of them errors")

    def _show_here(self, ids: Sequence[int], title: str) -> None:
        """The selection's cards below the map (the map stays in view)."""
        self._selection = ([int(i) for i in ids], title)
        self.refresh_cards()

    def refresh_cards(self) -> None:
        """Draw the selection's cards again (e.g. after one was flagged)."""
        ids, title = self._selection
        analysis = self._analysis() if ids else None
        self.cards.value = "" if analysis is None else gallery_html(
            analysis, self.data, ids, self._thumbs, title, flagged=self._flagged(), actions=self._on_card is not None)

    def _model_changed(self) -> None:
        if self.embedding is not None:
            self.draw(self.embedding.method)

    def _need(self) -> ErrorAnalysis:
        analysis = self._analysis()
        if analysis is None:
            from ..errors import ConfigError

            raise ConfigError("No predictions yet: train an epoch first (session.step()).")
        return analysis

    def _need_embedding(self) -> Embedding:
        if self.embedding is None:
            from ..errors import ConfigError

            raise ConfigError("No map yet: press Draw (or call draw('pca')) first.")
        return self.embedding

