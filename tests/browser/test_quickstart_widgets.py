"""The quickstart's Workbench in a real JupyterLab: load, freeze, step, train, a cell while it
trains, Stop, and the static snapshot that a saved notebook keeps.

One test on purpose: the steps build on each other (a loaded backbone, a first epoch) and the
slow parts (a kernel, a feature cache) are paid once. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import math
import re
import struct
import time

import nbformat
from playwright.sync_api import expect

from browser.lab import cell, cell_output_text, open_notebook, run_cell, screenshot, wait_until_idle

NOTEBOOK = "quickstart.ipynb"
# Tall enough to show the whole Train tab, the snapshot under it and the cell after it.
TALL = {"width": 1400, "height": 1350}

# Stop is checked between batches, so the epoch must end within about one batch of the click.
# The batch we read from the status can lag the loop by up to ~0.2 s of reports (<= 5 Hz) plus
# transport: slack = 2 batches, or as many as fit in 1 s when batches are fast.
STOP_SLACK_BATCHES = 2
BATCH_SIZE = 64  # the quickstart's Workbench(..., batch_size=64)


def _cell_index(nb, needle: str) -> int:
    """The index (all cell types count, as `cell()` does) of the first code cell containing needle."""
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and needle in c.source:
            return i
    raise AssertionError(f"no code cell of {NOTEBOOK} contains {needle!r}")


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])


def _tab(page, title: str):
    return page.locator(".wb-tabs .lm-TabBar-tab", has_text=re.compile(rf"^{title}$"))


def _show(locator) -> None:
    """Scroll the notebook so `locator`'s top is at the top of the notebook (for screenshots)."""
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(200)


def _history_epochs(page) -> list[str]:
    return page.locator(".wb-history tbody tr td:first-child").all_inner_texts()


def _snapshot_images(out_area):
    """[naturalWidth, naturalHeight, src length] of each <img> in the cell's outputs outside widgets."""
    return out_area.evaluate(
        """area => [...area.querySelectorAll('.jp-OutputArea-output img')]
              .filter(img => !img.closest('.jupyter-widgets'))
              .map(img => [img.naturalWidth, img.naturalHeight, img.src.length])""")


def test_quickstart_workbench_step_train_stop_and_snapshot(page, lab):
    nb = nbformat.read(lab.root_dir / lab.fresh_copy(NOTEBOOK), as_version=4)  # not an earlier test's autosave
    i_data = _cell_index(nb, 'wb.load_data("mnist-5k")')
    i_bench = _cell_index(nb, "wb.Workbench(")
    i_epochs = _cell_index(nb, "epochs so far")
    page.set_viewport_size(TALL)
    open_notebook(page, lab, NOTEBOOK)

    # ---- data, then the Workbench ------------------------------------------------------------
    run_cell(page, i_data)
    wait_until_idle(page, timeout=60)
    assert "mnist-5k" in cell_output_text(page, i_data)
    run_cell(page, i_bench)
    bench = cell(page, i_bench)
    expect(bench.locator(".wb-workbench")).to_be_visible(timeout=60_000)
    wait_until_idle(page, timeout=60)

    # ---- Model tab: the default backbone, Load ----------------------------------------------
    expect(_tab(page, "Model")).to_have_class(re.compile(r"lm-mod-current"))
    expect(page.locator(".wb-backbone select")).to_have_value("efficientnet_lite0")
    page.locator(".wb-load").click()
    # The message shows in the picker; then the Workbench builds the session's views and selects
    # the Freeze tab by itself (the picker is then hidden, so don't wait for visibility).
    expect(page.locator(".wb-picker")).to_contain_text("Loaded efficientnet_lite0", timeout=60_000)
    expect(_tab(page, "Freeze")).to_have_class(re.compile(r"lm-mod-current"), timeout=30_000)
    _tab(page, "Model").click()
    expect(page.locator(".wb-picker .wb-msg-ok")).to_be_visible()
    _show(bench)
    screenshot(page, "quickstart_loaded")

    # ---- Freeze: head only; Train: one epoch ------------------------------------------------
    _tab(page, "Freeze").click()
    page.locator(".wb-preset button", has_text="Head only").click()
    expect(page.locator(".wb-preset button.mod-active")).to_have_text("Head only")
    expect(page.locator(".wb-freeze-summary")).to_contain_text("1 of 9 blocks, the head only")

    _tab(page, "Train").click()
    plot = page.locator(".wb-plot")
    expect(page.locator(".wb-placeholder")).to_be_visible()  # words, not empty axes, before any epoch
    expect(plot).to_be_hidden()
    src0 = plot.get_attribute("src")
    out_area = bench.locator(".jp-OutputArea").first
    blank = _snapshot_images(out_area)
    assert blank == [[1, 1, blank[0][2]]], f"before training the snapshot should be the 1x1 blank: {blank}"

    page.locator(".wb-step").click()
    # Head only: building the feature cache dominates the first epoch (~10-30 s here).
    page.wait_for_function(
        """src0 => {
             const img = document.querySelector('.wb-plot');
             const first = document.querySelector('.wb-history tbody tr td');
             return img.src !== src0 && img.complete && img.naturalWidth > 0
                    && first && first.textContent.trim() === '1';
           }""", arg=src0, timeout=90_000, polling=100)
    assert _history_epochs(page) == ["1"]
    expect(plot).to_be_visible()
    expect(page.locator(".wb-placeholder")).to_be_hidden()
    expect(page.locator(".wb-step")).to_be_enabled(timeout=10_000)  # the thread has ended
    expect(page.locator(".wb-history")).to_contain_text("cached")
    # The static snapshot (a plain image/png output outside the widget) was updated through its
    # display handle from the training thread: no longer the 1x1 blank.
    page.wait_for_function(
        """area => [...area.querySelectorAll('.jp-OutputArea-output img')]
              .some(img => !img.closest('.jupyter-widgets') && img.complete && img.naturalWidth > 1)""",
        arg=out_area.element_handle(), timeout=10_000, polling=100)
    shown = _snapshot_images(out_area)
    assert len(shown) == 1 and shown[0][0] > 100 and shown[0][1] > 50, shown
    _show(bench)
    screenshot(page, "quickstart_step_epoch")

    # ---- Freeze: full (slow epochs); Train N; a cell runs while it trains ----------------------
    _tab(page, "Freeze").click()
    page.locator(".wb-preset button", has_text="Full").click()
    expect(page.locator(".wb-preset button.mod-active")).to_have_text("Full")
    _tab(page, "Train").click()
    n_box = page.locator(".wb-n-epochs input")
    n_box.fill("5")
    n_box.press("Enter")
    page.locator(".wb-train").click()
    status = page.locator(".wb-dashboard .wb-status")
    expect(status).to_contain_text(re.compile(r"epoch 2: batch \d+/\d+"), timeout=60_000)
    expect(page.locator(".wb-stop")).to_be_enabled()

    t0 = time.monotonic()
    run_cell(page, i_epochs)
    expect(cell(page, i_epochs).locator(".jp-OutputArea-output")).to_contain_text("epochs so far: 1",
                                                                                  timeout=10_000)
    cell_s = time.monotonic() - t0
    # Still training when the output came: an epoch in progress, Stop live, no new history row.
    running_status = status.inner_text()
    assert re.search(r"epoch 2: batch \d+/\d+", running_status), running_status
    expect(page.locator(".wb-stop")).to_be_enabled()
    expect(page.locator(".wb-train")).to_be_disabled()
    assert _history_epochs(page) == ["1"]
    assert cell_s < 10, f"the cell took {cell_s:.1f} s to show output during training"
    _show(bench)
    screenshot(page, "quickstart_cell_while_training")

    # ---- Stop: halts within about one batch -------------------------------------------------
    # Wait for a fresh progress report so the batch number we read is current (<= 5 Hz reports).
    before = status.inner_text()
    page.wait_for_function("b => document.querySelector('.wb-dashboard .wb-status').innerText !== b", arg=before,
                           timeout=15_000, polling=20)
    report = status.inner_text()
    batch_at_click = int(re.search(r"batch (\d+)/", report).group(1))
    batch_s = BATCH_SIZE / float(re.search(r"([\d,.]+) samples/s", report).group(1).replace(",", ""))
    slack = max(STOP_SLACK_BATCHES, math.ceil(1.0 / batch_s))
    t_click = time.monotonic()
    page.locator(".wb-stop").click()
    note = page.locator(".wb-history tbody tr:nth-child(2) td:last-child")
    expect(note).to_contain_text("stopped by user", timeout=20_000)
    stop_s = time.monotonic() - t_click
    stopped_after = int(re.search(r"after batch (\d+)/", note.inner_text()).group(1))
    expect(page.locator(".wb-step")).to_be_enabled(timeout=10_000)
    expect(page.locator(".wb-train")).to_be_enabled()
    expect(page.locator(".wb-stop")).to_be_disabled()
    expect(page.locator(".wb-pause")).to_be_disabled()
    expect(status).to_contain_text("stopped by user")
    assert _history_epochs(page) == ["1", "2"]
    assert stopped_after <= batch_at_click + slack, (
        f"Stop clicked at batch {batch_at_click} ({batch_s:.2f} s a batch), epoch stopped after batch "
        f"{stopped_after}")
    print(f"cell during training: {cell_s:.2f} s; Stop at batch {batch_at_click} ({batch_s:.2f} s a batch) "
          f"-> stopped after batch {stopped_after}, shown {stop_s:.2f} s after the click")
    wait_until_idle(page, timeout=30)
    _show(bench)
    screenshot(page, "quickstart_stopped")

    # ---- the saved notebook keeps the last plot as a plain image/png output ---------------------
    path = lab.root_dir / NOTEBOOK
    mtime = path.stat().st_mtime_ns
    cell(page, i_epochs).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=15_000)
    deadline = time.monotonic() + 15
    while path.stat().st_mtime_ns == mtime and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.stat().st_mtime_ns != mtime, "the notebook was not saved"
    saved = nbformat.read(path, as_version=4).cells[i_bench]
    pngs = [base64.b64decode(o["data"]["image/png"]) for o in saved.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
    assert len(pngs) == 1, [o.output_type for o in saved.outputs]
    assert len(pngs[0]) > 1000, f"the saved snapshot is {len(pngs[0])} bytes: still the blank?"
    assert _png_size(pngs[0]) == tuple(shown[0][:2]), (_png_size(pngs[0]), shown)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in saved.outputs)
