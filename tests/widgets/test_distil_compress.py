"""DistilCompressView driven from Python: Distil builds and trains a student in a thread and shows it
against the teacher with its disagreements; Compress adds measured rows; bad input shows in place."""

from __future__ import annotations

import html
import re
import time

import pytest

import workbench as wb
from workbench.train import runs


def text(widget) -> str:
    return html.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", widget.value, flags=re.S))


@pytest.fixture(scope="module")
def teacher():
    data = wb.load_data("digits").subset(train=12, valid=8, seed=0)
    model = wb.load_backbone("timm:test_resnet", data.num_classes, pretrained=False, image_size=16)
    s = wb.Session(data, model, freeze="full", batch_size=32, seed=0, name="the teacher")
    s.fit(1, progress=False)
    return s


def test_distil_button_trains_a_student_and_shows_it(teacher) -> None:
    view = wb.DistilCompressView(teacher)
    assert view.student_name.value == "timm:test_resnet" and view.student_size.value == 8  # half the input size
    view.student_name.value = "timm:test_efficientnet"
    view.pretrained.value = False
    view.epochs.value, view.temperature.value, view.alpha.value = 2, 3.0, 0.5
    view.distil_button.click()
    assert view.run is not None and view.distil_button.disabled  # at once, before the thread ends
    view.worker.join(300)
    run = view.run
    assert not view.worker.is_alive() and not view.distil_button.disabled and view.stop_button.disabled
    assert view.message.text == ""
    assert run.student.epoch == 2 and (run.temperature, run.alpha) == (3.0, 0.5)
    assert run.student.model.preprocess.size == 8 and run.student in runs.runs()
    shown = text(view.result)
    assert f"{run.student_accuracy:.3f}" in shown and f"{run.agreement:.3f}" in shown and "the teacher" in shown
    assert "done: 2 epoch(s)" in view.progress.text()
    for kind in ("teacher_right", "student_right", "both_wrong"):
        view.show_disagreements(kind)
        n = len(run.disagreements(kind))
        assert view.which.value == kind
        assert f": {n} sample" in text(view.gallery)
        assert view.gallery.value.count('class="wb-item') == min(n, 30)  # the first 30 shown
    assert view.disagreement_box.layout.display == ""


def test_a_bad_student_shows_in_place_and_changes_nothing(teacher) -> None:
    view = wb.DistilCompressView(teacher)
    before = len(teacher.history)
    view.student_name.value = "resnet-18"
    view.distil_button.click()
    assert "Unknown backbone 'resnet-18'" in view.message.text
    assert view.run is None and not view.distil_button.disabled and len(teacher.history) == before
    view.student_name.value = "   "
    view.distil()
    assert "Name a student backbone" in view.message.text


def test_stop_keeps_the_students_steps(teacher) -> None:
    view = wb.DistilCompressView(teacher)
    view.student_name.value, view.pretrained.value, view.epochs.value = "timm:test_efficientnet", False, 3
    view.distil_button.click()
    deadline = time.monotonic() + 120
    while not view.run.student.running and view.worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    view.stop_button.click()
    view.worker.join(300)
    student = view.run.student
    assert student.epoch < 3 and not teacher.running and not student.running
    assert student.recording[-1]["op"] == "distil" and student.recording[-1]["stop_at"][0] <= 3
    assert view.progress.text().startswith(("stopped before", "done"))


def test_compress_rows(teacher) -> None:
    view = wb.DistilCompressView(teacher)
    assert view.amount.disabled
    view.compress(background=False)
    view.method.value = "prune"
    assert not view.amount.disabled
    view.amount.value = 0.3
    view.compress_button.click()
    view.worker.join(300)
    assert [c.method for c in view.compressions] == ["int8", "prune"]
    table = text(view.compress_table)
    assert "original (float32)" in table and "int8 (dynamic)" in table and "pruned 30%" in table
    assert "CPU ms, 1 sample" in table and f"{view.compressions[0].report.speedup_one:.2f}x" in table
    assert f"{view.compressions[1].report.compressed_accuracy:.3f}" in table
    assert "agrees on" in text(view.compress_status) and not view.compress_button.disabled


def test_workbench_has_the_tab(teacher) -> None:
    bench = wb.Workbench(teacher)
    assert bench.tabs.get_title(5) == "Distil & compress" and bench.tabs.children[5].children == (bench.distil_view,)
    assert bench.distil_view.session is teacher
