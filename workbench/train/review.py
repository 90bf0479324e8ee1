"""The verify queue: decisions about training labels, and the relabels training uses.

A person reviews the train samples the label-issue signals point at and decides, per sample:
`flag` (looks wrong, to check), `keep` (checked: the label is right) or `relabel` (the right class).
Flags and keeps change nothing; a relabel is an override of the data's label that training uses from
the next epoch on (the data itself is never changed). The Session owns this state
(`session.review`): it is in `state_dict()` and checkpoints, and `session.relabel` records each relabel
where it took effect, so `to_code()` replays it. Nothing here deletes a sample.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import CheckpointError, ConfigError, DataError, suggest
from ..safety import spreadsheet_safe
from ..validate import split_position

DECISIONS = ("flag", "keep", "relabel")
COLUMNS = ["id", "sample", "given_label", "label_now", "decision", "new_label", "status", "note"]


class LabelReview:
    """Decisions per train sample, the relabels in effect, and those waiting for the next epoch."""

    def __init__(self, data) -> None:
        self.classes = list(data.classes)
        self.given = np.asarray(data.train.labels, dtype=np.int64)  # the data's labels (never changed)
        self._sample_id = data.train.sample_id
        self.decisions: dict[int, dict[str, Any]] = {}  # id -> {"decision", "label" (index or None), "note"}
        self.overrides: dict[int, int] = {}  # id -> class index training uses instead of the given one
        self.pending: dict[int, int] = {}  # relabels asked for while training ran: applied at the next epoch
        self.since: dict[int, int] = {}  # id -> first epoch that trained on the override
        self._tensors: dict[tuple, torch.Tensor] = {}

    # ---- checks (nothing changes until they pass) -------------------------------------------------
    def check_ids(self, ids: Any) -> list[int]:
        """Train positions as ints; DataError for anything else."""
        items = [ids] if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool) else ids
        try:
            items = list(items)
        except TypeError:
            raise DataError(f"ids must be a train position or a list of them, got {type(ids).__name__}.") from None
        out = [split_position(i, len(self.given), "train", "the ids of errors.dynamics() and the training-dynamics map")
               for i in items]
        if not out:
            raise DataError("No ids given: pass at least one train position.")
        return out

    def check_label(self, label: Any) -> int:
        """A class name or index -> the index; ConfigError naming the classes otherwise."""
        if isinstance(label, str):
            if label not in self.classes:
                raise ConfigError(f"Unknown class {label!r}.{suggest(label, self.classes)} "
                                  f"Classes: {', '.join(map(repr, self.classes[:20]))}.")
            return self.classes.index(label)
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
                or not 0 <= int(label) < len(self.classes):
            raise ConfigError(f"label={label!r} must be a class name or an index 0..{len(self.classes) - 1}.")
        return int(label)

    def check_changes(self, ids: Any, label: Any = None) -> dict[int, int]:
        """`relabel(ids, label)` or `relabel({id: label, ...})` -> {id: class index}, all checked."""
        if isinstance(ids, Mapping):
            if label is not None:
                raise ConfigError("Give either a {id: label} dict or ids and one label, not both.")
            return {i: self.check_label(v) for i, v in zip(self.check_ids(list(ids)), ids.values())}
        if label is None:
            raise ConfigError("relabel needs the new label: session.relabel(ids, 'cat') or session.relabel({12: 'cat'}).")
        index = self.check_label(label)
        return {i: index for i in self.check_ids(ids)}

    @staticmethod
    def check_decision(decision: str) -> str:
        if decision not in DECISIONS:
            raise ConfigError(f"decision={decision!r} is unknown.{suggest(str(decision), DECISIONS)} "
                              f"Use one of: {', '.join(DECISIONS)}.")
        return decision

    # ---- changes (called once the checks passed) --------------------------------------------------
    def with_overrides(self, changes: dict[int, int]) -> dict[int, int]:
        """The overrides after `changes` (a change back to the given label removes its override)."""
        out = dict(self.overrides)
        for i, c in changes.items():
            if c == self.given[i]:
                out.pop(i, None)
            else:
                out[i] = c
        return out

    def apply(self, overrides: dict[int, int], changes: dict[int, int], first_epoch: int) -> None:
        """Swap in new overrides (built by with_overrides) from `first_epoch` on."""
        self.overrides = overrides
        for i in changes:
            self.pending.pop(i, None)
            if i in overrides:
                self.since[i] = first_epoch
            else:
                self.since.pop(i, None)
        self._tensors.clear()

    def decide(self, ids: list[int], decision: str, label: int | None = None, note: str = "") -> None:
        for i in ids:
            self.decisions[i] = {"decision": decision, "label": label, "note": str(note)}

    def forget(self, ids: list[int]) -> None:
        """Drop the decisions about `ids` (a relabel in effect stays: relabel back to undo it)."""
        for i in ids:
            self.decisions.pop(i, None)

    # ---- the labels training uses --------------------------------------------------------------------
    def labels(self) -> np.ndarray:
        """The train labels training uses now: the data's, with the overrides in effect."""
        out = self.given.copy()
        for i, c in self.overrides.items():
            out[i] = c
        return out

    def apply_to(self, base: torch.Tensor) -> torch.Tensor:
        """`base` (the data's train labels on some device) with the overrides; built once per change."""
        if not self.overrides:
            return base
        key = (base.device, base.data_ptr())
        if key not in self._tensors:
            ids = torch.as_tensor(list(self.overrides), dtype=torch.long, device=base.device)
            values = torch.as_tensor(list(self.overrides.values()), dtype=base.dtype, device=base.device)
            self._tensors = {key: base.clone().index_put_((ids,), values)}
        return self._tensors[key]

    # ---- reading and export ------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """One row per decided sample: id, sample (file or row id), given_label, label_now, decision,
        new_label, status ("in effect since epoch k" / "applies at the next epoch" / ""), note."""
        rows = []
        for i in sorted(set(self.decisions) | set(self.overrides) | set(self.pending)):
            d = self.decisions.get(i, {"decision": "relabel", "label": self.overrides.get(i), "note": ""})
            new = self.pending.get(i, self.overrides.get(i, d["label"]))
            if i in self.pending:
                status = "applies at the next epoch"
            elif i in self.overrides:
                status = f"in effect since epoch {self.since.get(i, '?')}"
            else:
                status = ""
            rows.append({"id": i, "sample": self._sample_id(i), "given_label": self.classes[self.given[i]],
                         "label_now": self.classes[self.overrides.get(i, self.given[i])], "decision": d["decision"],
                         "new_label": "" if new is None else self.classes[new], "status": status, "note": d["note"]})
        return pd.DataFrame(rows, columns=COLUMNS)

    def export(self, path) -> Path:
        """Write the queue as CSV (frame()'s columns); cells a spreadsheet would run are neutralised."""
        path = Path(path).expanduser()
        table = self.frame()
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for row in table.itertuples(index=False):
                    writer.writerow([spreadsheet_safe(v) for v in row])
        except OSError as exc:
            raise DataError(f"Cannot write {str(path)!r} ({exc.strerror or exc}). Choose a path you can write to.") from exc
        return path

    def __len__(self) -> int:
        return len(set(self.decisions) | set(self.overrides) | set(self.pending))

    def __repr__(self) -> str:
        counts = pd.Series([d["decision"] for d in self.decisions.values()]).value_counts().to_dict()
        return (f"LabelReview({len(self)} samples: {counts or 'no decisions'}; {len(self.overrides)} relabels in effect, "
                f"{len(self.pending)} waiting for the next epoch)")

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain JSON values (part of Session.state_dict(); session.json in a checkpoint)."""
        return {"decisions": [[i, d["decision"], d["label"], d["note"]] for i, d in sorted(self.decisions.items())],
                "overrides": [[i, c, self.since.get(i)] for i, c in sorted(self.overrides.items())],
                "pending": [[i, c] for i, c in sorted(self.pending.items())]}

    @classmethod
    def from_state(cls, d: Any, data) -> LabelReview:
        """Rebuilt and checked against `data` (CheckpointError); None gives an empty queue."""
        out = cls(data)
        if d is None:
            return out
        try:
            for i, decision, label, note in d["decisions"]:
                [i] = out.check_ids([i])
                out.decisions[i] = {"decision": out.check_decision(decision),
                                    "label": None if label is None else out.check_label(label), "note": str(note)}
            for i, c, since in d["overrides"]:
                [i] = out.check_ids([i])
                out.overrides[i] = out.check_label(c)
                if since is not None:
                    out.since[i] = int(since)
            for i, c in d["pending"]:
                [i] = out.check_ids([i])
                out.pending[i] = out.check_label(c)
        except (KeyError, TypeError, ValueError) as exc:  # WorkbenchErrors are ValueErrors too
            raise CheckpointError(f"The saved review of training labels cannot be read ({type(exc).__name__}: {exc}).") from exc
        return out
