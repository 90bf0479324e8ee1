"""The quickstart as a teacher shows it: 1280x800 with the file browser open, then 150% zoom.

At every step of the walk (Model, Freeze, Train with its settings open, the first head-only epoch
while it computes the feature cache, after it, Errors with a cell's gallery, Why from a card) the
test measures every widget area and every label, button, tab title and HTML block inside the
outputs: none may be wider than its box (`scrollWidth <= clientWidth`, 1 px of rounding), which
catches cut labels ("every k e…"), hidden matrix columns and nested horizontal scrollbars. It
also checks what a class sees: a progress line with words and a count while the cache builds,
the plot shown once (the static snapshot is hidden under the live view), cards flagged from the
card, Copy as code on the clipboard, and `copy_as_code()` opening a new cell from a code cell.
Zoom is emulated as the browser does it: the same window (1280x800 device px) at a device scale
factor of 1.5, i.e. an 853x533 CSS px viewport, in a second browser context on the same kernel
(the widgets render again from the kernel's state). At 150% the file browser is closed: with it
open the output is ~385 CSS px wide, which is measured and printed but not required.
Screenshots: test-artifacts/browser/classroom_*.png.
"""

from __future__ import annotations

import json
import re

import nbformat
from playwright.sync_api import expect

from browser.lab import cell, open_notebook, run_cell, screenshot, wait_until_idle

NOTEBOOK = "quickstart.ipynb"
WINDOW = {"width": 1280, "height": 800}
ZOOM = 1.5

# Every widget area and every piece of text that could be cut, inside cell outputs; hidden ones skipped.
CLIPPED_JS = r"""() => {
  const sel = ['.jp-OutputArea-output', '.jp-OutputArea-output .jupyter-widgets', '.jp-OutputArea-output .widget-label',
               '.jp-OutputArea-output .widget-label-basic', '.jp-OutputArea-output button',
               '.jp-OutputArea-output .lm-TabBar-tabLabel', '.jp-OutputArea-output .widget-html-content',
               '.jp-OutputArea-output .wb-card-text', '.jp-OutputArea-output .wb-item',
               '.jp-NotebookPanel .jp-WindowedPanel-outer'].join(', ');
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    if (el.getClientRects().length === 0 || el.clientWidth === 0) continue;  // not shown
    if (el.scrollWidth > el.clientWidth + 1) {
      const cls = [...el.classList].filter(c => /^(wb-|jupyter-widget-|widget-|jp-)/.test(c)).slice(0, 4).join('.');
      out.push(`${el.tagName.toLowerCase()}.${cls} "${(el.innerText || '').trim().slice(0, 40).replace(/\s+/g, ' ')}" `
               + `scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`);
    }
  }
  return out;
}"""


def _index(nb, needle: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source)


def _tab(page, title: str):
    return page.locator(".wb-tabs > .lm-TabBar .lm-TabBar-tab", has_text=re.compile(rf"^{title}$"))


def _top(locator) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(250)


class Walk:
    """Checks and screenshots along the way; all clipping is reported at the end, per step."""

    def __init__(self, page, prefix: str) -> None:
        self.page, self.prefix, self.clipped = page, prefix, {}

    def check(self, step: str, show=None) -> None:
        if show is not None:
            _top(show)
        self.page.wait_for_timeout(300)  # let Lumino finish its layout after a tab switch or resize
        found = self.page.evaluate(CLIPPED_JS)
        if found:
            self.clipped[f"{self.prefix}/{step}"] = found
        screenshot(self.page, f"classroom_{self.prefix}_{step}")


def _file_browser(page, want_open: bool) -> None:
    browser = page.locator("#filebrowser")
    if browser.is_visible() != want_open:
        page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    expect(browser).to_be_visible() if want_open else expect(browser).to_be_hidden()


def _zoomed_page(page, lab, factor: float, errors: list[str]):
    """The same notebook and kernel in a second browser context zoomed by `factor`: the window
    stays 1280x800 device px, so CSS px shrink to 853x533 (what Chrome's 150% zoom does). The
    live widgets render again from the kernel's state, as after a reload."""
    context = page.context.browser.new_context(
        viewport={"width": round(WINDOW["width"] / factor), "height": round(WINDOW["height"] / factor)},
        device_scale_factor=factor)
    zoomed = context.new_page()
    zoomed.on("console", lambda m: m.type == "error" and "capture_scroll" not in m.text and errors.append(m.text))
    zoomed.on("pageerror", lambda e: errors.append(str(e)))
    zoomed.set_default_timeout(30_000)
    zoomed.goto(f"{lab.url}lab/tree/{NOTEBOOK}")
    expect(zoomed.locator(".wb-workbench")).to_be_visible(timeout=60_000)
    return zoomed


def _walk_tabs(walk: Walk, bench, page) -> None:
    """Model, Freeze, Train (settings open), Errors (a gallery shown): each one checked."""
    _tab(page, "Model").click()
    walk.check("model", bench)
    _tab(page, "Freeze").click()
    walk.check("freeze", bench)
    _tab(page, "Train").click()
    walk.check("train", bench)
    walk.check("train_plot", page.locator(".wb-dashboard .wb-buttons"))
    _tab(page, "Errors").click()
    walk.check("errors", bench)
    walk.check("errors_gallery", page.locator(".wb-explorer .wb-gallery-box"))
    walk.check("errors_why", page.locator(".wb-explain-tabs"))


def test_quickstart_fits_with_the_file_browser_and_at_150_percent(page, lab):
    nb = nbformat.read(lab.root_dir / lab.fresh_copy(NOTEBOOK), as_version=4)  # not an earlier test's autosave
    i_data, i_bench = _index(nb, 'wb.load_data("mnist-5k")'), _index(nb, "wb.Workbench(")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size(WINDOW)
    open_notebook(page, lab, NOTEBOOK)
    _file_browser(page, True)
    walk = Walk(page, "1280x800")

    run_cell(page, i_data)
    wait_until_idle(page, timeout=60)
    show = _index(nb, "data.show(")
    run_cell(page, show)
    grid = cell(page, show).locator(".wb-sample-grid")
    expect(grid).to_be_visible(timeout=30_000)
    page.wait_for_function("() => [...document.querySelectorAll('.wb-sample-grid img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=10_000)
    assert grid.locator("img").count() == 12
    walk.check("data_show", grid)

    run_cell(page, i_bench)
    bench = cell(page, i_bench)
    expect(bench.locator(".wb-workbench")).to_be_visible(timeout=60_000)
    wait_until_idle(page, timeout=60)

    # ---- Model: the list marks what loads offline now; Load is off for the others ----------------
    expect(page.locator(".wb-backbone select option", has_text="efficientnet_lite0  ✓ loads now")).to_have_count(
        1, timeout=60_000)
    assert page.locator(".wb-backbone select option", has_text="✗ needs a download").count() >= 1
    walk.check("model", bench)
    page.locator(".wb-load").click()
    expect(_tab(page, "Freeze")).to_have_class(re.compile(r"lm-mod-current"), timeout=60_000)

    # ---- Freeze: head only -----------------------------------------------------------------------
    page.locator(".wb-preset button", has_text="Head only").click()
    expect(page.locator(".wb-freeze-summary")).to_contain_text("the head only")
    walk.check("freeze", bench)

    # ---- Train: settings open; the LR has a typed value; the first epoch builds the cache, with words
    _tab(page, "Train").click()
    page.locator(".wb-settings .jupyter-widget-Collapse-header").click()
    # the LR on auto: the box shows the value the next epoch uses (a head on cached features: 5e-2),
    # greyed; the slider snapping 0.05 to its grid must not switch auto off
    expect(page.locator(".wb-lr-value input")).to_have_value("0.05")
    expect(page.locator(".wb-lr-auto input")).to_be_checked()
    expect(page.locator(".wb-lr-value input")).to_be_disabled()
    expect(page.locator(".wb-placeholder")).to_contain_text("No epochs yet")
    walk.check("train_settings", bench)
    page.locator(".wb-settings .jupyter-widget-Collapse-header").click()  # closed again: the class sees the plot
    status = page.locator(".wb-dashboard .wb-status")
    page.locator(".wb-step").click()
    expect(status).to_contain_text(re.compile(r"computing the backbone's features once, train split: batch \d+/\d+"),
                                   timeout=30_000)
    walk.check("first_epoch_cache", page.locator(".wb-dashboard .wb-buttons"))
    page.wait_for_function("() => { const r = document.querySelector('.wb-history tbody tr td');"
                           " return r && r.textContent.trim() === '1'; }", timeout=180_000, polling=200)
    expect(page.locator(".wb-step")).to_be_enabled(timeout=30_000)
    expect(status).to_contain_text(re.compile(r"epoch 1 done: valid acc 0\.\d+.* of which .* computing the cached"))
    expect(page.locator(".wb-history")).to_contain_text("features cached in")
    # the plot shows once: the static snapshot output under the live view is hidden
    out = bench.locator(".jp-OutputArea").first
    page.wait_for_function(
        """area => [...area.querySelectorAll('.jp-OutputArea-output img')]
              .some(img => !img.closest('.jupyter-widgets') && img.naturalWidth > 1)""",
        arg=out.element_handle(), timeout=15_000)
    snapshot = out.locator(".jp-OutputArea-child").filter(has=page.locator(".jp-RenderedImage"))
    expect(snapshot).to_be_hidden()
    expect(page.locator(".wb-plot")).to_be_visible()
    walk.check("first_epoch_done", page.locator(".wb-dashboard .wb-buttons"))

    # ---- Copy as code: the page's clipboard holds session.to_code() --------------------------------
    page.locator(".wb-code-copy").click()
    expect(page.locator(".wb-code-text")).to_contain_text("wb.Session(", timeout=15_000)
    expect(page.locator(".wb-code")).to_have_attribute("data-copied", "clipboard", timeout=10_000)
    clip = page.evaluate("() => navigator.clipboard.readText()")
    assert clip == page.locator(".wb-code-text").inner_text() and "fit(1)" in clip.replace(" ", "")
    walk.check("copy_as_code", page.locator(".wb-code"))

    # ---- Train N a few head-only epochs, then Errors -----------------------------------------------
    n_box = page.locator(".wb-n-epochs input")
    n_box.fill("3")
    n_box.press("Enter")
    page.locator(".wb-train").click()
    page.wait_for_function("() => [...document.querySelectorAll('.wb-history tbody tr td:first-child')]"
                           ".some(td => td.textContent.trim() === '4')", timeout=60_000, polling=200)
    expect(page.locator(".wb-step")).to_be_enabled(timeout=30_000)
    _tab(page, "Errors").click()
    expect(page.locator(".wb-explorer")).to_contain_text("epoch 4", timeout=30_000)
    walk.check("errors", bench)
    cells = page.evaluate("""() => [...document.querySelectorAll('.wb-matrix button')].map(b =>
        [[...b.classList].find(c => c.startsWith('cm-cell-')), Number(b.textContent.trim())])""")
    off = [(n, c) for c, n in cells if c and len(set(c.split("-")[2:])) == 2 and n > 0]
    count, cls = max(off)
    page.locator(f".wb-matrix button.{cls}").click()
    cards = page.locator(".wb-explorer .wb-gallery-box figure.wb-item")
    expect(cards).to_have_count(min(50, count), timeout=30_000)
    walk.check("errors_gallery", page.locator(".wb-explorer .wb-gallery-box"))

    # ---- a card: Flag, then Why? -------------------------------------------------------------------
    first = cards.first
    card_id = first.get_attribute("data-id")
    first.locator("button[data-action='flag']").click()
    expect(page.locator(".wb-side .lm-TabBar-tab", has_text="Flagged (1)")).to_be_visible(timeout=10_000)
    expect(page.locator(f".wb-explorer .wb-gallery-box figure.wb-flagged[data-id='{card_id}']")).to_have_count(1)
    page.locator(f".wb-explorer .wb-gallery-box figure[data-id='{card_id}'] button[data-action='why']").click()
    expect(page.locator(".wb-why")).to_contain_text(f"Why #{card_id}", timeout=60_000)
    expect(page.locator(".wb-explain-tabs > .lm-TabBar .lm-TabBar-tab.lm-mod-current")).to_have_text("Why")
    walk.check("errors_why", page.locator(".wb-explain-tabs"))

    # ---- copy_as_code() from a code cell opens the code in a new cell below ------------------------
    wait_until_idle(page, timeout=30)
    n_cells = page.locator(".jp-NotebookPanel:visible .jp-Cell").count()
    cell(page, n_cells - 1).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new code cell below the last one, in edit mode after Enter
    page.keyboard.press("Enter")
    page.keyboard.type("bench.dashboard.copy_as_code();")
    page.keyboard.press("Control+Enter")  # run in place: the only new cell is the one the kernel asks for
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell")).to_have_count(n_cells + 2, timeout=20_000)
    new = cell(page, n_cells + 1).locator(".jp-InputArea-editor").inner_text()
    assert "wb.Session(" in new and "import workbench as wb" in new, new[:300]

    # ---- 150% zoom, file browser open: every tab again ----------------------------------------------
    page.keyboard.press("Control+s")  # the zoomed page opens the saved notebook, with its widget outputs
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=15_000)
    errors: list[str] = []
    zoomed = _zoomed_page(page, lab, ZOOM, errors)
    assert zoomed.evaluate("() => [innerWidth, devicePixelRatio]") == [round(WINDOW["width"] / ZOOM), ZOOM]
    _file_browser(zoomed, False)
    walk.page, walk.prefix = zoomed, "zoom150"  # one report for both sizes
    zoomed_bench = zoomed.locator(".jp-Cell").filter(has=zoomed.locator(".wb-workbench"))
    _walk_tabs(walk, zoomed_bench, zoomed)
    # Both at once (a 385 px wide output) is reported, not required: printed for the record.
    _file_browser(zoomed, True)
    both = Walk(zoomed, "zoom150_filebrowser")
    _walk_tabs(both, zoomed_bench, zoomed)
    print("150% zoom with the file browser open (not asserted):", json.dumps(both.clipped, indent=1))
    zoomed.context.close()
    assert not errors, f"the zoomed page logged errors: {errors}"
    assert not walk.clipped, "clipped widget areas:\n" + json.dumps(walk.clipped, indent=1)


TEXT_CELLS = [
    "from types import SimpleNamespace\n"
    "import numpy as np\n"
    "import workbench as wb\n"
    "from workbench.train.records import Predictions\n"
    "reviews = wb.load_data('rotten-tomatoes').subset(train=20, valid=30, seed=0)\n"
    "long = 'a very long review that goes on and on, ' * 25 + 'and ends here: THE END.'\n"
    "texts = [long if i % 5 == 0 else reviews.item(i) for i in range(len(reviews.valid))]\n"
    "labels = [reviews.classes[k] for k in reviews.valid.labels]\n"
    "data = wb.Data.from_texts(texts, labels, valid=(texts, labels), name='reviews')\n"
    "y = data.valid.labels\n"
    "rng = np.random.default_rng(0)\n"
    "pred = np.where(rng.random(len(y)) < 0.4, 1 - y, y)\n"
    "logits = rng.normal(size=(len(y), 2)).astype(np.float32)\n"
    "logits[np.arange(len(y)), pred] += 3.0\n"
    "z = logits - logits.max(1, keepdims=True)\n"
    "losses = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(y)), y]\n"
    "fake = SimpleNamespace(data=data, previous_predictions=None, on=lambda e, fn: fn,\n"
    "    predictions=Predictions(logits, np.asarray(y), losses.astype(np.float32), np.arange(len(y)), 1))",
    "x = wb.ErrorExplorer(fake); x",
]


def test_text_explorer_fits_and_long_reviews_open_on_a_click(page, lab):
    """The 2x2 matrix of a text run, its side tabs and review cards: nothing clipped at 1280x800
    with the file browser open nor at 150% zoom; a long review shows its start, all of it on a click."""
    page.set_viewport_size(WINDOW)
    name = lab.write_notebook("text_explorer.ipynb", TEXT_CELLS)
    open_notebook(page, lab, name)
    _file_browser(page, True)
    from browser.lab import run_all

    run_all(page)
    wait_until_idle(page, timeout=120)
    explorer = page.locator(".wb-explorer")
    expect(explorer.locator(".wb-matrix")).to_be_visible(timeout=30_000)
    walk = Walk(page, "text_1280x800")
    walk.check("matrix", explorer)
    page.locator(".wb-matrix button.cm-cell-0-1").click()
    cards = page.locator(".wb-explorer .wb-gallery-box .wb-card-text")
    expect(cards.first).to_be_visible(timeout=15_000)
    long_card = cards.filter(has_text="a very long review").first
    shown = long_card.inner_text()  # what is rendered (a closed <details> renders only its summary)
    assert "THE END" not in shown and "(more)" in shown, shown
    font = long_card.evaluate("el => parseFloat(getComputedStyle(el.querySelector('.wb-snippet')).fontSize)")
    assert font >= 14, f"review text is {font}px"
    long_card.locator("summary").click()
    expect(long_card.locator("details")).to_have_attribute("open", "")
    assert "THE END" in long_card.inner_text() and "(more)" not in long_card.inner_text()
    walk.check("cards", page.locator(".wb-explorer .wb-gallery-box"))
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=15_000)
    errors: list[str] = []
    context = page.context.browser.new_context(
        viewport={"width": round(WINDOW["width"] / ZOOM), "height": round(WINDOW["height"] / ZOOM)},
        device_scale_factor=ZOOM)
    zoomed = context.new_page()
    zoomed.on("console", lambda m: m.type == "error" and errors.append(m.text))
    zoomed.on("pageerror", lambda e: errors.append(str(e)))
    zoomed.goto(f"{lab.url}lab/tree/{name}")
    expect(zoomed.locator(".wb-explorer .wb-matrix")).to_be_visible(timeout=60_000)
    _file_browser(zoomed, False)
    walk.page, walk.prefix = zoomed, "text_zoom150"
    walk.check("matrix", zoomed.locator(".wb-explorer"))
    walk.check("cards", zoomed.locator(".wb-explorer .wb-gallery-box"))
    context.close()
    assert not errors, errors
    assert not walk.clipped, "clipped widget areas:\n" + json.dumps(walk.clipped, indent=1)
