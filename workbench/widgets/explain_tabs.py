"""The Errors tab's "explain" sub-tabs (Why, Label issues, Map), attached to an ErrorExplorer.

Kept out of explorer.py so the explorer's layout can change freely: `attach(explorer)` adds one
Tab under the gallery and wires it with the explorer's public state:

- Why: `explorer.why.show(id)`; a card's picture or Why? button calls `explorer.explain(id)`, which
  shows it here and selects this tab.
- Label issues: reads `explorer.analysis`; flags go into the explorer's flag list and CSV.
- Map: reads `explorer.analysis`; a click or lasso shows its samples as cards below the map (the
  map stays in view), with the explorer's Why / Flag / relabel; a confusion-cell click
  (`explorer.selected`) rings that cell's points. Drawn the first time its tab opens.
"""

from __future__ import annotations

import ipywidgets as W

from .datamap import DataMap
from .issues import LabelIssuesView
from .why import WhyPanel

TITLES = ("Why", "Label issues", "Map")


def attach(explorer) -> W.Tab:
    """Add the Why / Label issues / Map tabs below the explorer's gallery; returns the Tab."""
    session = explorer.session
    explorer.why = WhyPanel(session)
    explorer.issues = LabelIssuesView(session, analysis=lambda: explorer.analysis, on_flagged=explorer._show_flags)
    def map_card(click: dict) -> None:  # a map card's Why / Flag / relabel: the explorer's, then redraw
        explorer._on_card(click)
        explorer.data_map.refresh_cards()

    explorer.data_map = DataMap(session, analysis=lambda: explorer.analysis, on_card=map_card,
                                flagged=lambda: {int(f["id"]) for f in explorer.flagged})
    tabs = W.Tab(children=[explorer.why, explorer.issues, explorer.data_map])
    for i, title in enumerate(TITLES):
        tabs.set_title(i, title)
    tabs.add_class("wb-explain-tabs")
    tabs.add_class("wb-subtabs")
    explorer.explain_tabs = tabs

    def tab_opened(change) -> None:
        if change.new == 2 and explorer.data_map.embedding is None and explorer.analysis is not None:
            explorer.data_map.draw("pca")
            explorer.data_map.highlight_cell(explorer.selected)

    explorer.observe(lambda change: explorer.data_map.highlight_cell(change.new), names="selected")
    tabs.observe(tab_opened, names="selected_index")
    explorer.children = (*explorer.children, tabs)
    return tabs
