"""Training dynamics in a real JupyterLab: the epoch scrubber, the data map of the train split, card
actions into the verify queue, the combined train ranking, and a pinned sample's Grad-CAM.

Digits with 10% planted wrong labels and a briefly trained resnet18: scrub the slider back with the
keyboard (the matrix and header show that epoch; the page's time from key to redrawn matrix is
printed, not asserted), lasso the low-confidence corner of the data map, flag and relabel from its
cards, see the Verify tab, rank the train split, pin a sample. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

from playwright.sync_api import expect

from browser.lab import open_notebook, run_all, screenshot, wait_until_idle

CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("digits").subset(train=30, valid=12, seed=0).with_label_noise(0.1, seed=0)\n'
    'model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=32)\n'
    "s = wb.Session(data, model, batch_size=32, seed=0)\n"
    "s.fit(4, progress=False);",
    "x = wb.ErrorExplorer(s); x",
]

# Time from a key press on the slider to the explorer's header naming another epoch (page clock).
WATCH_HEADER = """() => {
  window.__scrub = {start: 0, end: 0};
  const header = document.querySelector('.wb-explorer .wb-card');
  const before = header.textContent;
  new MutationObserver((_, obs) => {
    const now = document.querySelector('.wb-explorer .wb-card');
    if (now && now.textContent !== before && !window.__scrub.end) { window.__scrub.end = performance.now(); obs.disconnect(); }
  }).observe(document.querySelector('.wb-explorer'), {subtree: true, childList: true, characterData: true});
}"""


def _scroll(locator) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(250)


def _tab(page, title: str) -> None:
    page.locator(".wb-explain-tabs .lm-TabBar-tab", has_text=title).first.click()


def test_scrub_map_lasso_verify_and_pin(page, lab):
    open_notebook(page, lab, lab.write_notebook("dynamics.ipynb", CELLS))
    run_all(page)
    wait_until_idle(page, timeout=240)
    explorer = page.locator(".wb-explorer")
    scrubber = explorer.locator(".wb-scrubber")
    expect(scrubber).to_contain_text("showing epoch 4 (the latest); 4 epochs kept", timeout=30_000)
    _scroll(explorer)
    screenshot(page, "dynamics_scrubber_latest")

    # scrub back two epochs with the keyboard: the matrix and the header follow
    page.evaluate(WATCH_HEADER)
    handle = scrubber.locator(".noUi-handle").first
    handle.focus()
    page.evaluate("() => { window.__scrub.start = performance.now(); }")
    page.keyboard.press("ArrowLeft")
    expect(explorer.locator(".wb-card").first).to_contain_text("epoch 3", timeout=15_000)
    latency = page.evaluate("() => window.__scrub.end - window.__scrub.start")
    print(f"scrub: key press to redrawn header {latency:.0f} ms (page clock)")
    page.keyboard.press("ArrowLeft")
    expect(explorer.locator(".wb-card").first).to_contain_text("epoch 2", timeout=15_000)
    expect(scrubber).to_contain_text("showing epoch 2 (an earlier epoch")
    cell = page.evaluate("""() => [...document.querySelectorAll('.wb-matrix button')]
        .map(b => [[...b.classList].find(c => c.startsWith('cm-cell-')), +b.textContent.trim()])
        .filter(([c, n]) => c && n > 0 && c.split('-')[2] !== c.split('-')[3]).sort((a, b) => b[1] - a[1])[0][0]""")
    page.locator(f".wb-matrix button.{cell}").click()
    gallery = explorer.locator(".wb-gallery-box")
    expect(gallery).to_contain_text("predicted as", timeout=15_000)
    page.wait_for_function("() => [...document.querySelectorAll('.wb-gallery-box img')].every(i => i.complete && i.naturalWidth > 0)")
    _scroll(explorer)
    screenshot(page, "dynamics_scrubber_epoch2_cell")

    # the data map of the train split: drawn when its view opens
    _tab(page, "Map")
    page.locator(".wb-map-view button", has_text="training dynamics").click()
    canvas = page.locator(".wb-dynamics-canvas")
    expect(canvas).to_have_attribute("data-drawn", "300", timeout=30_000)
    _scroll(page.locator(".wb-dynamics-map"))
    screenshot(page, "dynamics_map_drawn")

    # lasso the bottom of the map (low confidence): the train cards fill its gallery
    box = canvas.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + box["height"] * 0.6)
    page.mouse.down()
    for fx, fy in ((0.99, 0.6), (0.99, 0.99), (0.01, 0.99), (0.01, 0.62)):
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=5)
    page.mouse.up()
    cards = page.locator(".wb-dynamics-gallery")
    expect(cards).to_contain_text("map selection (", timeout=15_000)
    first = cards.locator("figure[data-id]").first
    expect(first).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('.wb-dynamics-gallery img')].every(i => i.complete && i.naturalWidth > 0)")
    _scroll(cards)
    screenshot(page, "dynamics_map_lasso_cards")

    # card actions: flag one, relabel another; the Verify tab shows both
    flagged_id = first.get_attribute("data-id")
    first.locator("button[data-action='flag']").click()
    expect(page.locator(".wb-dynamics-map .wb-msg-ok")).to_contain_text(f"train #{flagged_id} flagged", timeout=15_000)
    second = cards.locator("figure[data-id]").nth(1)
    relabel_id = second.get_attribute("data-id")
    second.locator("select[data-action='relabel']").select_option("3")
    expect(page.locator(".wb-dynamics-map .wb-msg-ok")).to_contain_text(f"train #{relabel_id} relabelled as '3'",
                                                                          timeout=15_000)
    _tab(page, "Verify")
    verify = page.locator(".wb-verify")
    expect(verify).to_contain_text("1 flag", timeout=15_000)
    expect(verify).to_contain_text("1 relabels in effect")
    expect(verify.locator("table.wb-table tbody tr")).to_have_count(2)
    _scroll(verify)
    screenshot(page, "dynamics_verify_queue")

    # the combined train ranking
    _tab(page, "Label issues")
    issues = page.locator(".wb-issues")
    issues.locator(".widget-toggle-button", has_text="train").click()
    issues.locator(".widget-button[title=Rank]").click()
    expect(issues).to_contain_text("flagged by at least two", timeout=60_000)
    expect(issues.locator("table.wb-table")).to_contain_text("flagged by")
    _scroll(issues)
    screenshot(page, "dynamics_label_issues_train")

    # pin a sample from Why: its Grad-CAM at the shown epoch
    page.locator(".wb-scrubber .widget-checkbox input").check()  # back to the latest epoch
    expect(scrubber).to_contain_text("showing epoch 4 (the latest)", timeout=15_000)
    explorer.locator(".widget-button", has_text="Show the top losses").click()
    gallery.locator("figure button[data-action='why']").first.click()
    expect(page.locator(".wb-why img.wb-why-img")).to_have_count(2, timeout=60_000)
    scrubber.locator(".widget-button", has_text="Pin the Why sample").click()
    pinned = scrubber.locator(".wb-pinned img")
    expect(pinned).to_have_count(2, timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('.wb-pinned img')].every(i => i.complete && i.naturalWidth > 0)")
    _scroll(explorer)
    screenshot(page, "dynamics_pinned_gradcam")
