"""Workbench: the four views in tabs (Model, Freeze, Train, Errors), over one Session."""

from __future__ import annotations

import ipywidgets as W

from ..train.session import Session
from .common import STYLE, MessageBox, StaticSnapshot, display_with_snapshot, guarded
from .compare import CompareView
from .dashboard import TrainingDashboard
from .distil_compress import DistilCompressView
from .explorer import ErrorExplorer
from .freeze import FreezePanel
from .picker import BackbonePicker

TABS = ("Model", "Freeze", "Train", "Errors", "Compare", "Distil & compress")


class Workbench(W.VBox):
    """`Workbench(session)`, or `Workbench(data)` to start by picking a backbone.

    Loading another backbone in the Model tab starts a new Session (the old one is untouched
    and stays in `previous_sessions`).
    """

    def __init__(self, source, **session_settings) -> None:
        self.session: Session | None = source if isinstance(source, Session) else None
        self.data = self.session.data if self.session is not None else source
        self.session_settings = session_settings
        self.previous_sessions: list[Session] = []
        self.snapshot = StaticSnapshot()  # the last training plot as a plain output, for saved notebooks
        self.message = MessageBox()
        self.picker = BackbonePicker(self.data)
        self.picker.on_load(self._use_model)
        self.freeze_panel: FreezePanel | None = None
        self.dashboard: TrainingDashboard | None = None
        self.explorer: ErrorExplorer | None = None
        self.distil_view: DistilCompressView | None = None
        self.compare = CompareView()  # this kernel's runs; listed again whenever its tab opens
        self.tabs = W.Tab(children=[self.picker] + [_placeholder("Load a backbone in the Model tab first.")] * 3 + [self.compare]
                           + [_placeholder("Load a backbone in the Model tab first.")])
        self.tabs.observe(lambda c: self.compare.refresh() if c["new"] == TABS.index("Compare") else None, names="selected_index")
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        self.tabs.add_class("wb-tabs")
        self.tabs.observe(lambda _: self._shown(), names="selected_index")
        super().__init__([W.HTML(STYLE), self.tabs, self.message], layout=W.Layout(max_width="1100px"))
        self.add_class("wb-workbench")
        self.add_class("wb-view")
        if self.session is not None:
            self._attach(self.session)
            self.tabs.selected_index = 2

    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was (no kernel, no widget state)
        what = repr(self.session) if self.session is not None else f"{self.data!r}, no backbone yet"
        return f"Workbench widget (run the notebook to use it): {what}"

    def _ipython_display_(self) -> None:
        display_with_snapshot(self, self.snapshot)

    @guarded()
    def _use_model(self, model) -> None:
        if self.session is not None:
            if self.session.running:
                self.session.stop()
            self.previous_sessions.append(self.session)
        self._attach(Session(self.data, model, **self.session_settings))
        self.tabs.selected_index = 1

    def _attach(self, session: Session) -> None:
        self.session = session
        self.freeze_panel = FreezePanel(session)
        self.dashboard = TrainingDashboard(session, snapshot=self.snapshot)
        self.explorer = ErrorExplorer(session)
        self.distil_view = DistilCompressView(session)
        self.tabs.children = [self.picker, self.freeze_panel, self.dashboard, self.explorer, self.compare,
                              self.distil_view]
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        self._shown()

    def _shown(self) -> None:
        """Views in hidden tabs only mark themselves stale after epochs; the selected one repaints now."""
        if self.explorer is not None:
            self.explorer.visible = self.tabs.selected_index == TABS.index("Errors")


def _placeholder(text: str) -> W.HTML:
    box = MessageBox()
    box.show(text, "info")
    return box
