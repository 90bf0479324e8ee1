"""The quickstart, headless: `./run demo --headless` (images) or `./run demo --headless --text`.

Fine-tunes the bundled EfficientNet-Lite0 on MNIST-5k (head only on cached features, then the
last two blocks too), or the bundled MiniLM on Rotten Tomatoes, printing one line per epoch.
Works offline: everything it loads ships inside installed packages.

`--prepare-workspace DIR` is what `./run demo` calls before it opens JupyterLab: it copies the
notebooks into DIR (only the ones not there yet: a student's edits are kept) and prints the
quickstart's path. The tracked notebooks never change; autosave, outputs and exported CSVs stay
in DIR, which holds its own .gitignore so git ignores it wherever it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def run_images(epochs_head: int, epochs_last: int) -> None:
    import workbench as wb

    data = wb.load_data("mnist-5k")
    print(data)
    model = wb.load_backbone("efficientnet_lite0", num_classes=data.num_classes, pretrained=True, image_size=64)
    print(f"backbone: {model.name} ({model.weights}), {len(model.blocks)} blocks, input {model.preprocess.size} px")
    # the automatic LR: a head on cached features at 5e-2, one-cycle over the head-only epochs
    session = wb.Session(data, model, batch_size=64, seed=0, epochs=epochs_head)
    _train(session, "head", epochs_head, "1) head only: the pretrained backbone is a fixed feature extractor")
    session.configure(lr_decay=0.8)  # the automatic LR for training through the backbone: 1e-3
    _train(session, wb.last(2), epochs_last, "2) unfreeze the last 2 blocks (discriminative LR, decay 0.8)")
    _report(session)


def run_text(epochs_head: int, epochs_last: int) -> None:
    import workbench as wb

    data = wb.load_data("rotten-tomatoes").subset(train=1500, valid=500, seed=0)
    print(data)
    model = wb.load_backbone("minilm-l6", num_classes=data.num_classes, pretrained=True, max_length=64)
    print(f"backbone: {model.name} ({model.weights}), {len(model.blocks)} blocks, max length {model.preprocess.max_length}")
    session = wb.Session(data, model, batch_size=32, seed=0, epochs=epochs_head)
    _train(session, "head", epochs_head, "1) head only: sentence features from the frozen encoder")
    session.configure(lr_decay=0.8)  # the automatic LR for a transformer's body: 5e-5
    _train(session, wb.last(2), epochs_last, "2) unfreeze the last 2 blocks")
    _report(session)


def _train(session, freeze, epochs: int, title: str) -> None:
    session.freeze(freeze)
    print(f"\n{title}\n{session.summary()}")
    for _ in range(epochs):
        print(session.step().line(), flush=True)


def _report(session) -> None:
    import workbench as wb

    errors = wb.ErrorAnalysis.from_session(session)
    wrong = int((errors.predicted != errors.labels).sum())
    print(f"\n{wrong} of {len(errors.labels)} validation samples misclassified "
          f"(accuracy {errors.accuracy:.3f}, macro-F1 {errors.macro_f1:.3f}); most confused (true -> predicted):")
    for row in errors.most_confused(min_count=1).head(3).itertuples():
        print(f"  {row.true} -> {row.predicted}: {row.count}")


def prepare_workspace(dest, notebooks) -> Path:
    """Copy every notebook under `notebooks` into `dest` (keeping sub-folders) unless a copy is
    there already; returns the copy of quickstart.ipynb."""
    dest, notebooks = Path(dest).expanduser().resolve(), Path(notebooks).resolve()
    if dest == notebooks or notebooks in dest.parents:
        raise SystemExit(f"The workspace {dest} must not be inside {notebooks}: pick another folder.")
    dest.mkdir(parents=True, exist_ok=True)
    ignore = dest / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# a workbench demo workspace: copies of the notebooks, outputs, exports\n*\n")
    for source in sorted(notebooks.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in source.parts:
            continue
        copy = dest / source.relative_to(notebooks)
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
    return dest / "quickstart.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run demo --headless", description=__doc__.splitlines()[0])
    parser.add_argument("--headless", action="store_true", help="run in the terminal (this module always does)")
    parser.add_argument("--text", action="store_true", help="MiniLM on Rotten Tomatoes instead of images")
    parser.add_argument("--epochs-head", type=int, default=3, help="epochs with only the head training")
    parser.add_argument("--epochs-last", type=int, default=2, help="epochs with the last 2 blocks unfrozen")
    parser.add_argument("--prepare-workspace", metavar="DIR",
                        help="copy the notebooks into DIR (missing ones only), print the quickstart's path, exit")
    parser.add_argument("--notebooks", metavar="DIR", default=str(Path(__file__).resolve().parents[1] / "notebooks"),
                        help="where the notebooks to copy are (default: the checkout's notebooks/)")
    args = parser.parse_args(argv)
    if args.prepare_workspace:
        print(prepare_workspace(args.prepare_workspace, args.notebooks))
        return 0
    start = time.perf_counter()
    (run_text if args.text else run_images)(args.epochs_head, args.epochs_last)
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
