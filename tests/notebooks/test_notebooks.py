"""Every notebook runs top to bottom, and every notebook in the repo is saved without outputs.

The execution tests (slow) run each notebook under notebooks/ in a fresh `python3` kernel with
its own folder as the working directory, fail on any error output (or a traceback printed to
stderr, e.g. from a widget's thread), and record the wall time; conftest.py prints the table.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
CELL_TIMEOUT_S = 300
COURSE = [
    "01_optimizers", "02_lr_schedules", "03_regularisation", "04_augmentation", "05_class_imbalance",
    "06_over_underfitting", "07_strategies", "08_error_analysis", "09_classic_recipes", "10_why_errors",
    "11_choose_backbone", "12_hyperparameter_sweep", "13_distillation", "14_compression", "15_training_dynamics",
]  # fmt: skip
# The last cell of a course notebook shows one of these views for hands-on play.
WIDGET_CALL = re.compile(r"\bwb\.(Workbench|TrainingDashboard|FreezePanel|ErrorExplorer|BackbonePicker|ChooseView|SweepView|"
                         r"DistilCompressView)\(")
SKIP_PARTS = {"test-artifacts", "build", "dist", "node_modules", "__pycache__"}


def _order(path: Path) -> tuple:
    rel = path.relative_to(NOTEBOOKS_DIR)
    return (rel.name != "quickstart.ipynb", len(rel.parts), str(rel))  # quickstart first, then text, then course/


def notebooks_to_run() -> list[Path]:
    found = [p for p in NOTEBOOKS_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found, key=_order)


def repo_notebooks() -> list[Path]:
    """Every .ipynb in the repository, outside hidden folders (.venv, .git, checkpoints) and build output."""
    out = []
    for p in ROOT.rglob("*.ipynb"):
        parts = p.relative_to(ROOT).parts[:-1]
        if any(part.startswith(".") or part in SKIP_PARTS for part in parts):
            continue
        out.append(p)
    return sorted(out)


def _id(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


# ---- fast: what is committed -------------------------------------------------------------------
@pytest.mark.parametrize("path", repo_notebooks(), ids=lambda p: _id(p, ROOT))
def test_notebook_saved_without_outputs(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec name must be python3"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (
        f"cells {dirty} of {path.name} have outputs or an execution count; clear them before committing "
        "(e.g. jupyter nbconvert --clear-output --inplace)."
    )


def test_course_has_every_topic() -> None:
    missing = [name for name in COURSE if not (NOTEBOOKS_DIR / "course" / f"{name}.ipynb").is_file()]
    assert not missing, f"course notebooks missing: {missing}"


@pytest.mark.parametrize("name", COURSE)
def test_course_notebook_shape(name: str) -> None:
    path = NOTEBOOKS_DIR / "course" / f"{name}.ipynb"
    if not path.is_file():
        pytest.skip(f"{path.name} is missing (test_course_has_every_topic reports it)")
    nb = nbformat.read(str(path), as_version=4)
    assert any(c.cell_type == "markdown" and c.source.strip() for c in nb.cells), "no explanation (markdown) cell"
    last = nb.cells[-1]
    assert last.cell_type == "code" and WIDGET_CALL.search(last.source), (
        f"{path.name} must end with a widget cell for hands-on play (wb.Workbench(session) or one view); "
        f"its last cell is: {last.source[:80]!r}"
    )


# ---- slow: run them ----------------------------------------------------------------------------
def _problems(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                found.append(f"cell {i} printed a traceback to stderr:\n{out['text'][-1500:]}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", notebooks_to_run(), ids=lambda p: _id(p, NOTEBOOKS_DIR))
def test_notebook_runs(path: Path, notebook_timings, monkeypatch) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # OpenMP threads that spin-wait collapse when the CPU is shared (measured here: the same epoch
    # 6 s with passive waiting, 20-50 s with the default while other jobs ran). Same numbers either way.
    if "OMP_WAIT_POLICY" not in os.environ:
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(path.parent)}})
    name = _id(path, NOTEBOOKS_DIR)
    start, outcome, raised = time.perf_counter(), "failed", None
    try:
        client.execute()
        outcome = "ok"
    except CellExecutionError as exc:
        raised = exc  # its error output is in the notebook too; reported below with any others
    finally:
        notebook_timings[name] = (time.perf_counter() - start, outcome)
    problems = _problems(nb)
    if raised is not None and not problems:
        problems.append(str(raised)[-3000:])
    if problems:
        notebook_timings[name] = (notebook_timings[name][0], "failed")
    assert not problems, f"{name}:\n" + "\n".join(problems)
