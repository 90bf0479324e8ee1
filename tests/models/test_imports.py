"""The import rule (ARCHITECTURE.md rule 1): the model and freezing layers never load widget or plotting
libraries, and importing them prints nothing."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("ipywidgets", "IPython", "matplotlib")

SCRIPT = """
import sys
import workbench.models, workbench.train.freezing
import workbench as wb
wb.load_backbone, wb.last
print("IMPORTED", flush=True)
wb.load_backbone("efficientnet_lite0", 2, pretrained=False, image_size=32)
wb.load_backbone("resnet18", 2, pretrained=False, image_size=32)
wb.load_backbone("minilm-l6", 2, pretrained=True)
print("LOADED", sorted(m for m in {forbidden} if m in sys.modules))
"""


def test_models_and_freezing_import_no_widgets_or_plots_and_print_nothing():
    code = SCRIPT.format(forbidden=FORBIDDEN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "IMPORTED"  # nothing printed on import
    assert lines[-1] == "LOADED []"
