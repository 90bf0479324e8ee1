"""The README links an executed copy of every notebook; each must be built from the notebook as it is now.

docs/build_executed.py runs a notebook and writes docs/.executed/<path> with the SHA-256 of the
source it ran in the copy's metadata. When a notebook changes, rebuild its copy:
`python docs/build_executed.py` (only the stale ones).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "docs" / ".executed"
SOURCES = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_executed_copy_is_fresh_and_complete(source: Path) -> None:
    rel = source.relative_to(NOTEBOOKS)
    copy = EXECUTED / rel
    fix = f"rebuild it: python docs/build_executed.py {rel.as_posix()}"
    assert copy.is_file(), f"no executed copy of notebooks/{rel.as_posix()}; {fix}"
    nb = nbformat.read(str(copy), as_version=4)
    built_from = nb.metadata.get("workbench", {}).get("executed_from")
    assert built_from == hashlib.sha256(source.read_bytes()).hexdigest(), f"notebooks/{rel} changed since; {fix}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"the copy holds errors: {[e.get('ename') for e in errors]}"


def test_readme_links_every_executed_copy() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [p for p in SOURCES if f"(docs/.executed/{p.relative_to(NOTEBOOKS).as_posix()})" not in readme]
    assert not missing, f"README links no executed copy of {missing}"
