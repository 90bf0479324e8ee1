"""The Errors tab's "explain" sub-tabs (Why, Label issues, Map, Verify) and the epoch scrubber,
attached to an ErrorExplorer.

Kept out of explorer.py so the explorer's layout can change freely: `attach(explorer)` adds one
Tab under the gallery and wires it with the explorer's public state:

- Why: `explorer.why.show(id)`; a card's picture or Why? button calls `explorer.explain(id)`, which
  shows it here and selects this tab.
- Label issues: reads `explorer.analysis` (the latest epoch's while the scrubber shows an earlier
  one: rankings need the current features); flags go into the explorer's flag list and CSV.
- Map: reads the same analysis; a click or lasso shows its samples as cards below the map (the map
  stays in view), with the explorer's Why / Flag / relabel; a confusion-cell click
  (`explorer.selected`) rings that cell's points. Drawn the first time its tab opens. A toggle
  switches it to the training-dynamics data map of the train split (dynamics_map.py), whose lasso
  fills its own gallery of train cards.
- Verify: the session's verify queue of train labels (verify.py).
- The epoch scrubber (scrubber.py) goes right under the explorer's header line.

A stand-in session holding predictions only (a replayed run in Compare) has no training dynamics:
it gets Why, Label issues and the features map.
"""

from __future__ import annotations

import ipywidgets as W

from ..analysis import ErrorAnalysis
from .datamap import DataMap
from .dynamics_map import DynamicsMapView
from .issues import LabelIssuesView
from .scrubber import EpochScrubber
from .verify import VerifyQueueView
from .why import WhyPanel

TITLES = ("Why", "Label issues", "Map", "Verify")
MAP_VIEWS = (("pooled features (valid)", "features"), ("training dynamics (train)", "dynamics"))


def latest_analysis(explorer):
    """A getter of the latest epoch's ErrorAnalysis: the explorer's own, or (while the scrubber shows an
    earlier epoch) one built once per epoch, sharing the explorer's flags."""
    kept: dict = {}

    def get():
        if explorer.epoch is None or explorer.analysis is None:
            return explorer.analysis
        epoch = explorer.session.predictions.epoch
        if kept.get("epoch") != epoch:
            analysis = ErrorAnalysis.from_session(explorer.session)
            analysis.flagged = explorer.flagged
            kept.update(epoch=epoch, analysis=analysis)
        return kept["analysis"]

    return get


def attach(explorer) -> W.Tab:
    """Add the Why / Label issues / Map tabs below the explorer's gallery; returns the Tab."""
    session = explorer.session
    explorer.why = WhyPanel(session)
    latest = latest_analysis(explorer)
    explorer.issues = LabelIssuesView(session, analysis=latest, on_flagged=explorer._show_flags)

    def map_card(click: dict) -> None:  # a map card's Why / Flag / relabel: the explorer's, then redraw
        explorer._on_card(click)
        explorer.data_map.refresh_cards()

    explorer.data_map = DataMap(session, analysis=latest, on_card=map_card,
                                flagged=lambda: {int(f["id"]) for f in explorer.flagged})
    dynamic = hasattr(session, "dynamics") and hasattr(session, "review")
    explorer.map_view = W.ToggleButtons(options=MAP_VIEWS if dynamic else MAP_VIEWS[:1], value="features",
                                        style={"button_width": "auto"})
    explorer.map_view.add_class("wb-map-view")
    maps = W.VBox([explorer.map_view, explorer.data_map], layout=W.Layout(overflow="visible"))
    pages = [explorer.why, explorer.issues, maps]
    if dynamic:
        explorer.dynamics_map = DynamicsMapView(session, analysis=lambda: explorer.analysis)
        explorer.verify = VerifyQueueView(session)
        pages.append(explorer.verify)
    tabs = W.Tab(children=pages)
    for i, title in enumerate(TITLES[: len(pages)]):
        tabs.set_title(i, title)
    tabs.add_class("wb-explain-tabs")
    tabs.add_class("wb-subtabs")
    explorer.explain_tabs = tabs

    def draw_map_shown() -> None:
        """The map on show is drawn the first time it is seen."""
        if tabs.selected_index != 2 or explorer.analysis is None:
            return
        if explorer.map_view.value == "dynamics" and explorer.dynamics_map.data_map is None:
            explorer.dynamics_map.draw()
        elif explorer.map_view.value == "features" and explorer.data_map.embedding is None:
            explorer.data_map.draw("pca")
            explorer.data_map.highlight_cell(explorer.selected)

    def map_switched(change) -> None:
        maps.children = [explorer.map_view, explorer.dynamics_map if change.new == "dynamics" else explorer.data_map]
        draw_map_shown()

    explorer.map_view.observe(map_switched, names="value")

    explorer.observe(lambda change: explorer.data_map.highlight_cell(change.new), names="selected")
    tabs.observe(lambda _: draw_map_shown(), names="selected_index")
    kids = list(explorer.children)
    if dynamic:
        explorer.scrubber = EpochScrubber(explorer)
        kids.insert(kids.index(explorer.header) + 1 if explorer.header in kids else 0, explorer.scrubber)
        explorer.extra_painters = (explorer.dynamics_map.painter, explorer.verify.painter, explorer.scrubber.painter)
    explorer.children = (*kids, tabs)
    return tabs
