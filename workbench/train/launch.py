"""Run a recipe written by `session.to_script()` as one process of an Accelerate launch.

The recipe says how to build the data and the backbone, the settings and freeze plan the session
started with, and the steps it took (freeze plans, settings, runs of epochs). Every process builds
the same session, joins the run (`session.distribute(accelerator)`) and takes the steps; the main
process writes a run folder:

  run.json           the run: processes, effective batch size, LR scaling, recipe
  metrics.jsonl      one JSON line per epoch, and a throttled one per batch (wb.follow reads it)
  checkpoint/        a workbench checkpoint, after every N epochs and at the end
  shards-rank<r>.jsonl  (--log-shards) the sample positions each process trained on, per epoch

A run killed part-way resumes from its last checkpoint (`resume=True`): epochs are seeded from
(seed, epoch), so the resumed run takes the same steps the uninterrupted one would have.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

RUN_FILE, METRICS_FILE, CHECKPOINT_DIR = "run.json", "metrics.jsonl", "checkpoint"


def build_data(recipe: dict[str, Any], base: Path):
    """The Data a recipe names: its calls (wb.load_data, Data.from_folder, ..., .subset) or a file
    beside the script that to_script saved for data built in memory."""
    import numpy as np
    import pandas as pd

    import workbench as wb

    spec = recipe["data"]
    if "file" in spec:
        path = base / spec["file"]
        if spec["kind"] == "text":
            df = pd.read_csv(path, keep_default_na=False, dtype=str)  # labels "01", texts "123" stay strings
            train, valid = df[df["split"] == "train"], df[df["split"] == "valid"]
            return wb.Data.from_texts(train["text"].tolist(), train["label"].tolist(), classes=spec["classes"],
                                      valid=(valid["text"].tolist(), valid["label"].tolist()), name=spec["name"])
        arrays = np.load(path)
        return wb.Data.from_arrays(arrays["train_images"], arrays["train_labels"], classes=spec["classes"],
                                   valid=(arrays["valid_images"], arrays["valid_labels"]), name=spec["name"])
    from ..data.recipes import replay

    return replay(spec["calls"])


def build_model(recipe: dict[str, Any], base: Path):
    import workbench as wb

    spec = recipe["model"]
    model = wb.load_backbone(*spec["args"], **spec["kwargs"])
    if recipe.get("weights"):
        from safetensors.torch import load_file

        model.module.load_state_dict(load_file(str(base / recipe["weights"])))
    return model


def _written_by_us(path: Path) -> bool:
    """run.json is a run description (recipe, processes); metrics.jsonl's first line a typed record."""
    try:
        if path.name == RUN_FILE:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(meta, dict) and {"recipe", "processes"} <= set(meta)
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        return not first or isinstance(json.loads(first), dict) and "type" in json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def check_out_folder(out: Path) -> None:
    """Refuse an --out folder whose run.json or metrics.jsonl workbench did not write (it would
    overwrite or append to them), before anything is built."""
    for name in (RUN_FILE, METRICS_FILE):
        path = out / name
        if path.exists() and not (path.is_file() and _written_by_us(path)):
            raise ConfigError(f"{path} was not written by a workbench run, and this run would overwrite or append to "
                              "it. Pass another --out folder (workbench never changes files it did not write).")


class RunWriter:
    """The main process's files: JSON lines as training goes, the run's description, shard logs."""

    def __init__(self, out: Path, session, dist, log_shards: bool, description: dict[str, Any]) -> None:
        self.out, self.session, self.dist, self.log_shards = out, session, dist, log_shards
        self.started = time.time()
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / RUN_FILE).write_text(json.dumps(description, indent=1))
            session.on("batch_end", self._batch)
            session.on("epoch_end", self._epoch)
        if log_shards:
            session.on("epoch_end", self._shards)

    def line(self, record: dict[str, Any]) -> None:
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**record, "time": round(time.time() - self.started, 3)}) + "\n")

    def _batch(self, b) -> None:
        self.line({"type": "batch", "epoch": b.epoch, "batch": b.batch, "num_batches": b.num_batches,
                   "loss": b.loss, "lrs": list(b.lrs), "samples_per_s": b.samples_per_s, "eta_s": b.eta_s})

    def _epoch(self, r) -> None:
        self.line({"type": "epoch", **r.to_dict()})

    def _shards(self, r) -> None:
        positions = sorted(int(i) for b in self.dist.last_shards for i in b)
        with open(self.out / f"shards-rank{self.dist.rank}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": r.epoch, "positions": positions}) + "\n")


def run_recipe(recipe: dict[str, Any], base, out, *, resume: bool = False, checkpoint_every: int = 1,
               log_shards: bool = False, batch_per_process: int | None = None, scale_lr: bool = True):
    """Build the session the recipe describes, join the Accelerate run, take its steps; returns the
    session (every process has the same history)."""
    from accelerate import Accelerator

    import workbench as wb

    from .checkpoint import load
    from .state import freeze_spec_from_json

    base, out = Path(base).resolve().parent if Path(base).is_file() else Path(base), Path(out)
    check_out_folder(out)
    accelerator = Accelerator()
    world = accelerator.num_processes
    settings = dict(recipe["settings"])
    batch = settings.get("batch_size", 64)
    lr_note = "the LR as set: each global batch is split across the processes"
    if batch_per_process is not None:
        settings["batch_size"] = batch_per_process * world
        if scale_lr and settings.get("lr") is not None:
            settings["lr"] = settings["lr"] * batch_per_process * world / batch
            lr_note = f"LR scaled linearly by {batch_per_process * world}/{batch} (the global batch over the notebook's)"
        else:
            lr_note = "LR as set (not scaled)"
    data, model = build_data(recipe, base), build_model(recipe, base)
    session = wb.Session(data, model, freeze=freeze_spec_from_json(recipe["freeze"]), name=recipe.get("name"),
                         **settings)
    session.distribute(accelerator)
    checkpoint = out / CHECKPOINT_DIR
    if resume and (checkpoint / "session.json").is_file():
        session.load_state_dict(load(checkpoint))
    global_batch = session.config.batch_size
    description = {
        "recipe": recipe, "processes": world, "machines": int(getattr(accelerator.state, "num_machines", 1) or 1),
        "distributed_type": str(accelerator.distributed_type), "device": str(accelerator.device),
        "global_batch_size": global_batch, "per_process_batch_size": global_batch // world,
        "effective_batch_size": global_batch, "lr": session._describe_lr(), "lr_scaling": lr_note,
        "resumed_at_epoch": session.epoch if resume else None,
    }
    writer = RunWriter(out, session, session._dist, log_shards, description)
    early = {"stopped": False}
    session.on("fit_end", lambda e: early.__setitem__("stopped", e.reason == "early stopping"))
    done = session.epoch  # epochs already in the history (a resumed run): those steps are skipped

    def save() -> None:
        if session._dist.is_main:
            session.save(checkpoint)
        accelerator.wait_for_everyone()

    for step in recipe["steps"]:
        op = step["op"]
        if op == "fit":
            n = step["epochs"]
            skip = min(n, done)
            done -= skip
            if n > skip:  # one epoch at a time (a checkpoint after each): the plan must cover them all first
                session.extend_plan(n - skip)
            for i in range(skip, n):
                last = i == n - 1
                session.fit(1, progress=False, stop_after=step.get("stop_after") if last else None)
                if session.epoch % checkpoint_every == 0 or early["stopped"]:
                    save()
                if early["stopped"]:
                    break
        elif op == "fit_head":  # an epoch of its own in the history
            if done:
                done -= 1
            else:
                session.fit_head(step.get("C"))
                save()
        elif done == 0:  # a change made after the last epoch the checkpoint holds
            if op == "freeze":
                session.freeze(freeze_spec_from_json(step["spec"]))
            elif op == "configure":
                session.configure(**step["settings"])
            elif op == "relabel":  # train labels overridden from the next epoch (a resume restores earlier ones)
                session.relabel({int(i): str(c) for i, c in step["labels"]})
    save()
    if session._dist.is_main:
        writer.line({"type": "end", "epochs": session.epoch})
    return session
