"""Issue 16, driven from Python: views re-render from the session's events (code and clicks show the
same values), progress in words, Pause shown as paused, cheap repaints, the LR's auto switch and
typed value, honest numbers in the Freeze tab, offline marks in the picker, data.show(), Copy as
code, the exact head fit and the LR finder buttons. Every action through its public twin."""

from __future__ import annotations

import math

import threading
import time

import pytest

import workbench as wb
from workbench.widgets import BackbonePicker, FreezePanel, TrainingDashboard, Workbench
from workbench.widgets.common import STYLE, Painter, StaticSnapshot, fmt_params, fmt_share

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def head_session(digits):
    """Head only on cached features: many tiny batches, the fast path."""
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
    return wb.Session(digits, model, optimizer="adamw", lr=1e-3, batch_size=4, seed=0, freeze="head")


def _texts(d: TrainingDashboard) -> list[str]:
    """Every text the progress line shows from now on."""
    seen: list[str] = []
    d.status.observe(lambda c: seen.append(d.progress.text()), names="value")
    return seen


# ---- one source of truth ------------------------------------------------------------------------
def test_code_changes_show_in_every_view_through_config_change(session) -> None:
    d, p = TrainingDashboard(session), FreezePanel(session)
    session.configure(lr=0.02, optimizer="adamw", batch_size=16, weight_decay=0.01)  # from code, not the widgets
    assert d.inputs["lr"].value == pytest.approx(0.02) and d.inputs["lr"].text.value == pytest.approx(0.02)
    assert (d.inputs["optimizer"].value, d.inputs["batch_size"].value, d.inputs["weight_decay"].value) == (
        "adamw", 16, 0.01)
    assert p.rows["head"][1].value == "2.0e-02"  # the Freeze tab's LR follows the Train tab / code at once
    d.inputs["lr"].text.value = 3e-4  # the Train tab's typed LR reaches the Freeze tab too
    assert session.config.lr == pytest.approx(3e-4) and p.rows["head"][1].value == "3.0e-04"
    session.freeze(wb.last(2))
    assert p.preset.value == "last" and p.n.value == 2 and "3 of 6 blocks" in d.decisions.value
    assert [n for n, (box, _) in p.rows.items() if box.value] == session.model.block_names[-3:]


def test_the_lr_has_an_auto_switch_a_slider_and_a_typed_value(session) -> None:
    d = TrainingDashboard(session)
    lr = d.inputs["lr"]
    lr.auto.value = True
    assert session.config.lr is None and lr.slider.disabled and lr.text.disabled
    assert lr.text.value == pytest.approx(session.next_lrs()[session.model.block_names[-1]])
    assert "auto" in lr.note.value
    lr.auto.value = False
    assert session.config.lr == pytest.approx(lr.text.value)
    lr.slider.value = 1.2589254117941662e-4  # a drag lands anywhere: the setting keeps two digits
    assert session.config.lr == 1.3e-4 and lr.text.value == pytest.approx(1.3e-4)
    lr.text.value = 2e-3
    assert session.config.lr == pytest.approx(2e-3) and lr.slider.value == pytest.approx(2e-3)


def test_the_slider_snapping_its_value_back_is_not_a_move(session) -> None:
    """The front end snaps a shown value to the log slider's grid (10^(k * 0.05)) and sends it back:
    that echo must leave "auto" on and a typed LR as typed (seen in JupyterLab: auto turned off)."""
    d = TrainingDashboard(session)
    lr = d.inputs["lr"]
    lr.auto.value = True
    shown = lr.slider.value
    lr.slider.value = 10 ** (round(math.log10(shown) / 0.05) * 0.05)  # the echo
    lr.text.value = lr.text.value * 1.0000001  # a float round trip through the page
    assert session.config.lr is None and lr.auto.value and lr.slider.disabled
    lr.auto.value = False
    lr.text.value = 3e-4
    lr.slider.value = 10 ** -3.5  # the echo of 3e-4 on the grid: 3.16e-4
    assert session.config.lr == pytest.approx(3e-4) and lr.text.value == pytest.approx(3e-4)
    lr.slider.value = 10 ** -3.0  # a real move, ten grid steps away
    assert session.config.lr == pytest.approx(1e-3)


def test_each_setting_is_described_once() -> None:
    from workbench.widgets.train_settings import SETTINGS

    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names)) == 17


# ---- progress in words, pause shown as paused ------------------------------------------------------
def test_progress_says_what_happens_with_counts(head_session) -> None:
    head_session.events.batch_interval_s = 0.0
    d = TrainingDashboard(head_session)
    seen = _texts(d)
    d.step()
    d.wait(60)
    text = "\n".join(seen)
    assert "computing the backbone's features once, train split: batch 0/" in text
    assert "valid split: batch" in text and "validating: batch" in text
    assert "epoch 1: batch 1/" in text and "samples/s" in text
    final = d.progress.text()
    assert final.startswith("epoch 1 done: valid acc") and "computing the cached features (once)" in final
    assert "features cached in" in d.table.value and d.progress.bar.bar_style == "success"


def test_pause_is_shown_as_paused(digits) -> None:
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    session = wb.Session(digits, model, batch_size=2, freeze="full")
    session.events.batch_interval_s = 0.0
    d = TrainingDashboard(session)
    started = threading.Event()
    session.on("batch_end", lambda b: started.set())
    d.train(50)
    assert started.wait(60)
    d.pause()
    time.sleep(0.3)  # a batch in flight may still report: the line stays "paused"
    assert session.paused and d.progress.text().startswith("paused at batch ")
    assert d.progress.bar.bar_style == "warning" and "Resume" in d.progress.text()
    d.resume()
    d.stop()
    d.wait(60)
    assert not d.training and "stopped by user" in d.progress.text()


# ---- cheap repaints ---------------------------------------------------------------------------------
def test_a_run_repaints_once_at_its_end_and_hidden_tabs_wait(head_session) -> None:
    w = Workbench(head_session)
    w.tabs.selected_index = 2  # Train
    d, x = w.dashboard, w.explorer
    d.step()  # the cache build
    d.wait(60)
    d.painter.interval = x.painter.interval = 1e9  # a run as short as this one's would be on a quiet machine
    paints, explorer_paints = d.painter.paints, x.painter.paints
    d.train(5)
    d.wait(60)
    assert head_session.epoch == 6
    assert d.painter.paints == paints + 1  # nothing during the (short) run, once at its end
    assert x.painter.paints == explorer_paints and x.painter.dirty  # the hidden Errors tab only marked itself
    assert "<td>6</td>" in d.table.value
    w.tabs.selected_index = 3  # opening it repaints
    assert x.painter.paints == explorer_paints + 1 and "epoch 6" in x.header.value


def test_code_runs_repaint_at_their_end(head_session) -> None:
    d = TrainingDashboard(head_session)
    d.painter.interval = 1e9  # no repaint is due during the run (timing-free)
    before = d.painter.paints
    head_session.fit(3, progress=False)  # from a code cell, the dashboard displayed above
    assert d.painter.paints == before + 1 and "<td>3</td>" in d.table.value


def test_painter_budget_and_visibility() -> None:
    calls = []
    p = Painter(lambda: calls.append(time.perf_counter()), interval=0.2, budget=0.5)
    p.request()
    assert len(calls) == 1  # idle: at once
    p.hold()
    p.request()
    assert len(calls) == 1 and p.dirty  # within the interval of a run: later
    p.flush()
    assert len(calls) == 2 and not p.dirty
    p.visible = False
    p.request()
    p.flush()
    assert len(calls) == 2  # hidden: stale only
    p.visible = True
    assert len(calls) == 3


# ---- the saved notebook keeps one picture; the live one shows it once -------------------------------
def test_the_snapshot_is_hidden_under_the_live_view_by_its_style() -> None:
    assert ".jp-OutputArea-child:has(.wb-live) + .jp-OutputArea-child:has(.jp-RenderedImage) {display: none}" in STYLE
    snap = StaticSnapshot()
    snap.update(b"\x89PNG fake")
    assert snap.png == b"\x89PNG fake"


# ---- numbers a person can read ------------------------------------------------------------------------
def test_freeze_numbers_read_well(session) -> None:
    p = FreezePanel(session)
    assert "0.0%" not in p.summary.value and "1 of 6 blocks, the head only" in p.summary.value
    p.apply(wb.progressive(every=1))
    session.step()
    text = p.summary.value
    assert "2 of 6 blocks, the head and 1 below it" in text  # the next epoch's plan, counted once
    assert "full forward: 1 block below the head train" in text
    assert p.bn.layout.display == ""  # resnet18 has BatchNorm


def test_formatting_helpers() -> None:
    assert fmt_share(770, 22.7e6) == "0.0034%" and fmt_share(5, 10) == "50%" and fmt_share(0, 10) == "0%"
    assert fmt_params(109482240) == "109.5 M" and fmt_params(770) == "770" and fmt_params(12_800) == "12.8 k"


@pytest.mark.slow
def test_a_transformer_has_no_batchnorm_control() -> None:
    data = wb.Data.from_texts(["good film", "bad film", "great", "dull"] * 4, ["pos", "neg", "pos", "neg"] * 4)
    s = wb.Session(data, wb.load_backbone("minilm-l6", 2, max_length=16), batch_size=4)
    assert FreezePanel(s).bn.layout.display == "none"


# ---- the picker says what loads offline now ------------------------------------------------------------
def test_picker_marks_what_loads_now_and_disables_load_for_the_rest(digits) -> None:
    picker = BackbonePicker(digits)
    deadline = time.time() + 60
    while len(picker.available) < len(picker.names) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    labels = dict((v, k) for k, v in picker.name.options)
    assert labels["efficientnet_lite0"].endswith("✓ loads now") and labels["resnet18"].endswith("✗ needs a download")
    assert picker.name.value == "efficientnet_lite0" and not picker.load_button.disabled
    picker.name.value = "resnet18"
    assert picker.load_button.disabled and "untick" in picker.load_button.tooltip
    picker.pretrained.value = False
    assert not picker.load_button.disabled


# ---- data.show() ---------------------------------------------------------------------------------------
def test_data_show_grids_images_and_escaped_texts(digits) -> None:
    grid = digits.show(12)
    html = grid._repr_html_()
    assert html.count("<img") == 12 and sorted(set(grid.labels)) == digits.classes  # one of each class first
    assert "digits" in repr(grid)
    texts = wb.Data.from_texts([EVIL + " so", "ok", "long " * 100, "fine"] * 3, ["a<b", "b", "a<b", "b"] * 3)
    html = texts.show(4)._repr_html_()
    assert "<img src=x" not in html and "&lt;img src=x" in html and "a&lt;b" in html and "<details" in html
    with pytest.raises(wb.ConfigError, match="n must be"):
        digits.show(0)


# ---- Copy as code, Fit head exactly, Find LR -------------------------------------------------------------
def test_copy_as_code_shows_the_sessions_code(session) -> None:
    d = TrainingDashboard(session)
    session.step()
    d.code._on_msg(d.code, {"event": "copy"}, [])  # what the page sends on a click
    assert d.code.code == session.to_code() and "fit(1)" in d.code.code.replace(" ", "")
    assert d.copy_as_code() == session.to_code()  # the twin (no IPython here: no new cell)


def test_fit_head_button_fits_the_head_exactly(head_session) -> None:
    d = TrainingDashboard(head_session)
    d.fit_head_button.click()
    d.wait(120)
    r = head_session.history[-1]
    assert r.path_reason.startswith("exact head fit") and "exact head fit" in d.table.value
    head_session.freeze("full")
    d.fit_head()
    d.wait(60)
    assert "fit_head needs the head alone" in d.message.text


def test_find_lr_shows_the_curve_and_uses_its_suggestion(session) -> None:
    d = TrainingDashboard(session)
    d.find_lr(start=1e-5, end=1.0, steps=12)
    d.wait(60)
    assert d.lr_box.layout.display == "" and d.lr_plot.value[:4] == b"\x89PNG" and d.lr_suggestion
    assert "LR range test done" in d.progress.text() and session.history == []  # weights restored, no epoch
    d.use_lr_button.click()
    assert session.config.lr == d.lr_suggestion and d.inputs["lr"].value == d.lr_suggestion


def test_a_hidden_why_panel_explains_again_only_when_shown(session) -> None:
    session.step()
    x = wb.ErrorExplorer(session)
    i = int(x.analysis.top_losses(1)["id"].iloc[0])
    x.gallery.click(i, "why")
    first = x.why.explained
    x.visible = False  # e.g. the Workbench's Train tab is selected
    session.step()
    assert x.why.explained is first and x.why.painter.dirty and x.painter.dirty
    x.visible = True
    assert x.why.explained is not first and x.why.index == i and "epoch 2" in x.header.value


def test_the_decisions_line_says_when_the_head_is_preconditioned(head_session) -> None:
    d = TrainingDashboard(head_session)
    assert "preconditioned head" not in d.decisions.value  # an LR you set runs the optimizer as written
    head_session.configure(lr=None)
    assert "preconditioned head" in d.decisions.value  # the automatic LR, head only
    head_session.freeze(wb.last(1))
    assert "preconditioned head" not in d.decisions.value  # a full forward
