"""Follow a launched run live: the training plots and history table, read from its run folder.

No server and no port: a background thread polls the folder's metrics.jsonl (train/runlog.py)
and, when lines arrived, redraws the same figure the Training dashboard draws. It stops by itself
when the run writes its last line, or with `stop()`.
"""

from __future__ import annotations

import threading

import ipywidgets as W

from .. import plots
from ..train.runlog import RunLog
from .common import STYLE, esc, start_worker, table_html


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
        super().__init__([W.HTML(STYLE), self.status, self.plot, self.table])
        self.add_class("wb-follow")
        self.refresh(force=True)
        self._thread = start_worker(self._watch, name="workbench-follow", stop=self._halt.set)

    def refresh(self, force: bool = False) -> bool:
        """Read new lines and redraw if any arrived (the thread calls it every interval)."""
        if not self.run.poll() and not force:
            return False
        log = self.run
        live = (*log.live_epoch, list(log.live)) if log.live else None
        self.plot.value = plots.png(self._figure.update(log.history, live=live))
        rows = [[r.epoch, f"{r.train_loss:.4f}", _num(r.valid_loss), _num(r.valid_accuracy, 3), r.batches,
                 f"{r.epoch_time_s:.1f}", r.stopped or ""] for r in log.history[-8:]]
        self.table.value = table_html(["epoch", "train loss", "valid loss", "valid acc", "batches", "time s", "note"],
                                      rows) if rows else ""
        d = log.description
        where = f"{d.get('processes', '?')} process(es), global batch {d.get('global_batch_size', '?')}" if d else "starting"
        now = (f"epoch {log.live_epoch[0]} · batch {log.last_batch['batch']}/{log.last_batch['num_batches']}"
               if log.live and log.last_batch else f"{len(log.history)} epochs done")
        state = "finished" if log.finished else "running"
        self.status.value = f'<span class="wb-muted">{esc(str(log.folder))}: {esc(state)} · {esc(where)} · {esc(now)}</span>'
        return True

    def stop(self) -> None:
        """Stop following (the run goes on)."""
        self._halt.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _watch(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.refresh()
            if self.run.finished:
                return


def follow(folder, interval_s: float = 1.0) -> Follow:
    """Live plots of a run launched from `session.to_script()`, read from its run folder."""
    return Follow(folder, interval_s)


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
