"""The browser harness itself, on generated notebooks: run, click a widget, a responsive kernel."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from browser.lab import (
    cell,
    cell_output_text,
    open_notebook,
    run_all,
    run_cell,
    screenshot,
    wait_until_idle,
)

MARKER = "wb-harness-marker-7f3a"

WIDGETS_CELL = """\
import ipywidgets as w

button = w.Button(description="Hello").add_class("wb-hello")
progress = w.IntProgress(value=3, max=10, description="clicks")
label = w.Label("not clicked yet").add_class("wb-label")
clicks = 0

def on_click(_):
    global clicks
    clicks += 1
    progress.value = min(progress.max, progress.value + 1)
    label.value = f"Hello clicked {clicks}"

button.on_click(on_click)
display(w.VBox([button, progress, label]))
"""


def test_run_all_and_click_a_widget(page, lab):
    name = lab.write_notebook("harness_widgets.ipynb", [f"print({MARKER!r})", WIDGETS_CELL])
    open_notebook(page, lab, name)

    run_all(page)
    wait_until_idle(page, timeout=30)

    assert MARKER in cell_output_text(page, 0)
    button = page.locator(".widget-button:has-text('Hello')")
    expect(button).to_be_visible()
    expect(page.locator(".widget-label:has-text('not clicked yet')")).to_be_visible()

    button.click()
    expect(page.locator(".widget-label:has-text('Hello clicked 1')")).to_be_visible()
    expect(cell(page, 1).locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 40%"))
    screenshot(page, "harness_widgets")


N = 60  # progress steps of 0.1 s: the thread runs ~6 s

THREAD_CELL = f"""\
import threading, time
import ipywidgets as w

N = {N}
bg = w.IntProgress(value=0, max=N, description="background").add_class("wb-bg")

def work():
    for i in range(1, N + 1):
        time.sleep(0.1)
        bg.value = i

worker = threading.Thread(target=work, daemon=True)
worker.start()
display(bg)
"""

OTHER_CELL = 'print(f"other cell ran at {bg.value}/{N}, thread alive: {worker.is_alive()}")'


def _bar_percent(page) -> float:
    width = page.locator(".wb-bg .progress-bar").evaluate("el => el.style.width")
    return float(width.rstrip("%") or 0)


def test_kernel_stays_responsive_while_a_thread_updates_a_widget(page, lab):
    name = lab.write_notebook("harness_thread.ipynb", [THREAD_CELL, OTHER_CELL])
    open_notebook(page, lab, name)

    run_cell(page, 0)
    # The thread has started and its trait updates reach the browser.
    page.wait_for_function(
        "() => parseFloat(document.querySelector('.wb-bg .progress-bar')?.style.width) > 0",
        timeout=20_000)

    t0 = time.monotonic()
    run_cell(page, 1)
    out = cell(page, 1).locator(".jp-OutputArea-output")
    expect(out).to_contain_text("other cell ran at", timeout=5_000)
    elapsed = time.monotonic() - t0
    shown = _bar_percent(page)
    text = cell_output_text(page, 1)
    screenshot(page, "harness_thread_midway")

    ran_at = int(re.search(r"ran at (\d+)/", text).group(1))
    assert "thread alive: True" in text, text
    assert 0 < ran_at < N, text                # the kernel ran it mid-way through the thread
    assert shown < 100, f"bar at {shown}% when the other cell's output appeared"
    assert elapsed < 3, f"the other cell took {elapsed:.2f} s to show output"

    # The thread keeps going and finishes; its updates keep rendering.
    expect(page.locator(".wb-bg .progress-bar")).to_have_attribute(
        "style", re.compile(r"width: 100%"), timeout=15_000)
    wait_until_idle(page, timeout=10)
    screenshot(page, "harness_thread_done")
