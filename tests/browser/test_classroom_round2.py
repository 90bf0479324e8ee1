"""Issue 24, a classroom UI round two, in a real JupyterLab: one notebook walked as a teacher would.

The Workbench starts from data (400 MNIST digits, 120 to validate); the tests below run in order on
one page and one kernel (module-scoped), each checking one item of the issue:

1. every slow action says at once what it is doing (a spinner and words before its result: Load,
   Step, Fit head exactly, the first Why?, a t-SNE map, a cleanlab ranking), in page order;
2. nothing is clipped, on every tab and sub-tab the view has (walked, not listed), at 1280x800 and
   at 150% zoom, both with the file browser open, in the light and the dark theme;
3. Load keeps the trained run (the message says so, Compare lists it) and never moves the tab;
4. Compare counts what it lists, shows only settings the runs use, text >= 11 px;
5. a lasso on the map keeps the map where it is and puts the cards below it;
6. reloading the page re-attaches the live Workbench, several times;
7. every text of the view has a contrast >= 4.5:1 (3:1 large), computed from the page's styles;
(items 8 and 9, the disk cache after a restart and `./run demo` as root: test_restart_and_demo.py).

Screenshots: test-artifacts/browser/round2_*.png.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from browser.conftest import _ignored
from browser.lab import cell, open_notebook, run_all, screenshot, wait_until_idle
from browser.test_classroom import _file_browser, _tab
from browser.walk import Measure, catch_when_shown, caught, set_theme, theme_of, walk_tabs

WINDOW = {"width": 1280, "height": 800}
ZOOM = 1.5
NOTEBOOK = "round2.ipynb"
BENCH = ".jp-OutputArea-output .wb-workbench"
CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("mnist-5k").subset(train=40, valid=12, seed=0)\n'
    "bench = wb.Workbench(data, batch_size=64)\n"
    "bench",
]

# Records, in the page, the visible text of watched elements each time it changes: the order in
# which a busy line and a result appeared, without timing anything.
_RECORD_JS = r"""(watch) => {
  window.__wbRec = [];
  const last = {};
  const snap = () => {
    for (const [name, sel] of Object.entries(watch)) {
      const el = [...document.querySelectorAll(sel)].find(e => e.getClientRects().length > 0);
      const text = el ? el.textContent.trim() : '';
      if (text !== last[name]) { last[name] = text; window.__wbRec.push([name, text]); }
    }
  };
  if (window.__wbObs) window.__wbObs.disconnect();
  snap();
  window.__wbObs = new MutationObserver(snap);
  window.__wbObs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def _record(page, **watch: str) -> None:
    page.evaluate(_RECORD_JS, watch)


def _first(page, name: str, pattern: str) -> int:
    """Where in the recording `name` first showed text matching `pattern` (AssertionError if never)."""
    rec = page.evaluate("() => window.__wbRec")
    for i, (n, text) in enumerate(rec):
        if n == name and re.search(pattern, text):
            return i
    raise AssertionError(f"{name} never showed /{pattern}/; it showed: {[t for n, t in rec if n == name][:12]}")


def _errors_of(page, lab, errors: list[str]) -> None:
    def on_console(msg):
        if msg.type == "error" and not _ignored(msg.text, (msg.location or {}).get("url", ""), lab.url):
            errors.append(f"console.error: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))


@pytest.fixture(scope="module")
def classroom(browser, lab):
    """One page at 1280x800 with the file browser open, on the round-two notebook and its kernel."""
    set_theme(lab, "JupyterLab Light")
    context = browser.new_context(viewport=WINDOW)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    _errors_of(page, lab, errors)
    name = lab.write_notebook(NOTEBOOK, CELLS)
    open_notebook(page, lab, name)
    _file_browser(page, True)
    run_all(page)
    expect(page.locator(BENCH)).to_be_visible(timeout=120_000)
    wait_until_idle(page, timeout=120)
    expect(page.locator(".wb-backbone select option", has_text="efficientnet_lite0  ✓ loads now")).to_have_count(
        1, timeout=120_000)
    yield SimpleNamespace(page=page, lab=lab, errors=errors, name=name, checked=0)
    context.close()
    set_theme(lab, "JupyterLab Light")
    lab.reset()


def _no_new_errors(c) -> None:
    new, c.checked = c.errors[c.checked:], len(c.errors)
    assert not new, "the page logged errors:\n" + "\n".join(new)


def _train_tab_step(page, epoch: int) -> None:
    _tab(page, "Train").click()
    page.locator(".wb-step").click()
    page.wait_for_function(
        "n => [...document.querySelectorAll('.wb-history tbody tr td:first-child')].some(td => td.textContent.trim() === n)",
        arg=str(epoch), timeout=240_000, polling=200)
    expect(page.locator(".wb-step")).to_be_enabled(timeout=60_000)


# ---- 1. no silent waits ---------------------------------------------------------------------------
def test_1_every_slow_action_says_what_it_does_first(classroom):
    page = classroom.page
    _record(page, picker=".wb-picker .wb-status", status=".wb-dashboard .wb-status",
            why=".wb-why .wb-busy .wb-status", title=".wb-why .wb-card", map=".wb-datamap .wb-busy .wb-status",
            caption=".wb-datamap .wb-card", issues=".wb-issues .wb-busy .wb-status", summary=".wb-issues .wb-card")
    page.locator(".wb-load").click()  # on the Model tab: when it loads, the view moves on to Freeze
    expect(_tab(page, "Freeze")).to_have_class(re.compile(r"lm-mod-current"), timeout=180_000)
    assert _first(page, "picker", r"loading efficientnet_lite0: building the model") >= 0
    expect(page.locator(".wb-picker .wb-msg-ok")).to_contain_text("Loaded efficientnet_lite0")

    _train_tab_step(page, 1)  # the first head-only epoch computes the feature cache, with a count
    assert (_first(page, "status", r"starting epoch 1") < _first(page, "status", r"computing the backbone's features "
            r"once, train split: batch \d+/\d+") < _first(page, "status", r"epoch 1 done"))

    page.locator(".wb-fit-head").click()
    expect(page.locator(".wb-dashboard .wb-spinner")).to_be_visible()
    screenshot(page, "round2_1_fit_head_busy")
    page.wait_for_function("() => document.querySelector('.wb-dashboard .wb-status').textContent.includes('epoch 2 done')",
                           timeout=240_000, polling=100)
    assert (_first(page, "status", r"^fitting the head exactly: logistic regression") <
            _first(page, "status", r"fitting the head exactly \(logistic regression by L-BFGS\): solve \d+/13") <
            _first(page, "status", r"epoch 2 done"))
    expect(page.locator(".wb-history")).to_contain_text("exact head fit")

    _tab(page, "Errors").click()
    expect(page.locator(".wb-explorer")).to_contain_text("epoch 2", timeout=60_000)
    page.locator(".wb-side .widget-button", has_text="Show the top losses").click()
    card = page.locator(".wb-explorer .wb-gallery-box figure.wb-item").first
    sample = card.get_attribute("data-id")
    card.locator("button[data-action='why']").click()
    expect(page.locator(".wb-why .wb-card")).to_contain_text(f"Why #{sample}", timeout=120_000)
    assert (_first(page, "why", rf"Why #{sample}: Grad-CAM") < _first(page, "why", "nearest training samples")
            < _first(page, "title", rf"Why #{sample}"))

    page.locator(".wb-explain-tabs > .lm-TabBar .lm-TabBar-tab", has_text="Map").click()
    expect(page.locator(".wb-datamap .wb-card")).to_contain_text("PCA", timeout=60_000)
    page.locator(".wb-map-method select").select_option(label="t-SNE (slow)")
    page.locator(".wb-datamap .widget-button", has_text="Draw").click()
    expect(page.locator(".wb-datamap .wb-busy")).to_contain_text("drawing the t-SNE map of the 120 validation samples")
    screenshot(page, "round2_1_tsne_busy")
    expect(page.locator(".wb-datamap .wb-card")).to_contain_text("t-SNE", timeout=120_000)
    captions = [t for n, t in page.evaluate("() => window.__wbRec") if n == "caption"]
    tsne = next(i for i, t in enumerate(captions) if "t-SNE" in t)
    assert all("PCA" in t for t in captions[1:tsne] if t), captions  # until the t-SNE map shows, its caption is PCA's
    assert _first(page, "map", "drawing the t-SNE map") < _first(page, "caption", "t-SNE")

    page.locator(".wb-explain-tabs > .lm-TabBar .lm-TabBar-tab", has_text="Label issues").click()
    page.locator(".wb-issues .widget-toggle-button", has_text="train").click()
    page.locator(".wb-issues .widget-button", has_text=re.compile(r"^\W*Rank$")).click()
    # a trained session records training dynamics: the train split is ranked by cleanlab, AUM and hard-to-learn
    expect(page.locator(".wb-issues .wb-card")).to_contain_text("flagged by at least two", timeout=120_000)
    assert _first(page, "issues", r"ranking the train labels by cleanlab, AUM and hard-to-learn") < _first(
        page, "summary", "flagged by at least two")
    _no_new_errors(classroom)


# ---- 3. Load keeps the run and the tab ------------------------------------------------------------
def test_3_load_keeps_the_trained_run_and_the_tab_the_person_chose(classroom):
    page = classroom.page
    _tab(page, "Model").click()
    first_run = page.locator(".wb-picker .wb-msg-ok").inner_text()
    page.locator(".wb-load").click()
    _tab(page, "Errors").click()  # the person looks elsewhere while it loads
    expect(page.locator(".wb-picker .wb-msg-ok")).to_contain_text("is kept: compare them in the Compare tab",
                                                                    timeout=180_000)
    assert page.locator(".wb-picker .wb-msg-ok").inner_text() != first_run
    expect(_tab(page, "Errors")).to_have_class(re.compile(r"lm-mod-current"))  # never moved
    page.wait_for_timeout(1000)
    expect(_tab(page, "Errors")).to_have_class(re.compile(r"lm-mod-current"))
    message = page.locator(".wb-picker .wb-msg-ok").inner_text()
    assert re.search(r"the previous run 'run \d+' \(2 epochs\) is kept", message), message
    _no_new_errors(classroom)


# ---- 4. Compare agrees with itself ------------------------------------------------------------------
def test_4_compare_counts_what_it_lists_and_its_text_is_readable(classroom):
    page = classroom.page
    # the new run: a constant schedule with a step_epochs it never uses, and an LR of its own
    last = page.locator(".jp-NotebookPanel:visible .jp-Cell").count() - 1
    cell(page, last).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type('bench.session.configure(lr=0.02, schedule=wb.Schedule("constant", step_epochs=3));')
    page.keyboard.press("Control+Enter")
    wait_until_idle(page, timeout=60)
    _train_tab_step(page, 1)
    _tab(page, "Compare").click()
    hint = page.locator(".wb-compare-hint")
    expect(hint).to_contain_text("2 runs in this kernel: pick two or more")
    page.locator(".wb-compare-runs select").select_option(index=[0, 1])
    expect(hint).to_contain_text("Comparing 2 of the 2 runs in this kernel")
    settings = page.locator(".wb-compare-settings table")
    expect(settings).to_contain_text("schedule.name")
    rows = settings.locator("tbody tr td:first-child").all_inner_texts()
    assert "lr" in rows and not any(r.startswith("schedule.") and r != "schedule.name" for r in rows), rows
    page.wait_for_function("() => { const shown = [...document.querySelectorAll('.wb-compare img')]"
                           ".filter(i => i.getClientRects().length);"
                           " return shown.length >= 3 && shown.every(i => i.complete && i.naturalWidth > 0); }",
                           timeout=60_000)
    sizes = page.evaluate("() => [...document.querySelectorAll('.wb-compare img')].filter(i => i.getClientRects().length)"
                          ".map(i => [i.naturalWidth, i.clientWidth])")
    assert len(sizes) >= 3 and all(shown >= natural - 1 for natural, shown in sizes), sizes  # never scaled down
    # at their own size, compare figures have no text under 11 px (tests/widgets/test_compare.py)
    screenshot(page, "round2_4_compare")
    _no_new_errors(classroom)


# ---- 5. the lasso keeps the map in view --------------------------------------------------------------
def test_5_a_lasso_puts_the_cards_below_the_map_and_the_map_stays(classroom):
    page = classroom.page
    _tab(page, "Errors").click()
    page.locator(".wb-explain-tabs > .lm-TabBar .lm-TabBar-tab", has_text="Map").click()
    canvas = page.locator(".wb-datamap .wb-scatter-canvas")
    expect(page.locator(".wb-datamap .wb-card")).to_contain_text("validation samples", timeout=120_000)
    canvas.evaluate("el => el.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(300)
    before = canvas.bounding_box()
    x, y, w, h = before["x"], before["y"], before["width"], before["height"]
    page.mouse.move(x + 4, y + 4)
    page.mouse.down()
    for px, py in [(x + w - 4, y + 4), (x + w - 4, y + h - 4), (x + 4, y + h - 4), (x + 4, y + 6)]:
        page.mouse.move(px, py, steps=6)
    page.mouse.up()
    cards = page.locator(".wb-datamap .wb-map-cards figure.wb-item")
    expect(cards).to_have_count(50, timeout=30_000)  # all 120 lassoed; the first 50 shown
    after = canvas.bounding_box()
    assert abs(after["y"] - before["y"]) <= 2, (before, after)  # the map did not move
    assert 0 <= after["y"] and after["y"] + 40 <= WINDOW["height"]  # and is on screen
    assert cards.first.bounding_box()["y"] > after["y"] + after["height"]  # the cards are below it
    expect(page.locator(".wb-datamap .wb-map-cards")).to_contain_text("map lasso: 120 selected")
    screenshot(page, "round2_5_lasso")
    cards.first.locator("button[data-action='flag']").click()  # a map card's Flag is the explorer's
    expect(page.locator(".wb-side .lm-TabBar-tab", has_text="Flagged (1)")).to_be_visible(timeout=15_000)
    _no_new_errors(classroom)


# ---- 6. a reload re-attaches ------------------------------------------------------------------------
def test_6_reloading_the_page_reattaches_the_live_workbench(classroom):
    page = classroom.page
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=15_000)
    for n in range(4):
        page.reload()
        expect(page.locator(BENCH)).to_be_visible(timeout=60_000)
        outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        assert "model not found" not in outputs and "Error displaying widget" not in outputs
        _tab(page, "Train").click()  # and it is live: the kernel answers the tab's switch
        expect(page.locator(".wb-history tbody tr")).to_have_count(1)
        _tab(page, "Errors").click()
        expect(page.locator(".wb-explorer .wb-card").first).to_contain_text("epoch 1")
    screenshot(page, "round2_6_after_reloads")
    _no_new_errors(classroom)


# ---- 2 and 7. every tab and sub-tab at both sizes and in both themes -------------------------------
@pytest.fixture(scope="module")
def walked(classroom):
    """Every tab and sub-tab measured at 1280x800 and at 150% zoom (the file browser open), light and
    dark, plus the busy line of a t-SNE map while it is drawn; each page is a fresh load of the
    saved notebook on the live kernel."""
    page, lab = classroom.page, classroom.lab
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=15_000)
    results = {}
    for theme in ("JupyterLab Light", "JupyterLab Dark"):
        set_theme(lab, theme)
        for zoom in (1.0, ZOOM):
            context = page.context.browser.new_context(
                viewport={"width": round(WINDOW["width"] / zoom), "height": round(WINDOW["height"] / zoom)},
                device_scale_factor=zoom)
            view = context.new_page()
            view.set_default_timeout(30_000)
            _errors_of(view, lab, classroom.errors)
            view.goto(f"{lab.url}lab/tree/{classroom.name}")
            expect(view.locator(BENCH)).to_be_visible(timeout=60_000)
            assert theme_of(view) == theme
            _file_browser(view, True)
            tag = f"{'dark' if 'Dark' in theme else 'light'}_{round(zoom * 100)}"
            measure = Measure(view, tag, BENCH)
            paths = walk_tabs(view, BENCH, measure)
            # a busy line while it shows: t-SNE again
            _tab(view, "Errors").click()
            view.locator(".wb-explain-tabs > .lm-TabBar .lm-TabBar-tab", has_text="Map").click()
            view.locator(".wb-map-method select").select_option(label="t-SNE (slow)")
            view.locator(".wb-datamap .widget-button", has_text="Draw").evaluate(
                "el => el.scrollIntoView({block: 'center'})")
            catch_when_shown(view, ".wb-datamap .wb-busy")  # measured in the page the moment it shows
            view.locator(".wb-datamap .widget-button", has_text="Draw").click()
            view.wait_for_function("() => window.__wbCaught", timeout=60_000, polling=50)
            screenshot(view, f"round2_{tag}_busy")  # if the t-SNE is still being drawn
            seen = caught(view)
            assert "drawing the t-SNE map" in seen["text"], seen
            if seen["clipped"]:
                measure.clipped[f"{tag}/map busy"] = seen["clipped"]
            if seen["contrast"]["low"] or not seen["contrast"]["checked"]:
                measure.contrast[f"{tag}/map busy"] = seen["contrast"]["low"] or ["nothing measured"]
            expect(view.locator(".wb-datamap .wb-busy")).to_be_hidden(timeout=120_000)
            results[tag] = (paths, measure)
            context.close()
    set_theme(lab, "JupyterLab Light")
    return results


def test_2_nothing_is_clipped_on_any_tab_at_either_size(walked, classroom):
    _no_new_errors(classroom)
    paths = walked["light_100"][0]
    titles = {p[0] for p in paths}
    assert {"Model", "Freeze", "Train", "Errors", "Compare"} <= titles and len(paths) >= 16, paths
    assert ("Compare", "Disagreements") in paths and ("Errors", "Map") in paths  # sub-tabs too
    found = {k: v for _, m in walked.values() for k, v in m.clipped.items()}
    assert not found, "clipped widget areas:\n" + json.dumps(found, indent=1)


def test_7_every_text_has_contrast_in_both_themes(walked):
    for tag, (_, measure) in walked.items():
        assert measure.texts > 500, (tag, measure.texts)  # it measured the view's texts, not nothing
        assert measure.min_contrast >= 4.5 or not measure.contrast, (tag, measure.min_contrast)
    low = {k: v for _, m in walked.values() for k, v in m.contrast.items()}
    assert not low, "text under 4.5:1:\n" + json.dumps(low, indent=1)
