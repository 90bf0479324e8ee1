"""Workbench: the four views in tabs (Model, Freeze, Train, Errors), over one Session."""

from __future__ import annotations

import ipywidgets as W

from ..train.session import Session
from .choose import ChooseView
from .common import STYLE, MessageBox, StaticSnapshot, close_tree, display_with_snapshot, guarded
from .compare import CompareView
from .dashboard import TrainingDashboard
from .distil_compress import DistilCompressView
from .explorer import ErrorExplorer
from .freeze import FreezePanel
from .picker import BackbonePicker

TABS = ("Model", "Freeze", "Train", "Errors", "Compare", "Distil & compress")


class Workbench(W.VBox):
    """`Workbench(session)`, or `Workbench(data)` to start by picking a backbone.

    Loading another backbone in the Model tab starts a new Session (the old one is untouched,
    stays in `previous_sessions` and in the Compare tab, and the message says so); the view moves
    to the Freeze tab only if the person is still on the Model tab when the load ends.
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
        self.choose = ChooseView(self.data)  # rank candidate backbones; adopting one starts its session
        self.choose.on_adopt(self._use_session)
        self.model_tab = W.Tab(children=[self.picker, self.choose])
        self.model_tab.set_title(0, "Pick")
        self.model_tab.set_title(1, "Choose")
        self.model_tab.add_class("wb-subtabs")
        self.freeze_panel: FreezePanel | None = None
        self.dashboard: TrainingDashboard | None = None
        self.explorer: ErrorExplorer | None = None
        self.distil_view: DistilCompressView | None = None
        self.compare = CompareView()  # this kernel's runs; listed again whenever its tab opens
        # The Freeze, Train and Errors tabs are fixed boxes whose content changes with the session: a
        # Tab whose children change resets its selection in the page (the view's new tabs arrive one by
        # one and Lumino selects the first), which moved the person to the Model tab.
        self._slots = [W.VBox([_placeholder("Load a backbone in the Model tab first.")],
                              layout=W.Layout(width="auto", overflow="visible"))
                       for _ in range(4)]  # Freeze, Train, Errors; Distil & compress
        self.tabs = W.Tab(children=[self.model_tab, *self._slots[:3], self.compare, self._slots[3]])
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
    def _use_model(self, model) -> str:
        """A new run on `model`; the previous one is kept (Compare lists it). The view moves to the
        Freeze tab only if the person is still on the Model tab: a tab they chose meanwhile stays."""
        previous, stopped = self.session, ""
        if previous is not None:
            if previous.running:
                previous.stop()
                stopped = ", its training stopped after the current batch"
            self.previous_sessions.append(previous)
        self._attach(Session(self.data, model, **self.session_settings))
        if self.tabs.selected_index == TABS.index("Model"):
            self.tabs.selected_index = TABS.index("Freeze")
        if previous is None:
            return f"Its run '{self.session.name}' is in the Freeze, Train and Errors tabs."
        return (f"A new run '{self.session.name}' is in the Freeze, Train and Errors tabs; the previous run "
                f"'{previous.name}' ({previous.epoch} epoch{'s' if previous.epoch != 1 else ''}{stopped}) is kept: "
                "compare them in the Compare tab.")

    @guarded()
    def _use_session(self, session: Session) -> None:
        """A candidate adopted in the Choose view: its session (head fitted) becomes the current one."""
        if self.session is not None and self.session is not session:
            if self.session.running:
                self.session.stop()
            self.previous_sessions.append(self.session)
        self._attach(session)

    def _attach(self, session: Session) -> None:
        self.session = session
        self.freeze_panel = FreezePanel(session)
        self.dashboard = TrainingDashboard(session, snapshot=self.snapshot)
        self.explorer = ErrorExplorer(session)
        self.distil_view = DistilCompressView(session)
        for slot, view in zip(self._slots, (self.freeze_panel, self.dashboard, self.explorer, self.distil_view)):
            replaced, slot.children = slot.children, [view]
            for old in replaced:  # the previous run's views (its session stays, in Compare)
                close_tree(old)
        self._shown()

    def _shown(self) -> None:
        """Views in hidden tabs only mark themselves stale after epochs; the selected one repaints now."""
        if self.explorer is not None:
            self.explorer.visible = self.tabs.selected_index == TABS.index("Errors")


def _placeholder(text: str) -> W.HTML:
    box = MessageBox()
    box.show(text, "info")
    return box
