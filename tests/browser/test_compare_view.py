"""The Workbench's Compare tab in a real JupyterLab: pick two runs of the kernel, see them compared.

Two runs on 8x8 digits that differ in the optimizer alone, made in code; a Workbench. Open the
Compare tab, select both runs in its list (as a person does: the <select>), and check what renders:
the curves image, the settings table naming exactly the optimizer, per-class F1, and the gallery of
samples one run gets right and the other wrong. Screenshots: test-artifacts/browser/compare_view*.png.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser.lab import cell, open_notebook, run_all, screenshot, wait_until_idle

TALL = {"width": 1400, "height": 1400}

CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("digits").subset(train=30, valid=10, seed=0)\n'
    "\n"
    "def run(name, **settings):\n"
    '    model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)\n'
    '    s = wb.Session(data, model, freeze="head", batch_size=32, seed=0, name=name, **settings)\n'
    "    s.fit(4, progress=False)\n"
    "    return s\n"
    "\n"
    'a = run("sgd", optimizer="sgd", lr=0.05)\n'
    'b = run("adamw", optimizer="adamw", lr=0.05)\n'
    "c = wb.compare(a, b)\n"
    'print(f"RIGHT-IN-A-WRONG-IN-B {len(c.right_wrong(0, 1))} {len(c.right_wrong(1, 0))}")',
    # A Workbench started from the data: its Compare tab lists the runs made in code. (Started from a
    # session, its Train tab's LR slider sends back a snapped LR when the tab is hidden: reported.)
    "w = wb.Workbench(data); w",
]

_IMAGE_READY_JS = """sel => {
  const img = document.querySelector(sel);
  return !!img && img.complete && img.naturalWidth > 100;
}"""

_GALLERY_READY_JS = """n => {
  const imgs = [...document.querySelectorAll('.wb-compare .wb-gallery-box figure.wb-item img')];
  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def _tab(page, scope: str, title: str):
    return page.locator(f"{scope} .lm-TabBar-tab", has_text=re.compile(rf"^{title}$")).first


def test_compare_tab_compares_two_runs(page, lab):
    page.set_viewport_size(TALL)
    open_notebook(page, lab, lab.write_notebook("compare_view.ipynb", CELLS))
    run_all(page)
    wait_until_idle(page, timeout=180)
    out = cell(page, 0).locator(".jp-OutputArea-output").inner_text()
    a_only, b_only = map(int, re.search(r"RIGHT-IN-A-WRONG-IN-B (\d+) (\d+)", out).groups())

    _tab(page, ".wb-tabs", "Compare").click()
    view = page.locator(".wb-compare")
    expect(view).to_be_visible(timeout=15_000)
    runs = view.locator(".wb-compare-runs select")
    expect(runs.locator("option")).to_have_count(2, timeout=15_000)  # this kernel's two runs
    labels = runs.locator("option").all_inner_texts()
    assert [re.split(r"\s·\s", t)[0] for t in labels] == ["sgd", "adamw"], labels  # ipywidgets: nbsp for spaces
    runs.select_option(label=labels)  # both, as a Ctrl-click would

    page.wait_for_function(_IMAGE_READY_JS, arg=".wb-compare .wb-compare-curves img, .wb-compare img.wb-compare-curves",
                           timeout=30_000, polling=100)  # fmt: skip
    settings = view.locator(".wb-compare-settings table")
    expect(settings).to_be_visible()
    rows = settings.locator("tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows] == [["optimizer", "sgd", "adamw"]], rows
    expect(view.locator(".wb-compare-per-class")).to_contain_text("change")
    page.locator(".wb-workbench").evaluate("el => el.scrollIntoView({block: 'start'})")  # its tab bar too
    page.wait_for_timeout(300)
    screenshot(page, "compare_view")

    _tab(page, ".wb-compare", "Disagreements").click()
    box = view.locator(".wb-gallery-box")
    expect(box).to_contain_text(f"{a_only} sample", timeout=15_000)
    expect(box).to_contain_text("right in sgd, wrong in adamw")
    page.wait_for_function(_GALLERY_READY_JS, arg=min(a_only, 50), timeout=30_000, polling=50)
    view.locator(".widget-toggle-button", has_text="wrong in A, right in B").click()
    expect(box).to_contain_text("right in adamw, wrong in sgd", timeout=15_000)
    expect(box).to_contain_text(f"{b_only} sample")
    page.wait_for_function(_GALLERY_READY_JS, arg=min(b_only, 50), timeout=30_000, polling=50)
    page.locator(".wb-workbench").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    screenshot(page, "compare_view_gallery")
