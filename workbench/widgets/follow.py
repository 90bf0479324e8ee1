"""Follow a launched run live: the training plots and history table, read from its run folder.

No server and no port: a background thread polls the folder's metrics.jsonl (train/runlog.py)
and, when lines arrived, redraws the same figure the Training dashboard draws. It stops by itself
when the run writes its last line, or with `stop()`. Bad lines and an unreadable run.json are
skipped and reported on the status line; the watcher never dies of them, and the status says
"running" only while it follows.
"""

from __future__ import annotations

import threading

import ipywidgets as W

from .. import plots
from ..train.runlog import RunLog
from .common import STYLE, esc, log, start_worker, table_html


class Follow(W.VBox):
    """`wb.follow(run_folder)`: live plots of a run launched with `accelerate launch`."""

    def __init__(self, folder, interval_s: float = 1.0) -> None:
        self.run = RunLog(folder)
        self.interval_s = interval_s
        self.status = W.HTML()
        self.status.add_class("wb-follow-status")
        self.plot = W.Image(format="png", layout=W.Layout(width="100%", max_width="1000px"))
        self.table = W.HTML()
        self._figure = plots.TrainingPlot()
        self._halt = threading.Event()
        self.error: str | None = None  # why the last refresh failed (shown; the watcher goes on)
        self._thread: threading.Thread | None = None
        super().__init__([W.HTML(STYLE), self.status, self.plot, self.table])
        self.add_class("wb-follow")
        self.refresh(force=True)
        self._thread = start_worker(self._watch, name="workbench-follow", stop=self._halt.set)

    @property
    def following(self) -> bool:
        """True while the watcher thread reads the folder."""
        return self._thread is not None and self._thread.is_alive() and not self._halt.is_set()

    def refresh(self, force: bool = False) -> bool:
        """Read new lines and redraw if any arrived (the thread calls it every interval). Never
        raises: a failure is shown on the status line and the next refresh tries again."""
        try:
            changed = self._refresh(force)
            self.error = None
            return changed
        except Exception as exc:  # noqa: BLE001 - a bug or a file we cannot draw: say so, keep following
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            log.warning("wb.follow could not show %s: %s", self.run.folder, self.error)
            self._show_status()
            return False

    def _refresh(self, force: bool) -> bool:
        if not self.run.poll() and not force:
            self._show_status()  # the run.json, the watcher's state: they may change without new lines
            return False
        run = self.run
        live = (*run.live_epoch, list(run.live)) if run.live else None
        self.plot.value = plots.png(self._figure.update(run.history, live=live))
        rows = [[r.epoch, f"{r.train_loss:.4f}", _num(r.valid_loss), _num(r.valid_accuracy, 3), r.batches,
                 f"{r.epoch_time_s:.1f}", r.stopped or ""] for r in run.history[-8:]]
        self.table.value = table_html(["epoch", "train loss", "valid loss", "valid acc", "batches", "time s", "note"],
                                      rows) if rows else ""
        self._show_status()
        return True

    def _show_status(self) -> None:
        run = self.run
        d = run.description
        where = f"{d.get('processes', '?')} process(es), global batch {d.get('global_batch_size', '?')}" if d else "starting"
        now = (f"epoch {run.live_epoch[0]} · batch {run.last_batch['batch']}/{run.last_batch['num_batches']}"
               if run.live and run.last_batch else f"{len(run.history)} epochs done")
        state = ("finished" if run.finished else "running" if self._thread is None or self.following
                 else "not following (stopped): call wb.follow(folder) again to go on")
        notes = []
        if run.problems:
            notes.append(f"{len(run.problems)} problem(s) reading the folder, skipped; last: {run.problems[-1]}")
        if self.error:
            notes.append(f"could not draw: {self.error}")
        extra = "".join(f'<br><span class="wb-follow-problem" style="color:#8a5a00">{esc(n)}</span>' for n in notes)
        self.status.value = (f'<span class="wb-muted">{esc(str(run.folder))}: {esc(state)} · {esc(where)} · '
                             f"{esc(now)}</span>{extra}")

    def stop(self) -> None:
        """Stop following (the run goes on)."""
        self._halt.set()
        self._show_status()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _watch(self) -> None:
        """Poll until the run ends or stop(); refresh() never raises, so the loop cannot die of a bad file."""
        try:
            while not self._halt.wait(self.interval_s):
                self.refresh()
                if self.run.finished:
                    return
        finally:
            self._halt.set()
            try:
                self._show_status()
            except Exception:  # noqa: BLE001 - the last word on the status line must not kill the thread's exit
                log.exception("wb.follow: status line")


def follow(folder, interval_s: float = 1.0) -> Follow:
    """Live plots of a run launched from `session.to_script()`, read from its run folder."""
    return Follow(folder, interval_s)


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
