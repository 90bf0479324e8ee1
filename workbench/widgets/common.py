"""Pieces every view shares: the message box, safe handlers, escaping, styles."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import WorkbenchError

log = logging.getLogger("workbench.widgets")

# One <style> block per view; every class is prefixed "wb-" so nothing leaks into JupyterLab.
STYLE = """<style>
.wb-msg {padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 13px; line-height: 1.4}
.wb-msg-error {background: #fdecea; border-left: 4px solid #d32f2f; color: #611a15}
.wb-msg-info {background: #e8f4fd; border-left: 4px solid #1976d2; color: #0d3c61}
.wb-msg-ok {background: #edf7ed; border-left: 4px solid #2e7d32; color: #1e4620}
.wb-table {border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums}
.wb-table th, .wb-table td {padding: 2px 8px; border-bottom: 1px solid #e0e0e0; text-align: right}
.wb-table th:first-child, .wb-table td:first-child {text-align: left}
.wb-muted {color: #757575; font-size: 12px}
.wb-card {font-size: 13px; line-height: 1.5}
</style>"""


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


def table_html(header: list[str], rows: list[list[Any]], css_class: str = "wb-table") -> str:
    """An HTML table with every cell escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'{STYLE}<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


# A 1x1 transparent PNG: the static output's placeholder before the first epoch.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


class StaticSnapshot:
    """A plain image/png output under a view, updated at each epoch end.

    Widget state is not saved with a notebook by default, so a reopened notebook, nbviewer or
    GitHub would show nothing where the live plot was; this output keeps the last plot there.
    """

    def __init__(self, width: int = 640) -> None:
        self.width = width
        self.png: bytes | None = None
        self._handle = None

    def show(self) -> None:
        """Publish the output (call from the cell that displays the view)."""
        from IPython.display import Image, display

        self._handle = display(Image(self.png or BLANK_PNG, width=self.width if self.png else 1), display_id=True)

    def update(self, png: bytes) -> None:
        self.png = png
        if self._handle is not None:
            from IPython.display import Image

            self._handle.update(Image(png, width=self.width))


def display_with_snapshot(widget: W.Widget, snapshot: StaticSnapshot) -> None:
    """Display `widget`, then its static snapshot output below it."""
    from IPython.display import display

    display(widget._repr_mimebundle_(), raw=True)
    snapshot.show()
