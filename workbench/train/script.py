"""`session.to_script(path)`: the session's fine-tuning as a script for `accelerate launch`.

The script is short and self-contained: a docstring with the launch lines, the recipe as JSON (how
to build the data and the backbone, the settings and freeze plan, the steps), and a call into
workbench's own core (`workbench.train.launch.run_recipe`), so the training code is the Session's,
not a second copy. Data built in memory is saved beside it (texts as CSV, images as NPZ); with
weights="current" the session's weights are saved beside it as the starting point.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .state import freeze_spec_to_json

TEMPLATE = '''#!/usr/bin/env python
"""{title}

Written by workbench on {date} from the session {name!r}. It runs that fine-tuning with Hugging Face
Accelerate, through workbench's own training loop: every process takes its share of each batch,
gradients are averaged (PyTorch DDP), the main process writes the run folder.

Launch it (in a workbench checkout, `./run launch {file} [options]` does the same):
  one process (CPU or one GPU):  python {file} --out runs/{stem}
  one machine with 4 GPUs:       accelerate launch --multi_gpu --num_processes 4 {file} --out runs/{stem}
  2 machines with 8 GPUs each:   accelerate launch --multi_gpu --num_machines 2 --num_processes 16 \\
                                   --machine_rank 0 --main_process_ip 10.0.0.1 --main_process_port 29500 \\
                                   {file} --out runs/{stem}      (--machine_rank 1 on the other machine)
  2 CPU processes (gloo):        ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 {file} --out runs/{stem}
                                   (accelerate's own --cpu flag starts a single process)

Batch size and learning rate: every global batch holds {batch} samples, as in the notebook, split
across the N processes ({batch}/N each), so each step and its learning rate are the notebook's and
more processes make the same epochs faster. --batch-per-process B gives each process B samples
instead (a global batch of B x N) and scales a set LR by B x N / {batch} (the linear scaling rule of
Goyal et al. 2017; --no-lr-scaling keeps it). run.json in the run folder records what was used.

Follow it from a notebook: wb.follow("runs/{stem}"); open the result: wb.Session.load("runs/{stem}").
A killed run continues from its last checkpoint with --resume.
"""

import argparse
import json

from workbench.train.launch import run_recipe

RECIPE = json.loads(r"""{recipe}""")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/{stem}", help="the run folder (metrics.jsonl, checkpoint/)")
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


def _data_spec(data, folder: Path, stem: str) -> dict[str, Any]:
    """How the script gets the data: its recipe, or a file saved beside the script."""
    if getattr(data, "recipe", None):
        return {"calls": data.recipe, "name": data.name}
    if data.kind == "text":
        import pandas as pd

        rows = [(t, data.classes[y], side) for side, split in (("train", data.train), ("valid", data.valid))
                for t, y in zip(split.texts, split.labels)]
        pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(folder / f"{stem}_data.csv", index=False)
        return {"file": f"{stem}_data.csv", "kind": "text", "classes": list(data.classes), "name": data.name}
    import numpy as np

    if data.train.images is None or data.valid.images is None:
        raise ConfigError("This data reads image files it has no recipe for; build it with Data.from_folder(...) "
                          "or pass data='path/to/folder' to to_script.")
    np.savez_compressed(folder / f"{stem}_data.npz", train_images=data.train.images, train_labels=data.train.labels,
                        valid_images=data.valid.images, valid_labels=data.valid.labels)
    return {"file": f"{stem}_data.npz", "kind": "image", "classes": list(data.classes), "name": data.name}


def write_script(session, path, *, data=None, weights: str = "start", epochs: int | None = None) -> Path:
    """Write the script for `accelerate launch` (see TEMPLATE) and return its path.

    data: None (the session's data), a Data, a bundled dataset name or an image folder: the same
    fine-tuning on other (e.g. the full) data, with the same classes.
    weights: "start" replays the session from its start (the backbone's own weights, the recorded
    freeze plans, settings and epochs); "current" starts from the session's weights now and trains
    `epochs` more epochs (default: the planned epochs) with its current plan and settings.
    """
    import workbench as wb

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
    folder.mkdir(parents=True, exist_ok=True)
    start = session.recording[0]
    recipe: dict[str, Any] = {"name": session.name, "data": _data_spec(data, folder, stem), "model": session.model.recipe}
    if weights == "start":
        recipe["freeze"], recipe["settings"] = start["freeze"], dict(start["settings"])
        recipe["steps"] = [s for s in session.recording[1:] if s["op"] in ("freeze", "configure", "fit", "fit_head")]
        if not any(s["op"] == "fit" for s in recipe["steps"]) or epochs is not None:
            recipe["steps"].append({"op": "fit", "epochs": epochs or session.config.epochs})
    else:
        from safetensors.torch import save_file

        from .checkpoint import _contiguous

        save_file(_contiguous(session.model.module.state_dict()), str(folder / f"{stem}_weights.safetensors"))
        recipe["weights"] = f"{stem}_weights.safetensors"
        recipe["freeze"] = freeze_spec_to_json(session.freeze_spec)
        recipe["settings"] = {k: v for k, v in session.config.to_dict().items() if k != "device"}
        recipe["steps"] = [{"op": "fit", "epochs": epochs or session.config.epochs}]
    recipe["settings"].pop("device", None)  # each process runs on the device Accelerate gives it
    text = TEMPLATE.format(
        title=f"Fine-tune {session.model.name} on {data.name} with Accelerate.", date=datetime.date.today().isoformat(),
        name=session.name, file=path.name, stem=stem, batch=recipe["settings"].get("batch_size", session.config.batch_size),
        recipe=json.dumps(recipe, indent=1).replace('"""', '\\"\\"\\"'),
    )
    path.write_text(text)
    path.chmod(0o755)
    return path
