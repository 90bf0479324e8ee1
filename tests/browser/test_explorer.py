"""ErrorExplorer in a real JupyterLab: click a confusion-matrix cell, see its samples.

Two generated notebooks: (a) digits with an untrained resnet18, click the busiest off-diagonal
cell, every thumbnail loads; (b) untrusted texts through a fake session, the malicious snippet
shows as text and nothing is injected (no <img>, no <b>, no alert). Screenshots go to
test-artifacts/browser/.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser.lab import cell, cell_output_text, open_notebook, run_all, screenshot, wait_until_idle

EVIL = "<img src=x onerror=alert(1)>"

IMAGE_CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("digits").subset(train=30, valid=10)\n'
    'model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)\n'
    "s = wb.Session(data, model, batch_size=32, seed=0)\n"
    "s.step()",
    "x = wb.ErrorExplorer(s); x",
]

TEXT_CELLS = [
    "from types import SimpleNamespace\n"
    "import numpy as np\n"
    "import workbench as wb\n"
    "from workbench.train.records import Predictions\n"
    "\n"
    "def fake_session(data, predictions, previous=None):\n"
    "    return SimpleNamespace(data=data, predictions=predictions, previous_predictions=previous,\n"
    "                           on=lambda event, fn: fn)\n"
    "\n"
    "def predictions(labels, predicted, k, epoch=1, seed=0):\n"
    "    rng = np.random.default_rng(seed)\n"
    "    logits = rng.normal(size=(len(labels), k)).astype(np.float32)\n"
    "    logits[np.arange(len(labels)), predicted] += 6.0\n"
    "    z = logits - logits.max(1, keepdims=True)\n"
    "    losses = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(labels)), labels]\n"
    "    return Predictions(logits, np.asarray(labels), losses.astype(np.float32),\n"
    "                       np.arange(len(labels)), epoch)\n"
    "\n"
    f"snippets = [{EVIL!r}, 'a fine film', 'dull & slow', '<b>bold</b>', 'ok'] * 4\n"
    "labels = ['bad', 'good', 'bad', 'bad', 'good'] * 4\n"
    "data = wb.Data.from_texts(snippets, labels, valid=(snippets, labels))\n"
    "y = data.valid.labels\n"
    "fake = fake_session(data, predictions(y, 1 - y, 2))  # everything wrong\n"
    "t, p = data.classes.index('bad'), data.classes.index('good')\n"
    "print(f'EVIL-CELL cm-cell-{t}-{p}')",
    "x = wb.ErrorExplorer(fake); x",
]

# [class, count] of every matrix button.
_CELLS_JS = """() => [...document.querySelectorAll('.wb-matrix button')]
    .map(b => [[...b.classList].find(c => c.startsWith('cm-cell-')), b.textContent.trim()])
    .filter(([c]) => c)"""

# Matrix buttons something else covers (a click at their centre would not reach them).
_COVERED_JS = """() => [...document.querySelectorAll('.wb-matrix button')].filter(b => {
  const r = b.getBoundingClientRect();
  return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) !== b;
}).map(b => [...b.classList].find(c => c.startsWith('cm-cell-')))"""

_GALLERY_READY_JS = """n => {
  const imgs = [...document.querySelectorAll('.wb-gallery-box .wb-gallery figure.wb-item img')];
  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def _show(locator) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(200)


def _run(page, lab, name, cells, timeout=120):
    open_notebook(page, lab, lab.write_notebook(name, cells))
    run_all(page)
    wait_until_idle(page, timeout=timeout)
    expect(page.locator(".wb-explorer .wb-matrix")).to_be_visible(timeout=30_000)


def test_explorer_image_cell_click_shows_its_thumbnails(page, lab):
    _run(page, lab, "explorer_images.ipynb", IMAGE_CELLS)
    cells = page.evaluate(_CELLS_JS)
    assert len(cells) == 100, cells
    _show(page.locator(".wb-explorer"))
    assert page.evaluate(_COVERED_JS) == [], "matrix cells hidden under the side panel"
    off = []
    for cls, text in cells:
        i, j = map(int, re.fullmatch(r"cm-cell-(\d+)-(\d+)", cls).groups())
        if i != j and text.isdigit() and int(text) > 0:
            off.append((int(text), cls))
    assert off, f"an untrained model should make some errors: {cells}"
    count, cls = max(off)
    page.locator(f".wb-matrix button.{cls}").click()
    box = page.locator(".wb-gallery-box")
    page.wait_for_function(_GALLERY_READY_JS, arg=min(50, count), timeout=30_000, polling=50)
    assert box.locator("figure.wb-item").count() == min(50, count)
    expect(box).to_contain_text(f"{count} sample")
    _show(cell(page, 1))
    screenshot(page, "explorer_images")


def test_explorer_text_cell_escapes_untrusted_text(page, lab):
    dialogs: list[str] = []

    def on_dialog(d):
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    _run(page, lab, "explorer_texts.ipynb", TEXT_CELLS, timeout=60)
    cls = re.search(r"EVIL-CELL (cm-cell-\d+-\d+)", cell_output_text(page, 0)).group(1)
    page.locator(f".wb-matrix button.{cls}").click()
    box = page.locator(".wb-gallery-box")
    expect(box.locator(".wb-card-text").first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(500)  # give an injected onerror the time to fire, if there were one
    text = box.inner_text()
    assert EVIL in text and "<b>bold</b>" in text and "dull & slow" in text, text
    assert box.locator("img").count() == 0
    assert box.locator(".wb-snippet b").count() == 0
    assert box.locator(".wb-card-text").count() == 12  # 3 bad snippets x 4, all predicted good
    assert dialogs == []
    _show(cell(page, 1))
    screenshot(page, "explorer_texts")
