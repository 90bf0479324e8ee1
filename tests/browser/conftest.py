"""Fixtures for browser tests: a real JupyterLab (`lab`), Chromium (`browser`), a page per test.

Every test in this folder is marked `browser` and `slow`. A test fails if the page logged a
console error or threw (see IGNORED_CONSOLE for the few known-harmless messages). Helpers to
drive notebooks are in lab.py beside this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser.lab import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, start_lab

HERE = Path(__file__).resolve().parent

# Known-harmless console errors; keep this tiny and explicit.
IGNORED_CONSOLE = [
    re.compile(r"No handler for 'capture_scroll'"),  # ipympl, harmless (JUPYTERLAB-TESTING.md)
]


def _ignored(text: str, url: str, lab_url: str) -> bool:
    if any(p.search(text) for p in IGNORED_CONSOLE):
        return True
    # Chromium's network noise: a failed load of a favicon or of anything not on our server.
    if text.startswith("Failed to load resource"):
        return "favicon" in url or not url.startswith(lab_url)
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail the test itself (not its teardown) when its page logged errors."""
    try:
        result = yield
    except BaseException:
        errors = getattr(item, "_wb_page_errors", None) or []
        item._wb_checked = len(errors)
        if errors:  # shown with the failure's captured output
            print("the page also logged errors:\n" + "\n".join(errors))
        raise
    errors = getattr(item, "_wb_page_errors", None) or []
    item._wb_checked = len(errors)
    if errors:
        raise AssertionError("the page logged errors:\n" + "\n".join(errors))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"_wb_rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port, root = a temporary copy of notebooks/."""
    server = start_lab(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _cells_state(page) -> str:
    """The kernel status and each cell's prompt and the end of its output, as the page shows them."""
    try:
        return page.evaluate("""() => {
          const status = [...document.querySelectorAll('.jp-Toolbar-kernelStatus, .jp-StatusBar-TextItem')]
              .map(e => e.textContent.trim()).filter(t => t.includes('|')).join(' / ');
          const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell')].map((c, i) => {
            const prompt = (c.querySelector('.jp-InputPrompt') || {}).textContent || '';
            const out = (c.querySelector('.jp-OutputArea') || {}).innerText || '';
            return `cell ${i} ${prompt.trim()} ${out.slice(-600).replace(/\\n/g, ' | ')}`;
          });
          return ['kernel status: ' + status, ...cells].join('\\n');
        }""")
    except Exception as exc:  # the page itself may be what broke
        return f"(could not read the page: {exc})"


@pytest.fixture
def page(browser, lab, request):
    """A fresh context and page; console errors and page errors fail the test."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    request.node._wb_page_errors = errors

    def on_console(msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if not _ignored(msg.text, url, lab.url):
            errors.append(f"console.error: {msg.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.set_default_timeout(30_000)
    yield page

    failed = any(getattr(getattr(request.node, f"_wb_rep_{w}", None), "failed", False)
                 for w in ("setup", "call"))
    if failed:
        print(f"---- the notebook's cells when the test failed ----\n{_cells_state(page)}")
        print(f"---- {lab.dump_kernel_stacks()} kernel(s) asked for their stacks (in the log below) ----")
    context.close()
    lab.reset()
    if failed:
        print(f"---- JupyterLab server log ({lab.log_path}), tail ----\n{lab.log_tail(16000)}")
    late = [] if failed else errors[getattr(request.node, "_wb_checked", 0):]
    assert not late, "the page logged errors after the test body:\n" + "\n".join(late)
