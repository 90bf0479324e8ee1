"""Issue 24, from Python: every slow action says at once what it is doing (a spinner and words
before the work, a bar from the session's progress events), captions change with their content,
and loading another backbone keeps the previous run and the tab the person is on."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.widgets import TrainingDashboard, Workbench
from workbench.widgets.common import BusyLine, readable_on
from workbench.widgets.compare import CompareView


class Timeline:
    """What each watched widget showed, in the order it showed it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def watch(self, name: str, widget, text=lambda w: w.value) -> None:
        widget.observe(lambda _: self.events.append((name, text(widget))), names="value")

    def first(self, name: str, needle: str = "") -> int:
        return next(i for i, (n, v) in enumerate(self.events) if n == name and needle in v)

    def texts(self, name: str) -> list[str]:
        return [v for n, v in self.events if n == name]


def _busy(timeline: Timeline, busy: BusyLine, name: str = "busy") -> None:
    timeline.watch(name, busy.label, lambda _: busy.text() + (" [spin]" if busy.spinning else ""))


@pytest.fixture
def head_session(digits):
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
    return wb.Session(digits, model, optimizer="adamw", lr=1e-3, batch_size=8, seed=0, freeze="head")


def test_busy_line_says_what_at_once_then_follows_the_sessions_progress(head_session) -> None:
    head_session.events.batch_interval_s = 0.0
    busy = BusyLine(head_session)
    t = Timeline()
    _busy(t, busy)
    assert not busy.busy and busy.layout.display == "none"
    with busy.working("computing the features"):
        assert busy.busy and busy.spinning and busy.text() == "computing the features…"
        assert busy.bar.layout.display == "none"  # no count yet: a spinner, not a bar standing still
        head_session.features("train")
        assert busy.bar.layout.display == "" and busy.bar.value == busy.bar.max > 1
    assert not busy.busy and not busy.spinning
    shown = t.texts("busy")
    assert shown[0] == "computing the features… [spin]"
    assert any("computing the features · computing the backbone's features once, train split: batch 0/" in s
               for s in shown)


def test_the_first_why_says_what_it_computes_before_the_title_changes(head_session) -> None:
    head_session.events.batch_interval_s = 0.0
    head_session.step(progress=False)
    head_session.cache.invalidate()  # as after an epoch that trained the body: the train features are computed
    wb.clear_feature_cache()
    x = wb.ErrorExplorer(head_session)
    t = Timeline()
    _busy(t, x.why.busy)
    t.watch("title", x.why.title)
    x.gallery.click(3, "why")
    assert t.first("busy", "Why #3: Grad-CAM") < t.first("busy", "nearest training samples") < t.first("title", "Why #3")
    assert any("train split: batch" in s for s in t.texts("busy"))  # the feature cache's own count
    assert not x.why.busy.busy and "Why #3" in x.why.title.value


def test_the_map_says_it_is_drawing_and_its_caption_changes_with_the_map(head_session) -> None:
    head_session.step(progress=False)
    x = wb.ErrorExplorer(head_session)
    m = x.data_map
    m.draw("pca")
    assert "PCA" in m.info.value
    t = Timeline()
    _busy(t, m.busy)
    t.watch("caption", m.info)
    m.method.value = "tsne"
    m.draw_button.click()
    drawing = t.first("busy", f"drawing the t-SNE map of the {len(head_session.data.valid)} validation samples")
    assert drawing < t.first("caption", "t-SNE") and "PCA" not in m.info.value
    assert all("t-SNE" in c for c in t.texts("caption"))  # never a caption naming a map not drawn
    assert not m.busy.busy and m.embedding.method == "tsne"


def test_fit_head_says_at_once_and_counts_its_solves(head_session) -> None:
    head_session.events.batch_interval_s = 0.0
    d = TrainingDashboard(head_session)
    shown: list[str] = []
    d.status.observe(lambda _: shown.append(d.progress.text()), names="value")
    d.fit_head_button.click()
    d.wait(120)
    assert shown[0].startswith("fitting the head exactly: logistic regression on the cached features")
    assert d.progress.spinning is False
    solves = [s for s in shown if "fitting the head exactly (logistic regression by L-BFGS): solve" in s]
    assert solves and solves[-1].endswith("solve 13/13")  # 3 folds x 4 values of C, then the final fit
    assert shown[-1].startswith("epoch 1 done")


def test_label_issues_and_compare_say_what_they_compute(head_session, digits) -> None:
    head_session.step(progress=False)
    x = wb.ErrorExplorer(head_session)
    t = Timeline()
    _busy(t, x.issues.busy)
    t.watch("summary", x.issues.summary)
    x.issues.rank_button.click()
    assert t.first("busy", "ranking the valid labels with cleanlab") < t.first("summary", "likely label issues")
    other = wb.Session(digits, wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16),
                       batch_size=8, seed=0, name="other run")
    other.step(progress=False)
    view = CompareView(sessions=[head_session, other])
    _busy(t, view.busy, "compare")
    view.pick(head_session.name, "other run")
    assert t.first("compare", "comparing 2 runs") >= 0 and not view.busy.busy
    assert "Comparing 2 of the 2 runs" in view.hint.value
    view.close()


def test_the_compare_line_counts_what_it_lists(digits) -> None:
    """It said "This kernel has 0 run(s)" while listing runs: the line follows the list."""
    empty = CompareView(sessions=[])
    assert "This kernel has 0 runs" in empty.hint.value
    s = wb.Session(digits, wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16), seed=0)
    one = CompareView(sessions=[s])
    assert "This kernel has 1 run:" in one.hint.value and len(one.run_list.options) == 1
    empty.close(), one.close()


def test_cell_text_is_black_or_white_whichever_reads() -> None:
    assert readable_on("#ffffff") == "black" and readable_on("#08306b") == "white"
    assert readable_on("#6baed6") == "black"  # a mid blue: black reads better than white (it did not)


def test_loading_another_backbone_keeps_the_run_and_the_tab(digits) -> None:
    w = Workbench(digits, batch_size=32)
    w.picker.pretrained.value = False
    w.picker.name.value = "resnet18"
    w.picker.size.value = 16
    said: list[str] = []
    w.picker.progress.label.observe(lambda _: said.append(w.picker.progress.text()), names="value")
    w.picker.load()
    assert said and said[0].startswith("loading resnet18: building the model and with random weights")
    w.picker.wait(120)
    assert w.tabs.selected_index == 1  # still on the Model tab when it loaded: on to Freeze
    first = w.session
    first.step(progress=False)
    w.tabs.selected_index = 3  # the person looks at the Errors tab while the next one loads
    w.picker.load()
    w.picker.wait(120)
    assert w.session is not first and first in w.previous_sessions
    assert w.tabs.selected_index == 3  # never moved
    text = w.picker.message.text
    assert f"the previous run '{first.name}' (1 epoch) is kept" in text and "Compare tab" in text
    w.tabs.selected_index = 4
    assert first.name in [v for _, v in w.compare.run_list.options]


def test_a_replaced_run_leaves_no_widget_models_behind(digits) -> None:
    """A reloaded page fetches every open widget model before it can draw: the previous run's views
    are closed when another backbone loads (its session stays, for Compare)."""
    from ipywidgets.widgets.widget import _instances as open_models

    w = Workbench(digits, batch_size=32)
    w.picker.pretrained.value = False
    w.picker.name.value = "resnet18"
    w.picker.size.value = 16
    w.picker.load()
    w.picker.wait(120)
    old_views = (w.freeze_panel, w.dashboard, w.explorer)
    open_before = len(open_models)
    w.picker.load()
    w.picker.wait(120)
    assert all(v.comm is None for v in old_views) and old_views[2].matrix.comm is None
    assert abs(len(open_models) - open_before) < 0.05 * open_before  # the new run's views, not twice as many
    assert w.explorer.comm is not None and w.previous_sessions[-1].name in w.compare.refresh()
