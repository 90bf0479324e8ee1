"""Issue 24, items 8 and 9 in a real JupyterLab: a restarted kernel's first head-only epoch reads the
features from the disk cache (train/disk_cache.py), and `./run demo` as root prints the address that
opens the quickstart. Screenshots: test-artifacts/browser/round2_8_*.png, round2_9_*.png.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from browser.lab import REPO, open_notebook, run_all, screenshot, wait_until_idle
from browser.test_classroom import _file_browser

WINDOW = {"width": 1280, "height": 800}


# ---- 8. a restarted kernel reads the features from disk ----------------------------------------------
CACHE_CELLS = [
    "import workbench as wb\n"
    'data = wb.load_data("mnist-5k").subset(train=40, valid=12, seed=1)\n'
    'model = wb.load_backbone("efficientnet_lite0", num_classes=data.num_classes, image_size=64)\n'
    "session = wb.Session(data, model, batch_size=64, seed=0)\n"
    "dashboard = wb.TrainingDashboard(session); dashboard",
]


def test_8_after_a_kernel_restart_the_first_epoch_reads_the_disk_cache(page, lab):
    page.set_viewport_size(WINDOW)
    lab.clear_feature_cache()
    name = lab.write_notebook("restart_cache.ipynb", CACHE_CELLS)
    open_notebook(page, lab, name)
    _file_browser(page, True)
    status = page.locator(".wb-dashboard .wb-status")
    for run, words in ((1, "computing the cached features \\(once\\)"),
                       (2, "reading the cached features from disk \\(computed by an earlier run or kernel\\)")):
        if run == 2:  # Kernel > Restart Kernel and Run All Cells…
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Kernel$")).click()
            page.locator("#jp-mainmenu-kernel .lm-Menu-item[data-command='runmenu:restart-and-run-all']").click()
            page.locator(".jp-Dialog-button.jp-mod-accept").click()
            page.wait_for_timeout(1500)
        else:
            run_all(page)
        wait_until_idle(page, timeout=180)
        expect(page.locator(".wb-step")).to_be_enabled(timeout=60_000)
        page.locator(".wb-step").click()
        expect(status).to_contain_text(re.compile(r"epoch 1 done: .*" + words), timeout=240_000)
        screenshot(page, f"round2_8_restart_{run}")
    expect(page.locator(".wb-history")).to_contain_text("features read from disk")
    assert len(list(lab.feature_cache.glob("wbfeat-*.safetensors"))) == 2  # train and valid


# ---- 9. ./run demo as root ----------------------------------------------------------------------------
def test_9_run_demo_as_root_prints_the_address_that_opens_the_quickstart(browser, tmp_path):
    if os.getuid() != 0:
        pytest.skip("runs as root only (the case the issue is about); tests/test_demo.py fakes both")
    from test_demo import _fake_venv

    venv = _fake_venv(tmp_path)
    (venv / "bin" / "jupyter").write_text(f'#!/bin/sh\nexec {sys.executable} -m jupyter "$@"\n')
    home = tmp_path / "home"
    config = home / "jupyter-config"
    config.mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}))
    env = {**os.environ, "WB_VENV": str(venv), "WB_WORKSPACE": str(tmp_path / "ws"), "HOME": str(home),
           "PYTHONPATH": str(REPO), "BROWSER": "true", "WB_PORT": "18900", "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "IPYTHONDIR": str(home / "ipython")}
    proc = subprocess.Popen([str(REPO / "run"), "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        url, lines, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"http://localhost:\d+/lab/tree/quickstart\.ipynb\?token=[0-9a-f]{48}", line)
            url = found.group(0) if found else None
        assert url, "".join(lines)
        assert any("--allow-root" in ln for ln in lines), "".join(lines)
        base = url.split("/lab/")[0]
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/api/status?token=" + url.rsplit("=", 1)[1], timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        context = browser.new_context(viewport=WINDOW)
        view = context.new_page()
        view.goto(url)
        expect(view.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=60_000)
        expect(view.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="quickstart.ipynb")).to_be_visible()
        screenshot(view, "round2_9_run_demo_as_root")
        context.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
