"""A launched run's folder, read as it grows: the epochs done, the batches of the one in progress.

The main process of a launched script (train/launch.py) appends one JSON line per epoch and a
throttled line per batch to metrics.jsonl; `RunLog.poll()` reads only the bytes added since the
last read, and leaves a half-written last line for the next one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError
from .records import EpochResult


class RunLog:
    """The history of a run folder's metrics.jsonl, and the epoch in progress."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise DataNotFoundError(f"No run folder at {str(self.folder)!r}: pass the --out folder of the launched "
                                    "script (it appears when the run starts).")
        self.path = self.folder / "metrics.jsonl"
        self._offset, self._partial = 0, b""
        self.history: list[EpochResult] = []
        self.live: list[tuple[int, float]] = []  # (batch, loss) of the epoch in progress
        self.live_epoch: tuple[int, int] = (0, 1)  # (epoch, batches in it)
        self.last_batch: dict[str, Any] | None = None
        self.finished = False

    @property
    def description(self) -> dict[str, Any]:
        """run.json: processes, batch sizes, LR scaling (empty until the run has written it)."""
        path = self.folder / "run.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def poll(self) -> bool:
        """Read what was appended since the last poll; True when anything new arrived."""
        if not self.path.is_file():
            return False
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        if not chunk:
            return False
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                self._apply(json.loads(line))
        return bool(lines)

    def _apply(self, record: dict[str, Any]) -> None:
        kind = record.pop("type", None)
        record.pop("time", None)
        if kind == "batch":
            if (record["epoch"], record["num_batches"]) != self.live_epoch:
                self.live, self.live_epoch = [], (record["epoch"], record["num_batches"])
            self.live.append((record["batch"], record["loss"]))
            self.last_batch = record
        elif kind == "epoch":
            self.history.append(EpochResult.from_dict(record))
            self.live = []
        elif kind == "end":
            self.finished = True
