"""ProgressLine and BusyLine: what a view is doing, at once, with a count when there is one.

Every action that takes over 0.3 s says at once what it is doing (docs/ARCHITECTURE.md,
"Rendering"): the dashboard's progress line follows training and the session's `progress` events;
a view's BusyLine shows a spinner and words the moment a slow action starts (an exact head fit,
the first Why?, a t-SNE map, a cleanlab ranking, a comparison, loading a backbone) and a bar once
the session's `progress` events give a count.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator

import ipywidgets as W

from .common import esc, fmt_seconds

# What the core's `progress` events are doing, in words (Progress.task -> a phrase).
TASK_WORDS = {
    "features (train)": "computing the backbone's features once, train split: batch {n} (later epochs reuse them)",
    "features (valid)": "computing the backbone's features once, valid split: batch {n}",
    "validation": "validating: batch {n}",
    "decoding images (train)": "decoding the train images: chunk {n}",
    "decoding images (valid)": "decoding the valid images: chunk {n}",
    "LR range test": "LR range test: step {n} (one step per learning rate)",
    "exact head fit": "fitting the head exactly (logistic regression by L-BFGS): solve {n}",
    "disk cache (train)": "reading the backbone's features (train split) from the disk cache, computed by an "
                          "earlier run or kernel",
    "disk cache (valid)": "reading the backbone's features (valid split) from the disk cache",
}


class ProgressLine(W.HBox):
    """A bar and a line of words beside it: what is happening, how far, how long is left."""

    def __init__(self) -> None:
        self.bar = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(flex="1 1 160px", max_width="360px",
                                                                          min_width="120px"))
        self.bar.add_class("wb-progress")
        self.label = W.HTML(layout=W.Layout(flex="1 1 260px", min_width="0"))
        self.label.add_class("wb-status")
        super().__init__([self.bar, self.label], layout=W.Layout(width="auto"))
        self.add_class("wb-wrap-row")
        self.add_class("wb-progress-line")

    def show(self, words: str, done: int | None = None, total: int | None = None, eta_s: float | None = None,
             style: str = "", css: str = "", spin: bool = False) -> None:
        """`words` (escaped here; "{n}" is replaced by "done/total"), `done` of `total` as the bar, and
        the time left when known. `spin`: a spinner before the words (work under way); without a
        count the bar is hidden then, since it could only stand still."""
        count = ""
        if total is not None:
            self.bar.max = max(int(total), 1)
            self.bar.value = min(int(done or 0), self.bar.max)
            count = f"{done or 0:,}/{total:,}"
        self.bar.bar_style = style
        self.bar.layout.display = "none" if spin and total is None else ""
        words = words.replace("{n}", count)  # the count shows only where the words ask for it
        eta = fmt_seconds(eta_s) if eta_s is not None else ""
        tail = f" · about {eta} left" if eta and done != total else ""
        spinner = '<span class="wb-spinner" role="status" aria-label="working"></span>' if spin else ""
        self.label.value = f'<span class="wb-status-text {css}">{spinner}{esc(words)}{esc(tail)}</span>'

    @property
    def spinning(self) -> bool:
        return "wb-spinner" in self.label.value

    def text(self) -> str:
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.label.value)).strip()


def progress_words(p) -> str:
    """A `progress` event in words with its count ("{n}" stands for done/total)."""
    words = TASK_WORDS.get(p.task, p.task)
    return words if "{n}" in words else words + ": {n}"


class BusyLine(ProgressLine):
    """Says at once what a slow action is doing: a spinner and words the moment it starts, a bar
    once the session's `progress` events give a count (the feature cache, an exact head fit, ...),
    and nothing once it is done. Hidden while idle.

        with self.busy.working("drawing the t-SNE map of 1,000 samples", session):
            ...  # the work; a click handler's trait changes reach the page while it runs

    From a click handler the words show before the work starts (widget messages go out on the
    kernel's I/O thread while the handler computes), so a wait of seconds is never silent.
    """

    def __init__(self, session=None) -> None:
        super().__init__()
        self.session = session
        self.words = ""
        self.layout.display = "none"
        self.add_class("wb-busy")

    @contextlib.contextmanager
    def working(self, words: str, session=None) -> Iterator[BusyLine]:
        session = session if session is not None else self.session
        self.start(words)
        follow = session.on("progress", self._on_progress) if hasattr(session, "off") else None
        try:
            yield self
        finally:
            if follow is not None:
                session.off("progress", follow)
            self.finish()

    def start(self, words: str) -> None:
        self.words = words
        self.layout.display = ""
        self.show(words + "…", spin=True)

    def finish(self) -> None:
        self.words = ""
        self.layout.display = "none"
        self.show("")

    @property
    def busy(self) -> bool:
        return self.layout.display != "none"

    def _on_progress(self, p) -> None:
        self.show(f"{self.words} · {progress_words(p)}", p.done, p.total, p.eta_s, style="info", spin=True)
