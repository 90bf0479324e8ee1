"""The README's main job, headless: `./run demo --headless [--text]` prints one line per epoch."""

import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--text"]], ids=["images", "text"])
def test_headless_demo_prints_per_epoch_metrics(extra) -> None:
    out = subprocess.run([sys.executable, "-m", "workbench.demo", "--headless", "--epochs-head", "1",
                          "--epochs-last", "1", *extra], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    epochs = [ln for ln in out.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(epochs) == 2 and "cached features" in epochs[0] and "full forward" in epochs[1]
    assert "valid loss" in epochs[1] and "most confused (true -> predicted)" in out.stdout
    assert ("minilm-l6" if extra else "efficientnet_lite0") in out.stdout
