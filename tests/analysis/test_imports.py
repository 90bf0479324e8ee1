"""The analysis layer stays headless: importing it loads no UI, plotting, Captum or cleanlab."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["workbench.analysis", "workbench.analysis.attribution", "workbench.analysis.gradcam",
           "workbench.analysis.token_attr", "workbench.analysis.neighbours", "workbench.analysis.label_issues",
           "workbench.analysis.embedding", "workbench.analysis.feature_views"]
FORBIDDEN = ("ipywidgets", "IPython", "matplotlib", "captum", "cleanlab")


@pytest.mark.parametrize("module", MODULES)
def test_importing_loads_nothing_heavy(module: str) -> None:
    code = f"import importlib, sys; importlib.import_module({module!r}); print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_public_names() -> None:
    import workbench as wb

    assert wb.explain.__module__ == "workbench.analysis.attribution"
    assert {"explain", "explain_many", "Attribution"} <= set(dir(wb))
