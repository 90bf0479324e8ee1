"""The Workbench's "Distil & compress" tab in a real JupyterLab: distil a trained teacher into a smaller
student with the buttons, see the report and the disagreement cards, then compress and see the table.

A teacher on 8x8 digits (a tiny random-init timm ResNet, trained one epoch in code); the student is a
tiny EfficientNet at half the input size. Screenshots: test-artifacts/browser/distil_*.png,
compress_table.png.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser.lab import open_notebook, run_all, screenshot, wait_until_idle
from browser.test_compare_view import _tab
from browser.walk import clipped

TALL = {"width": 1280, "height": 1300}

CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("digits").subset(train=15, valid=10, seed=0)\n'
    'model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)\n'
    'teacher = wb.Session(data, model, freeze="full", batch_size=32, seed=0, name="teacher")\n'
    "teacher.fit(1, progress=False)",
    "w = wb.Workbench(teacher); w",
]

_GALLERY_READY_JS = """() => {
  const imgs = [...document.querySelectorAll('.wb-distil-gallery figure.wb-item img')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def test_distil_and_compress_tab(page, lab):
    page.set_viewport_size(TALL)
    open_notebook(page, lab, lab.write_notebook("distil_compress.ipynb", CELLS))
    run_all(page)
    wait_until_idle(page, timeout=180)

    _tab(page, ".wb-tabs", re.escape("Distil & compress")).click()
    view = page.locator(".wb-distil-compress")
    expect(view).to_be_visible(timeout=15_000)
    screenshot(page, "distil_form")
    student = view.locator(".wb-student-name input")
    student.fill("timm:test_efficientnet")
    student.press("Enter")
    view.locator(".widget-checkbox", has_text="pretrained weights").locator("input").uncheck()
    view.locator(".widget-button", has_text="Distil").click()
    expect(view.locator(".wb-progress-line")).to_contain_text(re.compile(r"teacher|student|distilling"), timeout=30_000)
    result = view.locator(".wb-distil-result table")
    expect(result).to_be_visible(timeout=240_000)
    rows = result.locator("tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["teacher", "student"], rows
    assert "timm:test_efficientnet distilled from teacher" in rows[1]
    expect(view.locator(".wb-progress-line")).to_contain_text("done: 3 epoch(s)")
    gallery = view.locator(".wb-distil-gallery")
    expect(gallery).to_contain_text("teacher right, student wrong")
    if "0 samples" not in gallery.inner_text():
        page.wait_for_function(_GALLERY_READY_JS, timeout=30_000, polling=50)
    view.locator(".widget-toggle-button", has_text="student right, teacher wrong").click()
    expect(gallery).to_contain_text("the cards show the teacher's predictions", timeout=15_000)
    page.locator(".wb-workbench").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    screenshot(page, "distil_report")

    _tab(page, ".wb-tabs", "Compare").click()
    runs = page.locator(".wb-compare .wb-compare-runs select option")
    expect(runs).to_have_count(2, timeout=15_000)  # the teacher and the student
    assert "distilled from teacher" in runs.all_inner_texts()[1].replace("\xa0", " ")

    _tab(page, ".wb-tabs", re.escape("Distil & compress")).click()
    _tab(page, ".wb-distil-compress", "Compress").click()
    view.locator(".widget-button", has_text="Compress").click()
    expect(view.locator(".wb-compress-status")).to_contain_text(re.compile("Compressing|agrees"), timeout=5_000)
    table = view.locator(".wb-compress-table table")
    expect(table).to_be_visible(timeout=120_000)
    assert [r.split("\t")[0] for r in table.locator("tbody tr").all_inner_texts()] == ["original (float32)",
                                                                                      "int8 (dynamic)"]
    header = table.locator("thead").inner_text()
    assert "CPU ms, 1 sample" in header and "CPU ms / 32" in header  # latency and throughput, each with its speed
    page.locator(".wb-workbench").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    assert not clipped(page), clipped(page)  # nine columns fit the tab at 1280 px
    screenshot(page, "compress_table")
