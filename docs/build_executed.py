"""Executed copies of every notebook, for a teacher to preview results without running anything.

    python docs/build_executed.py             # all notebooks whose copy is missing or stale
    python docs/build_executed.py --all       # every notebook again
    python docs/build_executed.py text.ipynb  # some (paths relative to notebooks/)

Each notebook under notebooks/ runs top to bottom in a fresh `python3` kernel with its own folder as
the working directory (as tests/notebooks runs them), and the executed copy is written to
docs/.executed/<same path>. The copy's metadata records the SHA-256 of the source notebook it was
built from (`workbench.executed_from`); tests/test_executed_notebooks.py fails when a notebook
changed and its copy was not rebuilt. Widget outputs keep their short text ("Workbench widget (run
the notebook to use it): ...") and the static snapshot of the last plot; widget state is not
stored (it would add megabytes that GitHub does not render anyway).

The folder starts with a dot because tests/notebooks checks that every notebook in the repository
is saved without outputs and skips hidden folders; these copies are the one place outputs belong.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "docs" / ".executed"
CELL_TIMEOUT_S = 600


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def copy_of(source: Path) -> Path:
    return EXECUTED / source.relative_to(NOTEBOOKS)


def stale(source: Path) -> bool:
    import nbformat

    copy = copy_of(source)
    if not copy.exists():
        return True
    meta = nbformat.read(str(copy), as_version=4).metadata.get("workbench", {})
    return meta.get("executed_from") != source_hash(source)


def execute(source: Path) -> float:
    """Run `source` and write its executed copy; returns the wall time."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(source), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, store_widget_state=False,
                            resources={"metadata": {"path": str(source.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    problems = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells)
                for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if problems:
        raise RuntimeError(f"{source.name} failed: {problems}")
    nb.metadata["workbench"] = {
        "executed_from": source_hash(source),
        "note": f"An executed copy of notebooks/{source.relative_to(NOTEBOOKS).as_posix()} (built by "
                "docs/build_executed.py); open the original to run it.",
    }
    copy = copy_of(source)
    copy.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(copy))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="paths relative to notebooks/ (default: the stale ones)")
    parser.add_argument("--all", action="store_true", help="rebuild every copy")
    args = parser.parse_args(argv)
    # the kernel imports this checkout; OpenMP threads that spin-wait collapse on a shared CPU
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # every copy shows a first run (features computed), whatever the builder's disk feature cache holds
    os.environ.setdefault("WORKBENCH_FEATURE_CACHE", "0")
    chosen = [NOTEBOOKS / n for n in args.notebooks] or [s for s in sources() if args.all or stale(s)]
    for path in chosen:
        print(f"{path.relative_to(NOTEBOOKS)}: running…", flush=True)
        print(f"{path.relative_to(NOTEBOOKS)}: {execute(path):.0f} s -> {copy_of(path).relative_to(ROOT)}", flush=True)
    if not chosen:
        print("every executed copy is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
