"""The import rule (ARCHITECTURE.md rule 1): the headless core never loads UI or plotting modules."""

import subprocess
import sys

import pytest

CORE_MODULES = [
    "workbench",
    "workbench.data",
    "workbench.models",
    "workbench.train",
    "workbench.train.freezing",
    "workbench.analysis",
]
FORBIDDEN = ("ipywidgets", "IPython", "matplotlib")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_loads_no_ui_or_plotting(module: str) -> None:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_import_workbench_is_lazy_and_cheap() -> None:
    """`import workbench` alone must not import torch: the CLI and docs stay snappy."""
    code = "import sys, workbench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
