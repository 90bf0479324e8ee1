"""The Errors tab's "explain" sub-tabs (Why, Label issues, Map), attached to an ErrorExplorer.

Kept out of explorer.py so the explorer's layout can change freely: `attach(explorer)` adds one
Tab under the gallery and wires it with the explorer's public state:

- Why: `explorer.why.show(id)`; a card's picture or Why? button calls `explorer.explain(id)`, which
  shows it here and selects this tab.
- Label issues: reads `explorer.analysis`; flags go into the explorer's flag list and CSV.
- Map: reads `explorer.analysis`; its selection fills the explorer's gallery; a confusion-cell
  click (`explorer.selected`) rings that cell's points. Drawn the first time its tab opens.
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
    explorer.data_map = DataMap(session, analysis=lambda: explorer.analysis, show=explorer._show)
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
