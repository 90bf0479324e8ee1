"""The README's main job, headless: `./run demo --headless [--text]` prints one line per epoch."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


def _fake_venv(tmp_path: Path) -> Path:
    """A venv the run script takes as set up: its stamp, this interpreter, and a `jupyter` that
    prints where it was started and with what, instead of starting JupyterLab."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    jupyter = venv / "bin" / "jupyter"
    jupyter.write_text('#!/bin/sh\necho "jupyter cwd=$(pwd) args=$*"\n')
    jupyter.chmod(0o755)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "run").read_bytes()
                            + f"{ROOT}\n".encode()).hexdigest()[:16]
    (venv / f".workbench-setup-base-{digest}").touch()
    return venv


def test_run_demo_opens_a_copy_of_the_notebooks_outside_the_tracked_tree(tmp_path) -> None:
    workspace = tmp_path / "my notebooks"
    env = {**os.environ, "WB_VENV": str(_fake_venv(tmp_path)), "WB_WORKSPACE": str(workspace),
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    before = {p: p.read_bytes() for p in (ROOT / "notebooks").rglob("*.ipynb")}
    out = subprocess.run([str(ROOT / "run"), "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"jupyter cwd={workspace} args=lab {workspace / 'quickstart.ipynb'} --ServerApp.port=" in out.stdout
    copies = sorted(p.relative_to(workspace) for p in workspace.rglob("*.ipynb"))
    assert copies == sorted(p.relative_to(ROOT / "notebooks") for p in before)
    assert (workspace / ".gitignore").read_text().splitlines()[-1] == "*"  # git ignores it wherever it is
    # a student's edits survive the next ./run demo; the tracked notebooks never change
    (workspace / "quickstart.ipynb").write_text("edited")
    assert subprocess.run([str(ROOT / "run"), "demo"], capture_output=True, env=env, timeout=120).returncode == 0
    assert (workspace / "quickstart.ipynb").read_text() == "edited"
    assert {p: p.read_bytes() for p in (ROOT / "notebooks").rglob("*.ipynb")} == before


def test_the_workspace_may_not_be_the_notebooks_folder(tmp_path) -> None:
    from workbench.demo import prepare_workspace

    with pytest.raises(SystemExit, match="must not be inside"):
        prepare_workspace(ROOT / "notebooks" / "copy", ROOT / "notebooks")
    assert prepare_workspace(tmp_path / "ws", ROOT / "notebooks") == tmp_path / "ws" / "quickstart.ipynb"


def _fake_id(tmp_path: Path, uid: int) -> str:
    """A PATH whose `id -u` answers `uid` (the run script asks it whether it runs as root)."""
    bin_dir = tmp_path / f"id-{uid}"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f'#!/bin/sh\n[ "$1" = "-u" ] && echo {uid} && exit 0\nexec /usr/bin/id "$@"\n')
    (bin_dir / "id").chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "user"])
def test_run_demo_as_root_passes_allow_root_and_prints_the_url(tmp_path, uid) -> None:
    """JupyterLab refuses root without --allow-root: the run script passes it for root only, and
    prints the address to open, with the port and the token it gave JupyterLab."""
    import re

    env = {**os.environ, "WB_VENV": str(_fake_venv(tmp_path)), "WB_WORKSPACE": str(tmp_path / "ws"),
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PATH": _fake_id(tmp_path, uid), "WB_PORT": "18888"}
    out = subprocess.run([str(ROOT / "run"), "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    args = out.stdout.split("args=", 1)[1]
    assert ("--allow-root" in args) == (uid == 0)
    url = re.search(r"http://localhost:(\d+)/lab/tree/quickstart\.ipynb\?token=([0-9a-f]{48})", out.stdout)
    assert url, out.stdout
    port, token = url.groups()
    assert int(port) >= 18888 and f"--ServerApp.port={port} " in args and f"--IdentityProvider.token={token}" in args
