"""Pieces every view shares: the message box, safe handlers, escaping, styles, the repaint
throttle, the static snapshot a saved notebook keeps, and background workers (the progress and
busy lines are in busy.py, re-exported here)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import html
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import WorkbenchError

log = logging.getLogger("workbench.widgets")

# Background work of the views (loading, describing backbones, training, following a run).
# They are daemon threads so that a busy view never keeps a kernel from shutting down; but a daemon
# thread still inside torch's or a tokenizer's native code when the interpreter finalises aborts
# the whole process ("terminate called without an active exception", exit status 134). So at exit
# each worker is asked to stop (its `stop` callable) and is waited for, up to EXIT_WAIT_S in all.
EXIT_WAIT_S = 30.0
STOPPING = threading.Event()  # set at interpreter exit: loops between items check it
_WORKERS: weakref.WeakKeyDictionary[threading.Thread, Callable[[], Any] | None] = weakref.WeakKeyDictionary()


def start_worker(target: Callable[..., Any], *args: Any, name: str, stop: Callable[[], Any] | None = None,
                 ) -> threading.Thread:
    """Start `target(*args)` in a daemon thread that interpreter exit stops (`stop()`) and waits for."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    _WORKERS[thread] = stop
    thread.start()
    return thread


@atexit.register
def _stop_workers() -> None:
    STOPPING.set()
    running = [(t, stop) for t, stop in list(_WORKERS.items()) if t.is_alive()]
    for _thread, stop in running:
        if stop is not None:
            try:
                stop()
            except Exception:  # exiting anyway: a failed stop only means a longer wait
                log.debug("stopping %s at exit failed", _thread.name, exc_info=True)
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread, _stop in running:
        thread.join(max(0.0, deadline - time.monotonic()))

# One <style> block per view; every class is prefixed "wb-" so nothing leaks into JupyterLab.
# Text a person reads is at least 13-14 px (a projector); ipywidgets' HTML content has a 28 px
# line height (made for one-line labels) that double-spaces paragraphs, so our blocks set their own.
# Boxes and grids in ipywidgets 8 scroll (`overflow: auto`): our layouts wrap instead, so a narrow
# notebook (file browser open, 150% zoom) gets no nested scrollbars.
# Colours come from JupyterLab's theme variables (with light-theme fallbacks), so text keeps a
# contrast of at least 4.5:1 in the light and the dark theme (tests/browser measures it): secondary
# text is --jp-content-font-color2 (0.54 black on white, 0.7 white on #111), tints are mixed into
# the page's own background instead of being fixed light colours.
STYLE = """<style>
.wb-view .widget-html-content {line-height: 1.45}
.wb-msg {padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 14px; line-height: 1.45;
  color: var(--jp-content-font-color1, rgba(0,0,0,.87))}
.wb-msg-error {background: color-mix(in srgb, var(--jp-error-color1, #d32f2f) 12%, transparent);
  border-left: 4px solid var(--jp-error-color1, #d32f2f)}
.wb-msg-info {background: color-mix(in srgb, var(--jp-brand-color1, #1976d2) 12%, transparent);
  border-left: 4px solid var(--jp-brand-color1, #1976d2)}
.wb-msg-ok {background: color-mix(in srgb, var(--jp-success-color1, #388e3c) 12%, transparent);
  border-left: 4px solid var(--jp-success-color1, #388e3c)}
.wb-table {border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; line-height: 1.4}
.wb-table th, .wb-table td {padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); text-align: right}
.wb-table td {white-space: nowrap}
.wb-table th:first-child, .wb-table td:first-child {text-align: left}
.wb-table td.wb-wrap {text-align: left; white-space: normal; min-width: 8em}
.wb-muted {color: var(--jp-content-font-color2, rgba(0,0,0,.54)); font-size: 13px}
.wb-card {font-size: 14px; line-height: 1.5}
.wb-status-text {font-size: 14px; line-height: 1.4}
.wb-status-paused {color: color-mix(in srgb, var(--jp-warn-color0, #e65100) 70%, var(--jp-content-font-color0, #000));
  font-weight: 600}
.wb-spinner {display: inline-block; box-sizing: border-box; width: 0.95em; height: 0.95em; margin-right: 6px;
  vertical-align: -0.12em; border: 2px solid var(--jp-border-color1, #bdbdbd);
  border-top-color: var(--jp-brand-color1, #1976d2); border-radius: 50%; animation: wb-spin 0.8s linear infinite}
@keyframes wb-spin {to {transform: rotate(360deg)}}
.wb-wrap-row {flex-wrap: wrap; overflow: visible !important; gap: 4px 8px; align-items: center}
.wb-tabs > .lm-TabBar .lm-TabBar-content, .wb-subtabs > .lm-TabBar .lm-TabBar-content {flex-wrap: wrap}
.wb-tabs > .lm-TabBar .lm-TabBar-tab, .wb-subtabs > .lm-TabBar .lm-TabBar-tab {flex: 0 0 auto !important;
  min-width: 0 !important; max-width: none !important; width: auto !important; padding: 0 14px !important}
.wb-tabs > .lm-TabBar, .wb-subtabs > .lm-TabBar {min-height: fit-content}
.wb-view .widget-tab-contents, .wb-view .jupyter-widget-tab-contents {overflow: visible}
.wb-view .lm-TabBar-tab, .wb-view .lm-TabBar-tabLabel, .wb-view .jupyter-widget-Collapse-header {
  color: var(--jp-ui-font-color1, rgba(0,0,0,.87)) !important}
.wb-view .jupyter-button.mod-primary {background-color: var(--jp-brand-color0, #0d47a1); color: #fff}
.wb-view .jupyter-button.mod-danger {background-color: var(--jp-error-color0, #b71c1c); color: #fff}
.wb-view label.widget-label-basic {white-space: normal; overflow-wrap: anywhere}
.wb-narrow {container-type: inline-size}
@container (max-width: 560px) {.wb-narrow .wb-opt {display: none}}
.jp-OutputArea-child:has(.wb-live) + .jp-OutputArea-child:has(.jp-RenderedImage) {display: none}
</style>"""


def close_tree(widget: W.Widget) -> int:
    """Close `widget` and every widget it references (children, layout, style, ...): a view that is
    replaced leaves no models behind for a reloaded page to fetch (docs/ARCHITECTURE.md,
    "Rendering": reloads). Returns how many were closed."""
    stack, seen, closed = [widget], set(), 0
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        for key in w.keys:
            value = getattr(w, key, None)
            stack.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, W.Widget))
        if w.comm is not None:
            w.close()
            closed += 1
    return closed


def esc(value: Any) -> str:
    """Escape anything that came from data or the user before it becomes HTML."""
    return html.escape(str(value), quote=True)


class MessageBox(W.HTML):
    """Shows one message (error, info, ok) in place; empty when there is nothing to say."""

    def show(self, text: str, level: str = "error") -> None:
        self.value = f'{STYLE}<div class="wb-msg wb-msg-{level}">{esc(text)}</div>'

    def clear(self) -> None:
        self.value = ""

    @property
    def text(self) -> str:
        """The message as plain text (for tests and logs)."""
        import re

        return html.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", "", self.value, flags=re.S)).strip()


def guarded(message_box_attr: str = "message") -> Callable:
    """Decorate a widget handler: WorkbenchErrors show in the view's message box; anything else
    shows there too and is re-raised, so ipywidgets logs it and the widget tests fail on it."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self, *args: Any, **kwargs: Any) -> Any:
            box: MessageBox = getattr(self, message_box_attr)
            try:
                return fn(self, *args, **kwargs)
            except WorkbenchError as exc:
                box.show(str(exc))
            except Exception as exc:
                box.show(f"Unexpected error ({type(exc).__name__}): {exc}")
                raise
            return None

        return wrapper

    return decorate


def table_html(header: list[str], rows: list[list[Any]], css_class: str = "wb-table", wrap: tuple[int, ...] = (),
               optional: tuple[int, ...] = ()) -> str:
    """An HTML table with every cell escaped; columns in `wrap` may break lines (long notes), columns
    in `optional` are left out where the table's box is narrower than 560 px (a notebook at 150%
    zoom with the file browser open), so the others still fit."""
    def attrs(i: int) -> str:
        classes = " ".join(c for c, on in (("wb-wrap", i in wrap), ("wb-opt", i in optional)) if on)
        return f' class="{classes}"' if classes else ""

    head = "".join(f"<th{attrs(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{attrs(i)}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    table = f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'{STYLE}<div class="wb-narrow">{table}</div>' if optional else STYLE + table


def readable_on(background: str) -> str:
    """"black" or "white", whichever contrasts more with the `background` colour (WCAG luminance):
    a cell's number stays readable (>= 4.5:1 where either can reach it) on any shade."""
    from matplotlib.colors import to_rgb

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in to_rgb(background))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def fmt_params(n: int) -> str:
    """A parameter count for people: 770, 12.3 k, 22.7 M."""
    n = int(n)
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else f"{n:,}"


def fmt_share(part: float, whole: float) -> str:
    """A percentage that never reads 0.0% for something that is not zero (770 of 22.7 M: 0.0034%)."""
    if whole <= 0 or part <= 0:
        return "0%"
    share = 100 * part / whole
    if share >= 99.95 and part < whole:
        return ">99.9%"
    if share >= 10:
        return f"{share:.0f}%"
    if share >= 0.1:
        return f"{share:.1f}%"
    return f"{share:.2g}%"


def fmt_seconds(s: float) -> str:
    """Seconds for a status line: '0.4 s', '12 s', '3 min 05 s'; '' when unknown."""
    if s is None or not math.isfinite(s) or s < 0:
        return ""
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def fmt_lr(lr: float | None) -> str:
    return "–" if lr is None else f"{lr:.1e}"


class Painter:
    """Coalesces a view's repaints so that cheap epochs stay cheap.

    `request()` marks the view stale and paints at once when it is due; during a run (`hold()`)
    nothing is due until `interval` seconds have passed, and afterwards a paint must also fit in
    `budget` of the wall time (a 70 ms plot every >= 2.3 s at 3%). `flush()` paints what is stale
    (the end of a run). A view that is not shown (`visible = False`, e.g. a hidden tab) only
    marks itself stale and paints when it is shown again. Paints from the training thread and
    the kernel's main thread are serialised.
    """

    def __init__(self, paint: Callable[[], None], interval: float = 2.0, budget: float = 0.03) -> None:
        self._paint, self.interval, self.budget = paint, interval, budget
        self._lock = threading.RLock()
        self.dirty = False
        self._visible = True
        self._next = 0.0
        self.paints = 0  # how many paints ran (tests and benchmarks read it)
        self.seconds = 0.0  # time spent painting

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._visible = bool(value)
        if self._visible:
            self.flush()

    def hold(self) -> None:
        """A run starts: paint nothing until `interval` from now (flush() paints its end)."""
        self._next = max(self._next, time.perf_counter() + self.interval)

    def request(self) -> None:
        self.dirty = True
        if self._visible and time.perf_counter() >= self._next:
            self.paint()

    def flush(self) -> None:
        if self.dirty and self._visible:
            self.paint()

    def paint(self) -> None:
        with self._lock:
            self.dirty = False
            start = time.perf_counter()
            try:
                self._paint()
            finally:
                cost = time.perf_counter() - start
                self.paints += 1
                self.seconds += cost
                self._next = time.perf_counter() + max(self.interval, cost / self.budget)


# A 1x1 transparent PNG: the static output's placeholder before the first epoch.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


class StaticSnapshot:
    """A plain image/png output under a view, updated when the view paints its plot.

    Widget state is not saved with a notebook by default, so a reopened notebook, nbviewer or
    GitHub would show nothing where the live plot was; this output keeps the last plot there.
    While the live view is rendered, its STYLE hides this output (a CSS rule on the output area:
    the cell holding a `.wb-live` view hides the image output right after it), so the live
    notebook shows each plot once and the saved one still shows the last plot without a kernel.
    """

    def __init__(self, width: int = 640) -> None:
        self.width = width
        self.png: bytes | None = None
        self._handle = None

    def _image(self):
        from IPython.display import Image

        return Image(self.png or BLANK_PNG, width=self.width if self.png else 1)

    def show(self) -> None:
        """Publish the output (call from the cell that displays the view)."""
        from IPython.display import display

        self._handle = display(self._image(), display_id=True)

    def update(self, png: bytes) -> None:
        self.png = png
        if self._handle is not None:
            self._handle.update(self._image())


def display_with_snapshot(widget: W.Widget, snapshot: StaticSnapshot) -> None:
    """Display `widget` (marked `wb-live`: its style hides the snapshot while it is rendered), then
    its static snapshot output right below it."""
    from IPython.display import display

    widget.add_class("wb-live")
    display(widget._repr_mimebundle_(), raw=True)
    snapshot.show()


@contextlib.contextmanager
def errors_shown(box: MessageBox, what: str):
    """In a view's worker thread: a WorkbenchError shows in `box`; anything else shows there too
    and is logged (the widget tests fail on a logged error)."""
    try:
        yield
    except WorkbenchError as exc:
        box.show(str(exc))
    except Exception as exc:
        box.show(f"Unexpected error ({type(exc).__name__}): {exc}")
        log.exception("%s failed", what)


# The progress line and the busy line live in busy.py (they use esc and fmt_seconds above).
from .busy import TASK_WORDS, BusyLine, ProgressLine, progress_words  # noqa: E402,F401
