"""FreezePanel, BackbonePicker and Workbench driven from Python."""

from __future__ import annotations

import time

import pytest

import workbench as wb
from workbench.widgets import BackbonePicker, FreezePanel, Workbench
from workbench.widgets.common import MessageBox


def test_presets_change_what_trains(session) -> None:
    p = FreezePanel(session)
    names = session.model.block_names
    p.preset.value = "full"
    assert session.trainable == names
    p.preset.value = "last"
    p.n.value = 2
    assert session.trainable == names[-3:]
    p.preset.value = "head"
    assert session.trainable == ["head"] and "cached features" in p.summary.value
    p.preset.value = "progressive"
    p.every.value = 2
    assert session.freeze_spec == wb.progressive(every=2)


def test_a_block_checkbox_makes_an_explicit_plan(session) -> None:
    p = FreezePanel(session)
    p.set_trainable("layer4", True)
    assert p.preset.value == "custom" and session.trainable == ["layer4", "head"]
    assert p.rows["layer4"][1].value != "frozen" and p.rows["layer3"][1].value == "frozen"
    assert "full forward" in p.summary.value


def test_bn_policy_and_lr_decay_controls(session) -> None:
    p = FreezePanel(session)
    p.apply(wb.last(2))
    p.decay.value = 0.5
    assert session.config.lr_decay == 0.5
    head_lr, below = float(p.rows["head"][1].value), float(p.rows["layer4"][1].value)
    assert below == pytest.approx(head_lr * 0.5, rel=1e-2)
    p.bn.value = "train"
    assert session.config.bn_policy == "train"


def test_progressive_plan_updates_the_rows_after_each_epoch(session) -> None:
    p = FreezePanel(session)
    p.apply(wb.progressive(every=1))
    assert [n for n, (box, _) in p.rows.items() if box.value] == ["head"]
    session.step()
    assert [n for n, (box, _) in p.rows.items() if box.value] == ["layer4", "head"]


def test_picker_loads_the_bundled_backbone_and_tells_subscribers(digits) -> None:
    picker = BackbonePicker(digits)
    assert picker.name.value == "efficientnet_lite0" and picker.size.value == 64
    loaded = []
    picker.on_load(loaded.append)
    picker.load_button.click()
    picker.wait(120)
    assert picker.model is not None and loaded == [picker.model]
    assert picker.model.num_classes == 10 and "Loaded efficientnet_lite0" in picker.message.text
    deadline = time.time() + 30
    while "available now" not in picker.card.value and time.time() < deadline:
        time.sleep(0.1)
    assert "available now" in picker.card.value and "parameters without the head" in picker.card.value


def test_picker_shows_an_offline_error_with_the_alternatives(digits) -> None:
    picker = BackbonePicker(digits)
    picker.name.value = "resnet18"
    picker.load()
    picker.wait(120)
    assert picker.model is None
    text = picker.message.text
    assert "resnet18" in text and "unreachable" in text and "pretrained=False" in text and "efficientnet_lite0" in text
    picker.pretrained.value = False
    picker.load()
    picker.wait(120)
    assert picker.model is not None and "random" in picker.model.weights


def test_workbench_from_data_starts_a_session_when_a_backbone_loads(digits) -> None:
    w = Workbench(digits, batch_size=32)
    assert w.session is None and w.tabs.titles == ("Model", "Freeze", "Train", "Errors", "Compare", "Distil & compress")
    w.picker.pretrained.value = False
    w.picker.name.value = "resnet18"
    w.picker.size.value = 32
    w.picker.load()
    w.picker.wait(120)
    assert w.session is not None and w.session.config.batch_size == 32
    assert w.tabs.children[1].children == (w.freeze_panel,) and w.tabs.children[2].children == (w.dashboard,)
    assert w.tabs.selected_index == 1


def test_workbench_from_a_session(session) -> None:
    w = Workbench(session)
    assert w.session is session and w.tabs.selected_index == 2
    assert [w.tabs.get_title(i) for i in range(4)] == ["Model", "Freeze", "Train", "Errors"]


def test_messages_escape_untrusted_text() -> None:
    box = MessageBox()
    box.show("class <img src=x onerror=alert(1)> failed")
    assert "<img" not in box.value and "&lt;img src=x onerror=alert(1)&gt;" in box.value
