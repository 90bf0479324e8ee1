"""A launched run's folder, read as it grows: the epochs done, the batches of the one in progress.

The main process of a launched script (train/launch.py) appends one JSON line per epoch and a
throttled line per batch to metrics.jsonl; `RunLog.poll()` reads only the bytes added since the
last read, and leaves a half-written last line for the next one.

A run folder is read, never trusted: a line that is not a record (a run killed mid-write leaves half
a line, to which its resumed run appends the next one; an edited or truncated file) is skipped and
reported in `problems`, the records around it are kept, and an unreadable run.json reads as empty.
A resumed run writes the epochs after its checkpoint again: a record for an epoch already seen
replaces it and the ones after it.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, WorkbenchError
from .records import EpochResult

RECORD_START = b'{"type"'  # how every line the run writes begins (train/launch.py, RunWriter.line)
BATCH_FIELDS = {"epoch": numbers.Integral, "batch": numbers.Integral, "num_batches": numbers.Integral,
                "loss": numbers.Real}


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
        self.problems: list[str] = []  # lines skipped and files not read, in words, oldest first
        self._line = 0  # lines read so far (for the problems' line numbers)

    @property
    def description(self) -> dict[str, Any]:
        """run.json: processes, batch sizes, LR scaling (empty until the run has written it, or when
        it cannot be read: then `problems` says why)."""
        path = self.folder / "run.json"
        if not path.is_file():
            return {}
        try:
            d = json.loads(path.read_bytes())
            if not isinstance(d, dict):
                raise ValueError(f"it holds a {type(d).__name__}, not an object")
        except (OSError, ValueError) as exc:
            self._report(f"run.json cannot be read ({type(exc).__name__}: {exc}); the run's description is not shown")
            return {}
        return d

    def poll(self) -> bool:
        """Read what was appended since the last poll; True when anything new arrived. Lines that
        are not records are skipped and reported in `problems`; reading never raises for them."""
        try:
            if not self.path.is_file():
                return False
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                if size < self._offset:  # the file was replaced or truncated: read it from the start
                    self._report("metrics.jsonl got shorter (replaced or truncated); read again from its start")
                    self._restart()
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError as exc:
            self._report(f"metrics.jsonl cannot be read ({type(exc).__name__}: {exc}); trying again")
            return False
        if not chunk:
            return False
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._line += 1
            if line.strip():
                self._read_line(line)
        return bool(lines)

    def _read_line(self, line: bytes) -> None:
        """One line: a record, or a half line with the resumed run's record after it, or junk."""
        try:
            self._apply(json.loads(line))
            return
        except (ValueError, TypeError, KeyError, WorkbenchError) as exc:
            resumed = line.find(RECORD_START, 1)
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
        if resumed > 0:
            self._report(f"line {self._line}: a half-written line (the run stopped while writing it) skipped; the "
                         "record after it is read")
            self._read_line(line[resumed:])
            return
        self._report(f"line {self._line}: not a metrics record, skipped ({why})")

    def _apply(self, record: Any) -> None:
        """Check a record completely, then take it (a bad one changes nothing)."""
        if not isinstance(record, dict):
            raise TypeError(f"a {type(record).__name__}, not an object")
        record = dict(record)
        kind = record.pop("type", None)
        record.pop("time", None)
        if kind == "batch":
            bad = [k for k, t in BATCH_FIELDS.items() if not isinstance(record.get(k), t) or isinstance(record.get(k), bool)]
            if bad:
                raise TypeError(f"batch record without a number in {', '.join(bad)}")
            if (record["epoch"], record["num_batches"]) != self.live_epoch:
                self.live, self.live_epoch = [], (record["epoch"], record["num_batches"])
            self.live.append((record["batch"], float(record["loss"])))
            self.last_batch = record
        elif kind == "epoch":
            result = EpochResult.from_dict(record)
            check_epoch(result)
            # a resumed run trains the epochs after its checkpoint again: they replace what was read
            self.history = [r for r in self.history if r.epoch < result.epoch] + [result]
            self.live = []
        elif kind == "end":
            self.finished = True
        else:
            raise KeyError(f"unknown record type {kind!r}")

    def _report(self, problem: str) -> None:
        if problem not in self.problems:  # run.json is read at every refresh: say it once
            self.problems.append(problem)

    def _restart(self) -> None:
        self._offset, self._partial, self._line = 0, b"", 0
        self.history, self.live, self.last_batch, self.finished = [], [], None, False


def _number(value: Any, whole: bool = False) -> bool:
    kind = numbers.Integral if whole else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def check_epoch(r: EpochResult) -> None:
    """An epoch record's fields have the types the plots and tables read (TypeError naming the first that does not)."""
    checks = {
        "epoch": _number(r.epoch, whole=True) and r.epoch >= 1,
        "train_loss": _number(r.train_loss), "train_accuracy": _number(r.train_accuracy),
        "valid": all(v is None or _number(v) for v in (r.valid_loss, r.valid_accuracy, r.valid_macro_f1)),
        "lrs": isinstance(r.lrs, dict) and all(isinstance(k, str) and _number(v) for k, v in r.lrs.items()),
        "trainable": all(isinstance(n, str) for n in r.trainable),
        "epoch_time_s": _number(r.epoch_time_s), "samples_per_s": _number(r.samples_per_s),
        "batches": _number(r.batches, whole=True) and _number(r.num_batches, whole=True),
        "stopped": r.stopped is None or isinstance(r.stopped, str),
        "batch_losses": all(_number(v) for v in (*r.batch_losses, *r.batch_lrs)),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise TypeError(f"epoch record with bad {', '.join(bad)}")
