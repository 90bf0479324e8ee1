"""CompareView: the runs of this kernel side by side (wb.compare rendered).

Every Session registers itself in this kernel's runs (workbench.train.runs); the view lists them,
and `picked` (a trait: code and clicks take the same path) holds the two or more being compared.
It re-renders from the picked sessions' events (an epoch ended, a fit ended), never by polling:
curves named by what differs, the settings that differ, the last epoch of each run, per-class F1
with the change, confusion matrices side by side, and the samples one run gets right and the other
wrong, as the same cards as the explorer's gallery.
"""

from __future__ import annotations

import threading
import time
import weakref

import ipywidgets as W
import traitlets

from ..analysis.compare import Comparison, Run, compare, unique_names
from ..plots import compare_confusion_figure, compare_curves_figure, png
from ..train import runs as kernel_runs
from .common import STYLE, BusyLine, MessageBox, esc, guarded, table_html
from .gallery import ThumbnailCache, gallery_html

RENDER_EVERY_S = 2.0  # during training, at most one re-render per this many seconds (always at fit end)
# The figures are shown at their own pixel size (never scaled down where they fit), rendered at DPI
# so their smallest text (8 pt ticks and annotations) is >= 11 px; one image per curve panel (350 px
# wide), so narrow notebooks wrap panels instead of shrinking them.
DPI = 100
CURVE_PANELS = ("loss", "accuracy", "f1")
CURVE_SIZE = (3.5, 2.7)  # inches: 350 x 270 px at DPI


def confusion_size(runs: int) -> float:
    """Inches per confusion matrix: two runs make a 740 px wide figure, more runs share that width."""
    return min(3.4, 7.4 / runs)
DIRECTIONS = (("right in A, wrong in B", "a_only"), ("wrong in A, right in B", "b_only"))


class CompareView(W.VBox):
    """Compare runs of this kernel: `CompareView()` lists them; `pick("run 1", "run 2")` compares."""

    picked = traitlets.Tuple()  # names of the picked runs, in the order they are compared

    def __init__(self, sessions=None, pick=()) -> None:
        super().__init__()
        # weak references: listing a run must not keep it alive (the picked ones are held by `comparison`)
        self._given = None if sessions is None else [weakref.ref(s) for s in sessions]  # else: this kernel's runs
        self._refs: dict[str, weakref.ref] = {}
        self._subscribed: list[weakref.ref] = []
        self._thumbs: dict[int, ThumbnailCache] = {}
        self._lock = threading.RLock()
        self._last_render = 0.0
        self._quiet = False
        self.comparison: Comparison | None = None
        self.message = MessageBox()
        self.run_list = W.SelectMultiple(rows=5, description="runs",
                                         layout=W.Layout(width="auto", flex="0 1 420px", min_width="0"))
        self.run_list.add_class("wb-compare-runs")
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="list this kernel's runs again",
                                       layout=W.Layout(width="auto"))
        self.hint = W.HTML(layout=W.Layout(flex="1 1 220px", min_width="0"))
        self.hint.add_class("wb-compare-hint")
        self.busy = BusyLine()
        self.curves = W.HBox([W.Image(format="png", layout=W.Layout(width="auto", max_width="100%"))
                              for _ in CURVE_PANELS], layout=W.Layout(width="auto"))
        self.curves.add_class("wb-wrap-row")
        for image in self.curves.children:
            image.add_class("wb-compare-curves")
        self.settings_table = W.HTML(layout=W.Layout(flex="1 1 260px", min_width="0"))
        self.settings_table.add_class("wb-compare-settings")
        self.summary_table = W.HTML(layout=W.Layout(flex="1 1 360px", min_width="0"))
        self.per_class_table = W.HTML()
        self.per_class_table.add_class("wb-compare-per-class")
        self.confusion = W.Image(format="png", layout=W.Layout(width="auto", max_width="100%"))
        self.confusion.add_class("wb-compare-confusion")
        self.a_pick, self.b_pick = (W.Dropdown(description=ab, style={"description_width": "initial"},
                                               layout=W.Layout(width="auto", flex="0 1 320px", min_width="0"))
                                    for ab in "AB")
        self.direction = W.ToggleButtons(options=DIRECTIONS, value="a_only", style={"button_width": "auto"},
                                         layout=W.Layout(width="auto"))
        self.gallery = W.HTML()
        self.gallery.add_class("wb-gallery-box")
        choose = W.HBox([self.a_pick, self.b_pick, self.direction], layout=W.Layout(width="auto"))
        choose.add_class("wb-wrap-row")
        self.details = W.Tab(children=[
            self.per_class_table, self.confusion,
            W.VBox([choose, self.gallery], layout=W.Layout(overflow="visible")),
        ], layout=W.Layout(width="auto"))  # fmt: skip
        for i, title in enumerate(("Per-class F1", "Confusion", "Disagreements")):
            self.details.set_title(i, title)
        self.details.add_class("wb-subtabs")
        tables = W.HBox([self.settings_table, self.summary_table], layout=W.Layout(width="auto"))
        tables.add_class("wb-wrap-row")
        self.body = W.VBox([self.curves, tables, self.details], layout=W.Layout(overflow="visible"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self._quiet_list = False
        self.run_list.observe(lambda change: None if self._quiet_list else self.pick(*change["new"]), names="value")
        self.a_pick.observe(lambda _: self._render_samples(), names="value")
        self.b_pick.observe(lambda _: self._render_samples(), names="value")
        self.direction.observe(lambda _: self._render_samples(), names="value")
        self.observe(lambda _: self.render(), names="picked")
        top = W.HBox([self.run_list, self.refresh_button, self.hint], layout=W.Layout(width="auto"))
        top.add_class("wb-wrap-row")
        self.children = [W.HTML(STYLE), top, self.busy, self.message, self.body]
        self.add_class("wb-compare")
        self.add_class("wb-view")
        self.refresh()
        if pick:
            self.pick(*pick)
        else:
            self.render()

    # ---- public twins -------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """List the runs again (this kernel's live sessions, oldest first); returns their names."""
        sessions = [r() for r in self._given] if self._given is not None else kernel_runs.runs()
        sessions = [s for s in sessions if s is not None]
        names = unique_names([getattr(s, "name", "run") for s in sessions])
        self._refs = {n: weakref.ref(s) for n, s in zip(names, sessions)}
        kept = tuple(n for n in self.picked if n in self._refs)
        self._quiet_list = True  # new options, the same picks: no re-render from the list's observer
        try:
            self.run_list.options = self._options()
            self.run_list.value = kept
        finally:
            self._quiet_list = False
        if kept != self.picked:
            self.picked = kept
        self._say_what_to_do()
        return names

    @guarded()
    def pick(self, *names: str) -> None:
        """Compare these runs (by name, as listed), in this order."""
        unknown = [n for n in names if self._session(n) is None]
        if unknown:
            self.refresh()
            unknown = [n for n in names if self._session(n) is None]
        if unknown:
            from ..errors import ConfigError

            raise ConfigError(f"No run named {unknown[0]!r} in this kernel; runs: {', '.join(self._refs) or 'none'}.")
        if tuple(self.run_list.value) != tuple(names):
            self.run_list.value = tuple(names)  # its observer calls pick again with the same names
        self.picked = tuple(names)

    def show_samples(self, direction: str = "a_only", a: str | None = None, b: str | None = None) -> None:
        """The samples A gets right and B wrong ("a_only"), or the other way round ("b_only")."""
        self._quiet = True
        try:
            if a is not None:
                self.a_pick.value = a
            if b is not None:
                self.b_pick.value = b
            self.direction.value = direction
        finally:
            self._quiet = False
        self._render_samples()

    # ---- rendering ---------------------------------------------------------------------------------
    @guarded()
    def render(self) -> None:
        """Build the comparison of the picked runs from their current state and draw it."""
        with self._lock:
            self._subscribe()
            self.message.clear()
            sessions = [self._session(n) for n in self.picked]
            self._say_what_to_do()
            if len(self.picked) < 2 or None in sessions:
                self.comparison = None
                self.body.layout.display = "none"
                return
            with self.busy.working(f"comparing {len(sessions)} runs: curves, settings, per-class scores and "
                                   "confusion matrices"):
                self._draw([Run.from_session(s, name=n) for s, n in zip(sessions, self.picked)])

    def _draw(self, runs: list[Run]) -> None:
        """Compare `runs` and draw every part: curves, tables, confusion matrices, the pickers."""
        c = compare(runs)
        self.comparison = c
        self._last_render = time.monotonic()
        for image, panel in zip(self.curves.children, CURVE_PANELS):
            image.value = png(compare_curves_figure(c, panels=(panel,), size=CURVE_SIZE), dpi=DPI)
        self._render_tables(c)
        evaluated = all(a is not None for a in c.analyses)
        if evaluated:
            self.confusion.value = png(compare_confusion_figure(c, size=confusion_size(len(c.runs))), dpi=DPI)
        options = [(f"{n} ({lab})" if lab != n else n, n) for n, lab in zip(c.names, c.labels)]
        a, b = self.a_pick.value, self.b_pick.value
        self._quiet = True  # one gallery render below, not one per assignment
        try:
            self.a_pick.options, self.b_pick.options = options, options
            self.a_pick.value = a if a in c.names else c.names[0]
            self.b_pick.value = b if b in c.names and b != self.a_pick.value else c.names[1]
        finally:
            self._quiet = False
        self.body.layout.display = ""
        self._render_samples()

    def _say_what_to_do(self) -> None:
        """The line above the list, from what is listed and picked now (never a stale count)."""
        listed, picked = len(self.run_list.options), len(self.picked)
        if listed < 2:
            words = (f"This kernel has {listed} run{'s' if listed != 1 else ''}: train another one (e.g. a new "
                     "wb.Session with other settings, or another backbone in the Model tab), then press Refresh.")
        elif picked < 2:
            words = (f"{listed} runs in this kernel: pick two or more (Ctrl/Shift-click) to compare them. Runs "
                     "are named by the settings that differ.")
        else:
            words = f"Comparing {picked} of the {listed} runs in this kernel (Ctrl/Shift-click to change)."
        self.hint.value = f'<span class="wb-muted">{esc(words)}</span>'

    def _render_tables(self, c: Comparison) -> None:
        rows = [[k, *c.settings.loc[k].tolist()] for k in c.settings.index]
        self.settings_table.value = ("<b>Settings that differ</b>" + table_html(["setting", *c.names], rows)
                                     if rows else '<span class="wb-muted">The runs share every setting.</span>')
        s = c.summary()
        fmt = lambda v: "-" if v is None or v != v else f"{v:.3f}"  # noqa: E731
        summary = [[n, lab if lab != n else "", int(r.epochs), fmt(r.valid_loss), fmt(r.valid_accuracy),
                    fmt(r.valid_macro_f1), f"{r.seconds:.1f}"] for (n, r), lab in zip(s.iterrows(), c.labels)]
        self.summary_table.value = "<b>Last epoch</b>" + table_html(
            ["run", "what differs", "epochs", "valid loss", "accuracy", "macro-F1", "seconds"], summary, wrap=(1,),
            optional=(2, 3, 6))
        if not all(a is not None for a in c.analyses):
            self.per_class_table.value = '<span class="wb-muted">Per-class scores need an evaluated epoch in every run.</span>'
            return
        table = c.per_class("f1")
        rows = [[cls, *(f"{v:.3f}" if not k.startswith("change") else f"{v:+.3f}" for k, v in row.items())]
                for cls, row in table.iterrows()]
        self.per_class_table.value = "<b>F1 per class (valid)</b>" + table_html(["class", *table.columns], rows)

    @guarded()
    def _render_samples(self) -> None:
        c = self.comparison
        if self._quiet or c is None or not self.a_pick.value or not self.b_pick.value:
            return
        if any(x is None for x in c.analyses):
            self.gallery.value = '<span class="wb-muted">Every run needs an evaluated epoch first.</span>'
            return
        a, b = self.a_pick.value, self.b_pick.value
        right, wrong = (a, b) if self.direction.value == "a_only" else (b, a)
        ids = c.right_wrong(right, wrong)
        data = c.data(wrong)
        thumbs = None
        if data.kind == "image":
            thumbs = self._thumbs.setdefault(id(data), ThumbnailCache(data))
        title = f"right in {right}, wrong in {wrong} (the cards show {wrong}'s predictions)"
        self.gallery.value = gallery_html(c.analysis(wrong), data, ids, thumbs, title)

    # ---- events ---------------------------------------------------------------------------------
    def _session(self, name: str):
        ref = self._refs.get(name)
        return None if ref is None else ref()

    def _options(self) -> list[tuple[str, str]]:
        listed = [(n, self._session(n)) for n in self._refs]
        marks = {n: kernel_runs.status(s) for n, s in listed if s is not None}  # a sweep's "pruned after epoch 2"
        return [(f"{n} · {s.model.name} · {s.epoch} epoch{'s' if s.epoch != 1 else ''}" + (f" · {marks[n]}" if marks[n] else ""), n)
                for n, s in listed if s is not None]

    def _subscribe(self) -> None:
        """Listen to the picked sessions only (an epoch or a fit ended: draw again)."""
        self._unsubscribe()
        for name in self.picked:
            session = self._session(name)
            if session is not None:
                for event in ("epoch_end", "fit_end"):
                    session.on(event, self._on_event)
                self._subscribed.append(weakref.ref(session))

    def _unsubscribe(self) -> None:
        for ref in self._subscribed:
            session = ref()
            for event in ("epoch_end", "fit_end"):
                if session is not None:
                    session.off(event, self._on_event)
        self._subscribed = []

    def close(self) -> None:
        """Stop listening to the runs and let them go, then close the widget."""
        self._unsubscribe()
        self.comparison = None
        super().close()

    def _on_event(self, event) -> None:
        """From the training thread: draw again at most every RENDER_EVERY_S, and always at a fit's end."""
        if type(event).__name__ == "FitEnd" or time.monotonic() - self._last_render >= RENDER_EVERY_S:
            self._refresh_labels()
            self.render()

    def _refresh_labels(self) -> None:
        labels = self._options()
        if labels != list(self.run_list.options):
            value = self.run_list.value
            self._quiet_list = True
            try:
                self.run_list.options = labels
                self.run_list.value = value
            finally:
                self._quiet_list = False

