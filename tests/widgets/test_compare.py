"""CompareView: lists this kernel's runs, compares the picked ones, re-renders from their events."""

from __future__ import annotations

import gc

import pytest

import workbench as wb
from workbench.train import runs
from workbench.widgets.compare import CompareView


@pytest.fixture(autouse=True)
def close_views(monkeypatch):
    """Close every CompareView a test made: ipywidgets keeps open widgets (and what they hold) alive,
    so earlier tests' runs would otherwise still be listed."""
    made = []
    original = CompareView.__init__

    def init(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CompareView, "__init__", init)
    yield
    for view in made:
        view.close()
    gc.collect()


def make(digits, name, **settings):
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
    return wb.Session(digits, model, freeze="head", batch_size=32, seed=0, name=name, **settings)


@pytest.fixture(scope="module")
def two(digits):
    a, b = make(digits, "sgd run", optimizer="sgd", lr=0.05), make(digits, "adam run", optimizer="adamw", lr=0.05)
    a.fit(1, progress=False)
    b.fit(1, progress=False)
    return a, b


def test_lists_this_kernels_runs_and_compares_the_picked(two):
    a, b = two
    view = wb.CompareView()
    assert {"sgd run", "adam run"} <= set(view.refresh())
    assert [s.name for s in runs.runs()][-2:] == ["sgd run", "adam run"]  # oldest first
    view.pick("sgd run", "adam run")
    assert view.picked == ("sgd run", "adam run") and view.run_list.value == ("sgd run", "adam run")
    c = view.comparison
    assert list(c.settings.index) == ["optimizer"] and c.labels == ["optimizer=sgd", "optimizer=adamw"]
    assert "optimizer" in view.settings_table.value and "adamw" in view.settings_table.value
    assert all(image.value[:4] == b"\x89PNG" for image in view.curves.children) and view.confusion.value[:4] == b"\x89PNG"
    # shown at their own size (the browser test checks that), no text in them is under 11 px
    from workbench import plots
    from workbench.widgets import compare as cv

    figures = [plots.compare_curves_figure(c, panels=(p,), size=cv.CURVE_SIZE) for p in cv.CURVE_PANELS]
    figures.append(plots.compare_confusion_figure(c, size=cv.confusion_size(2)))
    assert min(plots.min_text_px(f, cv.DPI) for f in figures) >= 11
    assert "change" in view.per_class_table.value
    assert view.body.layout.display == ""


def test_clicks_in_the_list_take_the_same_path(two):
    view = wb.CompareView()
    view.run_list.value = ("sgd run", "adam run")  # what a Ctrl-click does
    assert view.picked == ("sgd run", "adam run") and view.comparison is not None
    view.run_list.value = ("sgd run",)
    assert view.comparison is None and view.body.layout.display == "none"


def test_gallery_shows_right_in_a_wrong_in_b(two):
    a, b = two
    view = wb.CompareView(pick=("sgd run", "adam run"))
    expected = view.comparison.right_wrong("sgd run", "adam run")
    view.show_samples("a_only")
    html = view.gallery.value
    assert f"{len(expected)} sample" in html and "right in sgd run, wrong in adam run" in html
    assert html.count("<figure") == min(len(expected), 50)
    for i in expected[:5]:
        assert f"#{int(i)} ·" in html
    view.show_samples("b_only")
    other = view.comparison.right_wrong("adam run", "sgd run")
    assert f"{len(other)} sample" in view.gallery.value and "right in adam run, wrong in sgd run" in view.gallery.value


def test_rerenders_when_a_picked_session_trains(two):
    a, b = two
    view = wb.CompareView(pick=("sgd run", "adam run"))
    before, epochs = view.comparison, b.epoch
    b.fit(1, progress=False)  # fit_end always re-renders
    assert view.comparison is not before and len(view.comparison.runs[1].history) == epochs + 1
    assert f"{epochs + 1} epochs" in dict((v, k) for k, v in view.run_list.options)["adam run"]
    view.pick("sgd run")  # unpicked: no longer listened to
    assert view.comparison is None
    a.fit(1, progress=False)
    assert view.comparison is None


def test_untrusted_names_are_escaped(digits):
    evil = make(digits, "<img src=x onerror=alert(1)>", optimizer="sgd", lr=0.05)
    other = make(digits, "ok", optimizer="adamw", lr=0.05)
    view = wb.CompareView(sessions=[evil, other], pick=("<img src=x onerror=alert(1)>", "ok"))
    for html in (view.settings_table.value, view.summary_table.value, view.gallery.value):
        assert "<img src=x" not in html
    assert "&lt;img src=x" in view.summary_table.value
    assert "an evaluated epoch" in view.per_class_table.value  # not trained yet: tables say so, nothing raises


def test_unknown_run_shows_a_message(two):
    view = wb.CompareView()
    view.pick("nope", "sgd run")
    assert "No run named 'nope'" in view.message.text


def test_a_run_that_is_gone_leaves_the_list(digits):
    s = make(digits, "short-lived", optimizer="sgd", lr=0.05)
    view = wb.CompareView()
    assert "short-lived" in view.refresh()
    del s
    gc.collect()
    assert "short-lived" not in view.refresh()


def test_workbench_has_a_compare_tab(two, digits):
    a, b = two
    w = wb.Workbench(a)
    titles = [w.tabs.get_title(i) for i in range(len(w.tabs.children))]
    assert "Compare" in titles and w.tabs.children[titles.index("Compare")] is w.compare
    w.tabs.selected_index = titles.index("Compare")  # opening the tab lists the runs again
    late = make(digits, "late run", optimizer="sgd", lr=0.01)  # noqa: F841 (kept alive: the registry holds runs weakly)
    w.tabs.selected_index = 0
    w.tabs.selected_index = titles.index("Compare")
    assert "late run" in w.compare.refresh()
    w.compare.pick("sgd run", "late run")
    assert w.compare.comparison.labels == ["lr=0.05", "lr=0.01"]


def test_run_and_class_names_with_mathtext_render(digits):
    """A "$" in a class or run name used to raise matplotlib's ParseException in the Compare view."""
    classes = ["$x^{$", "a$b", "_c", r"\frac{", *[f"${i}" for i in range(6)]]
    data = wb.Data.from_arrays(digits.train.images, digits.train.labels, classes,
                               valid=(digits.valid.images, digits.valid.labels))
    a, b = make(data, "$run^{$", optimizer="sgd", lr=0.05), make(data, "_other", optimizer="adamw", lr=0.05)
    a.fit(1, progress=False)
    b.fit(1, progress=False)
    view = wb.CompareView(sessions=[a, b], pick=("$run^{$", "_other"))
    view.show_samples("a_only")
    assert view.message.text == "" and all(image.value[:4] == b"\x89PNG" for image in view.curves.children)
