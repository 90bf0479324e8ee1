"""Why / Label issues / Map in a real JupyterLab: what a person clicks, and what stays text.

(a) digits with a briefly trained resnet18: pick one sample -> the Why panel shows two Grad-CAM
images and nearest training thumbnails; Rank -> the label-issue table and gallery; the Map tab
draws the canvas, a lasso drag shows its cards below the map, a matrix click rings points.
(b) texts holding markup through MiniLM: the Why panel's tokens and the neighbours' snippets are
text (no <img>, no <b>, no dialog). Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

from playwright.sync_api import expect

from browser.lab import open_notebook, run_all, screenshot, wait_until_idle

EVIL = "<img src=x onerror=alert(1)>"

IMAGE_CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("digits").subset(train=30, valid=12, seed=0)  # per class\n'
    'model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=32)\n'
    "s = wb.Session(data, model, batch_size=32, seed=0)\n"
    "s.fit(2);",
    "x = wb.ErrorExplorer(s); x",
]

TEXT_CELLS = [
    "import workbench as wb\n"
    f"texts = [{EVIL!r} + ' great fun', 'dull & slow <b>bold</b>', 'a fine film', 'so bad'] * 6\n"
    "labels = ['good', 'bad', 'good', 'bad'] * 6\n"
    "data = wb.Data.from_texts(texts, labels, valid=(texts[:8], labels[:8]))\n"
    "s = wb.Session(data, wb.load_backbone('minilm-l6', 2), lr=5e-3, batch_size=16, seed=0)\n"
    "s.step();",
    "why = wb.WhyPanel(s); why.show(0); why",
]


def _scroll(locator) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(200)


def _tab(page, scope: str, title: str) -> None:
    page.locator(f"{scope} .lm-TabBar-tab", has_text=title).first.click()


def test_why_issues_and_map_in_the_errors_tab(page, lab):
    open_notebook(page, lab, lab.write_notebook("explain_images.ipynb", IMAGE_CELLS))
    run_all(page)
    wait_until_idle(page, timeout=180)
    explorer = page.locator(".wb-explorer")
    expect(explorer.locator(".wb-explain-tabs")).to_be_visible(timeout=30_000)

    # Why: a card's "Why?" button in the top-losses gallery
    explorer.locator(".widget-button", has_text="Top losses").click()
    card_why = explorer.locator(".wb-gallery-box figure button[data-action='why']").first
    expect(card_why).to_be_visible(timeout=15_000)
    card_why.click()
    why = page.locator(".wb-why")
    expect(why.locator("img.wb-why-img")).to_have_count(2, timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('.wb-why img')].every(i => i.complete && i.naturalWidth > 0)")
    expect(why.locator(".wb-why-neighbours figure.wb-item")).to_have_count(8)
    expect(why).to_contain_text("Grad-CAM")
    _scroll(why)
    screenshot(page, "why_panel_images")

    # Label issues: Rank -> table + gallery
    _tab(page, ".wb-explain-tabs", "Label issues")
    page.locator(".wb-issues .widget-button[title=Rank]").click()
    issues = page.locator(".wb-issues")
    expect(issues.locator("table.wb-table tbody tr").first).to_be_visible(timeout=30_000)
    expect(issues).to_contain_text("likely label issues")
    _scroll(issues)
    screenshot(page, "label_issues_tab")

    # Map: drawn on opening; a lasso shows its cards below the map; a matrix click rings points
    _tab(page, ".wb-explain-tabs", "Map")
    scatter = page.locator(".wb-scatter")
    expect(scatter).to_have_attribute("data-drawn", "120", timeout=30_000)
    _scroll(page.locator(".wb-datamap"))
    screenshot(page, "map_tab_drawn")
    box = scatter.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    for fx, fy in ((0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.02)):
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=5)
    page.mouse.up()
    expect(page.locator(".wb-datamap .wb-map-cards")).to_contain_text("map lasso: 120 selected", timeout=15_000)
    cell = page.evaluate("""() => [...document.querySelectorAll('.wb-matrix button')]
        .map(b => [[...b.classList].find(c => c.startsWith('cm-cell-')), +b.textContent.trim()])
        .filter(([c, n]) => c && n > 0 && c.split('-')[2] !== c.split('-')[3]).sort((a, b) => b[1] - a[1])[0][0]""")
    page.locator(f".wb-matrix button.{cell}").click()
    expect(page.locator(".wb-explorer .wb-gallery-box")).to_contain_text("predicted as", timeout=15_000)
    page.wait_for_timeout(300)
    _scroll(page.locator(".wb-datamap"))
    screenshot(page, "map_tab_cell_highlight")


def test_why_tokens_and_snippets_stay_text(page, lab):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_notebook(page, lab, lab.write_notebook("explain_texts.ipynb", TEXT_CELLS))
    run_all(page)
    wait_until_idle(page, timeout=180)
    why = page.locator(".wb-why")
    expect(why.locator(".wb-token").first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(500)  # an injected onerror would have fired by now
    tokens = " ".join(why.locator(".wb-token").all_inner_texts())
    assert "<" in tokens and "alert" in tokens, tokens  # the markup's pieces show as text tokens
    assert why.locator("img").count() == 0 and why.locator(".wb-snippet b, .wb-tokens b").count() == 0
    snippets = why.locator(".wb-snippet").all_inner_texts()
    assert any(EVIL in s for s in snippets) or any("<b>bold</b>" in s for s in snippets), snippets
    assert dialogs == []
    _scroll(why)
    screenshot(page, "why_panel_texts")
