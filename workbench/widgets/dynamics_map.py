"""DynamicsMapView: the data map of training dynamics (Dataset Cartography) for the train split.

Each train sample is a point at (variability, confidence) of the probability of its label over the
epochs so far, coloured by region: easy-to-learn (green), ambiguous (orange), hard-to-learn (red);
ringed points are in the verify queue. A click or lasso on the canvas (or a region button) fills the
gallery below with those samples' cards, most suspicious (lowest confidence) first; each card has
Flag / Keep / relabel as…, which go to the session's verify queue (session.flag / session.relabel).
Every gesture has a twin: `draw()`, `select(ids)`, `select_polygon(polygon)`, `select_region(name)`,
`click(x, y)`. It reads `errors.dynamics()` of the analysis it is given (the explorer's, so an epoch
the scrubber shows is the map's last epoch too) and redraws after runs and when the queue changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np
import traitlets

from ..analysis import ErrorAnalysis
from ..analysis.dynamics import REGIONS, DynamicsMap
from ..plots.dynamics import REGION_COLORS, region_labels, region_lines
from .common import STYLE, MessageBox, Painter, guarded
from .gallery import CardGallery, ThumbnailCache
from .scatter import ScatterCanvas
from .train_cards import handle_card, train_cards_html


class DynamicsMapView(W.VBox):
    """Confidence over variability per train sample, with click / lasso selection (`selected`: train ids)."""

    selected = traitlets.List(traitlets.Int())  # train positions of the selected points

    def __init__(self, session, analysis: Callable[[], ErrorAnalysis | None] | None = None, width: int = 560,
                 height: int = 420) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self._analysis = analysis or (lambda: ErrorAnalysis.from_session(session) if session.predictions else None)
        self.message = MessageBox()
        self.info = W.HTML()
        self.draw_button = W.Button(description="Draw", icon="map", tooltip="Draw the data map from the epochs so far")
        self.region_buttons = [W.Button(description=f"Show {name}", layout=W.Layout(width="auto")) for name in REGIONS]
        for name, button in zip(REGIONS, self.region_buttons):
            button.on_click(lambda _, name=name: self.select_region(name))
        self.canvas = ScatterCanvas(width=width, height=height)
        self.canvas.add_class("wb-dynamics-canvas")
        self.gallery = CardGallery()
        self.gallery.add_class("wb-dynamics-gallery")
        self.data_map: DynamicsMap | None = None  # what the canvas shows
        self._ids = np.zeros(0, dtype=np.int64)  # train id of each canvas point
        self._title = ""
        self._thumbs = ThumbnailCache(self.data, "train") if self.data.kind == "image" else None
        self.draw_button.on_click(lambda _: self.draw())
        self.canvas.observe(lambda c: self._picked(c.new), names="selected")
        self.gallery.observe(lambda c: self._on_card(c.new), names="clicked")
        buttons = W.HBox([self.draw_button, *self.region_buttons], layout=W.Layout(width="auto"))
        buttons.add_class("wb-wrap-row")
        self.children = [W.HTML(STYLE), buttons, self.message, self.info, self.canvas, self.gallery]
        self.add_class("wb-dynamics-map")
        self.painter = Painter(self._model_changed, interval=0.0, budget=1.0)  # redrawn when shown
        session.on("fit_end", lambda _: self.data_map is not None and self.painter.request())
        session.on("review", lambda _: self._review_changed())

    # ---- public twins -----------------------------------------------------------------------------
    @guarded()
    def draw(self) -> DynamicsMap:
        """Draw the data map of the epochs recorded so far (errors.data_map())."""
        analysis = self._need()
        dmap = analysis.data_map()
        keep = list(self.selected)  # the selection survives a redraw (after an epoch, a relabel)
        rows = dmap.frame[dmap.frame["epochs_seen"] > 0]
        self.data_map, self._ids = dmap, rows.index.to_numpy()
        region = rows["region"].map({name: k for k, name in enumerate(REGIONS)}).to_numpy()
        right = max(0.5, float(rows["variability"].max()) * 1.05)
        with self.canvas.hold_sync():
            self.canvas.box = [0.0, right, -0.02, 1.02]
            self.canvas.lines = [[x0, y0, x1, y1] for (x0, y0), (x1, y1) in region_lines(dmap.thresholds, right)]
            counts = dmap.counts()
            self.canvas.labels = [[x, y, f"{name} ({counts[name]})", REGION_COLORS[name], "left" if x < right * 0.9 else "right"]
                                  for name, (x, y, _) in region_labels(dmap.thresholds, right).items()]
            self.canvas.axes = ["variability (std of p(label) over epochs)", "confidence (mean p(label))"]
            self.canvas.ticks = [[round(v, 1) for v in np.arange(0, right + 1e-9, 0.1)], [0, 0.25, 0.5, 0.75, 1]]
            self.canvas.set_points(rows[["variability", "confidence"]].to_numpy(np.float32), region, self._queued(),
                                   [REGION_COLORS[name] for name in REGIONS])
        epochs = list(dmap.epochs)
        note = f" · {self.session.dynamics.stopped}" if self.session.dynamics.stopped else ""
        self.info.value = (f'<div class="wb-card">{len(rows)} train samples over epochs {epochs[0]}-{epochs[-1]}: '
                           "x = variability, y = confidence of the probability of each sample's label; ringed dot = "
                           "in the verify queue. Click a point, drag a lasso or show a region to see the samples."
                           f"{note}</div>")
        self.message.clear()
        self.selected = []
        if keep:
            self.select(keep)
        return dmap

    @guarded()
    def select(self, ids: Sequence[int]) -> None:
        """Select these train ids (as a lasso would) and show their cards."""
        self._need_map()
        position = {int(i): n for n, i in enumerate(self._ids)}
        self.canvas.selected = [position[int(i)] for i in ids if int(i) in position]

    def select_polygon(self, polygon: Sequence[Sequence[float]]) -> list[int]:
        """Select the points inside a polygon in (variability, confidence) coordinates (the lasso's twin)."""
        ids = self._need_map().inside(polygon)
        self.select(ids)
        return [int(i) for i in ids]

    def select_region(self, name: str) -> list[int]:
        """Select every sample of one region ("easy-to-learn", "ambiguous", "hard-to-learn")."""
        if self.data_map is None:
            self.draw()
        ids = self._need_map().region(name)
        self.select(ids)
        return [int(i) for i in ids]

    def click(self, x: float, y: float) -> int:
        """Select the point nearest to (variability x, confidence y) (a click's twin); returns its id."""
        frame = self._need_map().frame.loc[self._ids]
        d = (frame["variability"].to_numpy() - x) ** 2 + (frame["confidence"].to_numpy() - y) ** 2
        i = int(self._ids[int(np.argmin(d))])
        self.select([i])
        return i

    def selected_ids(self) -> list[int]:
        return list(self.selected)

    # ---- plumbing ----------------------------------------------------------------------------------
    def _picked(self, positions: list[int]) -> None:
        if self.data_map is None:
            return
        ids = [int(self._ids[p]) for p in positions if p < len(self._ids)]
        frame = self.data_map.frame
        ids.sort(key=lambda i: (frame.at[i, "confidence"], i))  # the most suspicious first
        self.selected = ids
        counts = frame.loc[ids, "region"].value_counts() if ids else {}
        parts = ", ".join(f"{counts[r]} {r}" for r in REGIONS if r in counts)
        self._show(ids, f"map selection{' (' + parts + ')' if parts else ''}")

    def _show(self, ids: Sequence[int], title: str) -> None:
        self._title = title
        frame = None if self.data_map is None else self.data_map.frame
        self.gallery.html = train_cards_html(self.session, ids, frame, self._thumbs, title)

    @guarded()
    def _on_card(self, click: dict) -> None:
        done = handle_card(self.session, click)
        if done:
            self.message.show(done, "ok")

    def _queued(self) -> np.ndarray:
        review = self.session.review
        queued = set(review.decisions) | set(review.overrides) | set(review.pending)
        kept = {i for i, d in review.decisions.items() if d["decision"] == "keep"}
        return np.isin(self._ids, np.fromiter(queued - kept, dtype=np.int64)).astype(np.uint8)

    def _review_changed(self) -> None:
        if self.data_map is not None:
            self.canvas.wrong = self._queued().tobytes()
            if self._title:
                self._show(self.selected_ids(), self._title)

    def _model_changed(self) -> None:
        if self.data_map is not None:
            self.draw()

    def _need(self) -> ErrorAnalysis:
        analysis = self._analysis()
        if analysis is None:
            from ..errors import ConfigError

            raise ConfigError("No training dynamics yet: train an epoch first (session.step()).")
        return analysis

    def _need_map(self) -> DynamicsMap:
        if self.data_map is None:
            from ..errors import ConfigError

            raise ConfigError("No data map yet: press Draw (or call draw()) first.")
        return self.data_map
