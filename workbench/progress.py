"""Progress bars for `session.fit()` in code cells and terminals, from the session's events.

tqdm.auto (one well-kept library) draws a widget in a notebook and text in a terminal. Bars are on
in a notebook kernel and in an interactive terminal, off in pipes and CI logs; the environment
variable WORKBENCH_PROGRESS=0/1, or `session.fit(n, progress=False)`, decides otherwise. Widgets
show their own progress and train with progress=False. tqdm imports IPython only where a kernel
already runs, so a headless script loads no UI module.

In a notebook a finished bar becomes a plain line of text (its final tqdm line, e.g. "epoch 3
(cached features): 100%|...| 63/63 [00:00<00:00, ...]"): widget state is not saved with a notebook,
so a widget bar would reopen as its first repr, "0%", in a saved or executed notebook. Each bar is
displayed with a display id and, when it closes, that output is replaced by its last line.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ENV = "WORKBENCH_PROGRESS"


def enabled_by_default() -> bool:
    """On in a notebook kernel or a terminal; off when output goes to a file or a pipe."""
    value = os.environ.get(ENV)
    if value is not None:
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class ProgressBars:
    """One bar per epoch (its batches, then its result) and one per other long task (the
    feature-cache build, the valid pass, the LR range test), for as long as it is attached."""

    def __init__(self, session) -> None:
        from tqdm.auto import tqdm

        self._tqdm, self._session = tqdm, session
        self._epoch: Any = None
        self._tasks: dict[str, Any] = {}
        self._handlers = {"epoch_start": self._epoch_start, "batch_end": self._batch_end,
                          "epoch_end": self._epoch_end, "progress": self._progress, "fit_end": self._fit_end}

    def __enter__(self) -> ProgressBars:
        for event, fn in self._handlers.items():
            self._session.on(event, fn)
        return self

    def __exit__(self, *exc: object) -> None:
        for event, fn in self._handlers.items():
            self._session.off(event, fn)
        self._fit_end(None)

    def _bar(self, **kwargs: Any) -> Any:
        return open_bar(self._tqdm, **kwargs)

    def _close(self, bar: Any) -> None:
        close_bar(bar)

    def _epoch_start(self, e) -> None:
        path = "cached features" if e.fast_path else "full forward"
        self._epoch = self._bar(total=e.num_batches, desc=f"epoch {e.epoch} ({path})", unit="batch", leave=True)

    def _batch_end(self, b) -> None:
        if self._epoch is not None:
            self._epoch.n = b.batch
            self._epoch.set_postfix_str(f"loss {b.loss:.4f}")  # refreshes the bar

    def _epoch_end(self, r) -> None:
        if self._epoch is None:
            return
        self._epoch.n = r.batches
        valid = f", valid loss {r.valid_loss:.4f}, acc {r.valid_accuracy:.3f}" if r.valid_loss is not None else ""
        self._epoch.set_postfix_str(f"train loss {r.train_loss:.4f}{valid}{'; ' + r.stopped if r.stopped else ''}")
        self._close(self._epoch)
        self._epoch = None

    def _progress(self, p) -> None:
        bar = self._tasks.get(p.task)
        if bar is None:
            bar = self._tasks[p.task] = self._bar(total=p.total, desc=p.task, unit="batch", leave=False)
        bar.n = p.done
        bar.refresh()
        if p.done >= p.total:
            self._close(bar)
            del self._tasks[p.task]

    def _fit_end(self, _) -> None:
        for bar in [*self._tasks.values(), *([self._epoch] if self._epoch is not None else [])]:
            self._close(bar)
        self._tasks, self._epoch = {}, None


def open_bar(tqdm_class: Any, **kwargs: Any) -> Any:
    """A tqdm bar; in a notebook, displayed under a display id so close_bar() can leave its last line."""
    notebook = False
    if "IPython" in sys.modules:  # tqdm.auto picks its notebook bar only where IPython runs
        from tqdm.notebook import tqdm_notebook

        notebook = isinstance(tqdm_class, type) and issubclass(tqdm_class, tqdm_notebook)
    if not notebook:
        return tqdm_class(**kwargs)
    from IPython.display import display

    bar = tqdm_class(display=False, **{**kwargs, "leave": True})
    bar._wb_handle = display(bar.container, display_id=True)
    return bar


def close_bar(bar: Any) -> None:
    """Close a bar from open_bar; in a notebook its output becomes its final line as plain text."""
    bar.close()
    handle = getattr(bar, "_wb_handle", None)
    if handle is not None:
        line = str(bar)  # tqdm's final line: "desc: 100%|██████████| 63/63 [00:01<00:00, 45.1batch/s]"
        handle.update({"text/plain": line}, raw=True)
