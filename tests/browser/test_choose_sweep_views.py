"""The Choose view (Workbench -> Model -> Choose) and the Sweep view in a real JupyterLab.

Choose: tick two candidates in its list (the <select>), press Rank, see the progress line at once,
the table and the figure when it ends, then "Use this backbone": the Freeze tab gets its session.
Sweep: press Run on a four-trial sweep, watch it progress, see the table, the figure and the
Compare tab listing the trials, then Adopt. Screenshots: test-artifacts/browser/choose_view*.png,
sweep_view*.png.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser.lab import open_notebook, run_all, screenshot, wait_until_idle

TALL = {"width": 1280, "height": 1300}
PICKED = ["efficientnet_lite0 · 48 px", "timm:mobilenetv3_small_100 · 64 px · random init"]

_IMAGE_READY_JS = """sel => {
  const img = document.querySelector(sel);
  return !!img && img.complete && img.naturalWidth > 100;
}"""


def _tab(page, scope: str, title: str):
    return page.locator(f"{scope} .lm-TabBar-tab", has_text=re.compile(rf"^{title}$")).first


def _top(page, selector: str) -> None:
    page.locator(selector).first.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)


def test_choose_view_ranks_and_adopts(page, lab):
    page.set_viewport_size(TALL)
    cells = ["import workbench as wb\n"
             'data = wb.load_data("digits").subset(train=20, valid=8, seed=0)\n'
             "w = wb.Workbench(data); w"]
    open_notebook(page, lab, lab.write_notebook("choose_view.ipynb", cells))
    run_all(page)
    wait_until_idle(page, timeout=120)
    _tab(page, ".wb-subtabs", "Choose").click()
    view = page.locator(".wb-choose")
    expect(view).to_be_visible(timeout=15_000)
    options = view.locator(".wb-choose-candidates select option")
    expect(options).to_have_count(6)
    labels = [t.replace("\xa0", " ") for t in options.all_inner_texts()]
    assert all(p in labels for p in PICKED), labels
    view.locator(".wb-choose-candidates select").select_option(
        label=[options.nth(labels.index(p)).inner_text() for p in PICKED])
    view.locator(".wb-choose-rank button, button.wb-choose-rank").first.click()
    expect(view.locator(".wb-progress-line")).to_contain_text("candidate", timeout=5_000)  # at once, not at the end
    _top(page, ".wb-workbench")
    screenshot(page, "choose_view_running")
    expect(view.locator(".wb-progress-line")).to_contain_text("ranked 2 of 2", timeout=240_000)
    rows = view.locator(".wb-choose-table tbody tr")
    expect(rows).to_have_count(2)
    accuracy = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
    assert accuracy == sorted(accuracy, reverse=True), accuracy  # best first
    best = rows.nth(0).locator("td").nth(1).inner_text().replace("\xa0", " ")
    assert best in PICKED
    page.wait_for_function(_IMAGE_READY_JS, arg=".wb-choose img.wb-choose-figure, .wb-choose .wb-choose-figure img",
                           timeout=30_000, polling=100)
    _top(page, ".wb-workbench")
    screenshot(page, "choose_view")
    view.locator(".wb-choose-adopt button, button.wb-choose-adopt").first.click()
    expect(view.locator(".wb-msg-ok")).to_contain_text(f"(choose · {best})", timeout=30_000)
    _tab(page, ".wb-tabs", "Train").click()
    expect(page.locator(".wb-dashboard")).to_be_visible(timeout=30_000)
    expect(page.locator(".wb-dashboard .wb-history")).to_contain_text("exact head fit", timeout=30_000)  # its epoch 1
    expect(page.locator(".wb-dashboard img.wb-plot, .wb-dashboard .wb-plot img").first).to_be_visible()
    _top(page, ".wb-workbench")
    screenshot(page, "choose_view_adopted")


def test_sweep_view_runs_and_adopts(page, lab):
    page.set_viewport_size(TALL)
    cells = ["import workbench as wb\n"
             'data = wb.load_data("digits").subset(train=20, valid=8, seed=0)\n'
             'model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)\n'
             "session = wb.Session(data, model, batch_size=32, seed=0)\n"
             'view = wb.SweepView(session, {"lr": (1e-3, 1.0), "optimizer": ["adamw", "sgd"]}, trials=4, epochs=3, '
             'name="class sweep")\n'
             "view",
             "w = wb.Workbench(data); w"]
    open_notebook(page, lab, lab.write_notebook("sweep_view.ipynb", cells))
    run_all(page)
    wait_until_idle(page, timeout=120)
    view = page.locator(".wb-sweep")
    expect(view).to_contain_text("press Run")
    view.locator(".wb-sweep-run button, button.wb-sweep-run").first.click()
    expect(view.locator(".wb-progress-line")).to_contain_text("trial", timeout=5_000)
    _top(page, ".wb-sweep")
    screenshot(page, "sweep_view_running")
    expect(view.locator(".wb-progress-line")).to_contain_text("4 of 4 trials run", timeout=300_000)
    expect(view.locator(".wb-sweep-table tbody tr")).to_have_count(4)
    page.wait_for_function(_IMAGE_READY_JS, arg=".wb-sweep img.wb-sweep-figure, .wb-sweep .wb-sweep-figure img",
                           timeout=30_000, polling=100)
    view.locator(".wb-sweep-adopt button, button.wb-sweep-adopt").first.click()
    expect(view.locator(".wb-msg-ok")).to_contain_text("Adopted class sweep · trial", timeout=15_000)
    _top(page, ".wb-sweep")
    screenshot(page, "sweep_view")
    # every trial is a run in the Compare tab, with its state
    _tab(page, ".wb-tabs", "Compare").click()
    runs = page.locator(".wb-compare .wb-compare-runs select option")
    expect(runs).to_have_count(5, timeout=15_000)  # the base session and four trials
    texts = [t.replace("\xa0", " ") for t in runs.all_inner_texts()]
    assert sum("class sweep · trial" in t for t in texts) == 4, texts
    assert all(re.search(r"· (complete|pruned after epoch \d)$", t) for t in texts if "trial" in t), texts
    _top(page, ".wb-workbench")
    screenshot(page, "sweep_view_compare")
