"""tqdm bars of `session.fit()` in a code cell: live widget bars, and in the saved notebook the last
line of each (not the "0%" a widget bar reopens as without widget state)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_saved_notebook_keeps_each_bars_last_line(tmp_path) -> None:
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import workbench as wb\n"
        "data = wb.load_data('digits').subset(train=20, valid=8)\n"
        "model = wb.load_backbone('resnet18', 10, pretrained=False, image_size=16)\n"
        "s = wb.Session(data, model, batch_size=8, freeze='head')\n"
        "_ = s.fit(2)  # progress=None: bars in a kernel")]
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env_before])])  # this checkout
    try:
        NotebookClient(nb, kernel_name="python3", timeout=300, store_widget_state=False,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_before
    lines = [o["data"]["text/plain"] for o in nb.cells[0].outputs if o.output_type == "display_data"]
    assert lines and not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                             for o in nb.cells[0].outputs if o.output_type == "display_data")
    assert any(line.startswith("epoch 1 (cached features): 100%") and "25/25" in line and "valid loss" in line
               for line in lines), lines
    assert any(line.startswith("epoch 2 (cached features): 100%") for line in lines), lines
    assert any(line.startswith("features (train): 100%") for line in lines), lines
    assert not any(" 0%|" in line for line in lines), lines
