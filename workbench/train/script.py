"""`session.to_script(path)`: the session's fine-tuning as a script for `accelerate launch`.

The script is short and self-contained: comment lines with the launch commands, a fixed docstring,
the recipe as a Python literal (how to build the data and the backbone, the settings and freeze
plan, the steps), and a call into workbench's own core (`workbench.train.launch.run_recipe`), so the
training code is the Session's, not a second copy. Data built in memory is saved beside it (texts
as CSV, images as NPZ); with weights="current" the session's weights are saved beside it as the
starting point. User strings (run, model, data and file names) appear only in comment lines with
their line breaks removed and as literals, and the text is parsed back before it is written
(codegen.check_tree); it never overwrites a file it did not write.
"""

from __future__ import annotations

import ast
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .state import freeze_spec_to_json

MARK = "# Written by workbench's session.to_script()"  # its second line: a file workbench may overwrite
HEADER = """#!/usr/bin/env python
{mark} on {date}.
{notes}
"""
TEMPLATE = '''"""A fine-tuning run written by workbench (session.to_script()), for Hugging Face Accelerate.

It runs through workbench's own training loop: every process takes its share of each batch,
gradients are averaged (PyTorch DDP), the main process writes the run folder. What it trains is
RECIPE below: the data, the backbone, the settings, the freeze plans and the epochs. The comment
lines above say how to launch it.

Batch size and learning rate: every global batch holds {batch} samples, as in the notebook, split
across the N processes ({batch}/N each), so each step and its learning rate are the notebook's and
more processes make the same epochs faster. --batch-per-process B gives each process B samples
instead (a global batch of B x N) and scales a set LR by B x N / {batch} (the linear scaling rule of
Goyal et al. 2017; --no-lr-scaling keeps it). run.json in the run folder records what was used.

A killed run continues from its last checkpoint with --resume.
"""

import argparse

from workbench.train.launch import run_recipe

TITLE = __TITLE__
OUT = __OUT__
RECIPE = __RECIPE__

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--out", default=OUT, help="the run folder (metrics.jsonl, checkpoint/)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=1, help="save a checkpoint every N epochs")
    parser.add_argument("--batch-per-process", type=int, default=None, help="samples per process and step")
    parser.add_argument("--no-lr-scaling", action="store_true", help="keep the LR with --batch-per-process")
    parser.add_argument("--log-shards", action="store_true", help="write the samples each process saw")
    args = parser.parse_args()
    run_recipe(RECIPE, __file__, args.out, resume=args.resume, checkpoint_every=args.checkpoint_every,
               log_shards=args.log_shards, batch_per_process=args.batch_per_process,
               scale_lr=not args.no_lr_scaling)
'''
LAUNCH = """{title} From the session {name}.

Launch it (in a workbench checkout, `./run launch {file} [options]` does the same):
  one process (CPU or one GPU):  python {file} --out {out}
  one machine with 4 GPUs:       accelerate launch --multi_gpu --num_processes 4 {file} --out {out}
  2 machines with 8 GPUs each:   accelerate launch --multi_gpu --num_machines 2 --num_processes 16 \\
                                   --machine_rank 0 --main_process_ip 10.0.0.1 --main_process_port 29500 \\
                                   {file} --out {out}      (--machine_rank 1 on the other machine)
  2 CPU processes (gloo):        ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 {file} --out {out}
                                   (accelerate's own --cpu flag starts a single process)
Follow it from a notebook: wb.follow({out_py}); open the result: wb.Session.load({out_py})."""


def render_script(title: str, name: Any, file: str, out: str, batch: int, recipe: dict[str, Any]) -> str:
    """The script's text: user strings only in comment lines (line breaks removed) and as literals
    (TITLE, OUT, RECIPE); parsed back, it must be the template's statements with those literals."""
    import pprint
    import shlex

    from .codegen import call_names, check_tree, comment, literal, plain

    values = {"__TITLE__": title, "__OUT__": out, "__RECIPE__": plain(recipe, "the script's recipe")}
    notes = LAUNCH.format(title=title, name=repr(name), file=shlex.quote(file), out=shlex.quote(out), out_py=repr(out))
    header = HEADER.format(mark=MARK, date=datetime.date.today().isoformat(),
                           notes="\n".join(f"# {comment(line)}".rstrip() for line in notes.splitlines()))
    body = TEMPLATE.format(batch=int(batch))

    class Fill(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return literal(values[node.id]) if node.id in values else node

    expected = Fill().visit(ast.parse(body))
    for key, value in values.items():
        body = body.replace(key, pprint.pformat(value, width=110, sort_dicts=False), 1)
    text = header + body
    check_tree(text, expected.body, call_names(expected), "script (session.to_script())")
    return text


def _data_spec(data, stem: str) -> tuple[dict[str, Any], Callable[[Path], None] | None]:
    """How the script gets the data: its recipe, or a file saved beside the script (and what writes it)."""
    if getattr(data, "recipe", None):
        return {"calls": data.recipe, "name": data.name}, None
    spec = {"kind": data.kind, "classes": list(data.classes), "name": data.name}
    if data.kind == "text":
        def write_csv(path: Path) -> None:  # every cell quoted; launch.build_data reads every cell as text
            import csv

            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
                writer.writerow(["text", "label", "split"])
                for side, split in (("train", data.train), ("valid", data.valid)):
                    writer.writerows((t, data.classes[y], side) for t, y in zip(split.texts, split.labels))

        return {"file": f"{stem}_data.csv", **spec}, write_csv
    import numpy as np

    if data.train.images is None or data.valid.images is None:
        raise ConfigError("This data reads image files it has no recipe for; build it with Data.from_folder(...) "
                          "or pass data='path/to/folder' to to_script.")

    def write_npz(path: Path) -> None:
        np.savez_compressed(path, train_images=data.train.images, train_labels=data.train.labels,
                            valid_images=data.valid.images, valid_labels=data.valid.labels)

    return {"file": f"{stem}_data.npz", **spec}, write_npz


def _check_overwrite(path: Path, companions: list[Path]) -> None:
    """to_script replaces only its own files: a script that starts with its mark, and the data and
    weights files beside a script it wrote. ConfigError naming the file otherwise."""
    ours = False
    if path.exists():
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                ours = path.is_file() and [fh.readline() for _ in range(2)][1].startswith(MARK)
        except OSError:
            ours = False
        if not ours:
            raise ConfigError(f"{str(path)!r} exists and is not a script workbench wrote; to_script never overwrites "
                              "your files. Choose another path, or move that file first.")
    for f in companions:
        if f.exists() and not ours:
            raise ConfigError(f"{str(f)!r} exists and does not belong to a script workbench wrote at {str(path)!r}; "
                              "to_script never overwrites your files. Choose another script name, or move that file.")


def write_script(session, path, *, data=None, weights: str = "start", epochs: int | None = None) -> Path:
    """Write the script for `accelerate launch` (see TEMPLATE) and return its path.

    data: None (the session's data), a Data, a bundled dataset name or an image folder: the same
    fine-tuning on other (e.g. the full) data, with the same classes.
    weights: "start" replays the session from its start (the backbone's own weights, the recorded
    freeze plans, settings and epochs); "current" starts from the session's weights now and trains
    `epochs` more epochs (default: the planned epochs) with its current plan and settings.
    It overwrites only files it wrote itself (_check_overwrite).
    """
    import workbench as wb

    from .recording import check_recording, steps

    path = Path(path).expanduser()
    if path.suffix != ".py":
        raise ConfigError(f"to_script writes a Python file: give a path ending in .py, got {str(path)!r}.")
    if weights not in ("start", "current"):
        raise ConfigError(f"weights={weights!r} is not understood: use 'start' (replay from the beginning) or "
                          "'current' (continue from the session's weights now).")
    if session.model.recipe is None:
        raise ConfigError(f"{session.model.name!r} is your own module, which a script cannot build again; "
                          "to_script needs a backbone from wb.load_backbone.")
    if weights == "start" and any(step["op"] == "distil" for step in session.recording):
        raise ConfigError("This session was distilled from a teacher, which a script does not replay from the "
                          "start; continue from its weights instead: to_script(path, weights='current').")
    if isinstance(data, str):
        data = wb.load_data(data) if data in wb.list_datasets() else wb.Data.from_folder(data)
    data = session.data if data is None else data
    if list(data.classes) != list(session.data.classes):
        raise ConfigError(f"The data's classes {list(data.classes)[:5]}... differ from the session's "
                          f"{list(session.data.classes)[:5]}...; the script trains the same head.")
    folder, stem = path.parent, path.stem
    start = check_recording(session.recording, "this session")[0]
    spec, write_data = _data_spec(data, stem)
    recipe: dict[str, Any] = {"name": session.name, "data": spec, "model": session.model.recipe}
    if weights == "start":
        recipe["freeze"], recipe["settings"] = start["freeze"], dict(start["settings"])
        recipe["steps"] = steps(session.recording, ("freeze", "configure", "fit", "fit_head", "relabel"))
        if not any(s["op"] == "fit" for s in recipe["steps"]) or epochs is not None:
            recipe["steps"].append({"op": "fit", "epochs": epochs or session.config.epochs})
    else:
        recipe["weights"] = f"{stem}_weights.safetensors"
        recipe["freeze"] = freeze_spec_to_json(session.freeze_spec)
        recipe["settings"] = {k: v for k, v in session.config.to_dict().items() if k != "device"}
        recipe["steps"] = [{"op": "fit", "epochs": epochs or session.config.epochs}]
    recipe["settings"].pop("device", None)  # each process runs on the device Accelerate gives it
    batch = recipe["settings"].get("batch_size", session.config.batch_size)
    text = render_script(f"Fine-tune {session.model.name} on {data.name} with Accelerate.", session.name, path.name,
                         f"runs/{stem}", batch, recipe)
    companions = [folder / f for f in (spec.get("file"), recipe.get("weights")) if f]
    _check_overwrite(path, companions)
    folder.mkdir(parents=True, exist_ok=True)
    if write_data is not None:
        write_data(folder / spec["file"])
    if weights == "current":
        from safetensors.torch import save_file

        from .checkpoint import _contiguous

        save_file(_contiguous(session.model.module.state_dict()), str(folder / recipe["weights"]))
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path
