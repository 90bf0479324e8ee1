"""Drive a real JupyterLab from tests: the server handle and page helpers.

Tests import these (`from browser.lab import open_notebook, run_all, ...`; pyproject puts tests/
on the path). The fixtures that build them live in conftest.py beside this file. The waits here
follow shared/JUPYTERLAB-TESTING.md: the toolbar shows "Idle" before the kernel is connected, so
we wait for the status bar's kernel widget instead, then give it half a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}

# The status bar's kernel item reads e.g. "Python 3 (ipykernel) | Idle" ("| Busy", "| Starting").
# Match that item, not the whole bar (`.jp-StatusBar-Widget` is the entire bar: its text runs
# the items together, so "Idle" would also match e.g. a notebook named "Idle.ipynb").
KERNEL_STATUS = "#jp-main-statusbar .jp-StatusBar-TextItem"
KERNEL_IDLE_RE = re.compile(r"\|\s*Idle$")


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: `url` ends with "/", `root_dir` is its (temporary) file root."""

    url: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    feature_cache: Path | None = None  # the kernels' disk feature cache (WORKBENCH_CACHE_DIR)

    # -- files

    def write_notebook(self, name: str, cells: list) -> str:
        """Write a notebook into root_dir and return its path relative to it (for open_notebook).

        `cells`: source strings (code cells) or nbformat cell objects (e.g. new_markdown_cell).
        """
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return name

    def fresh_copy(self, name: str) -> str:
        """Copy notebooks/<name> from the repository over root_dir/<name> and return `name`.

        Tests share one server: an earlier test's autosave leaves widget outputs of a kernel that is
        gone in the shared copy, and opening it logs "widget model not found" for each.
        """
        source = NOTEBOOKS / name
        shutil.copy2(source, self.root_dir / name)
        return name

    # -- REST

    def api(self, method: str, path: str, timeout: float = 10):
        """Call the server's REST API; returns decoded JSON (or None for an empty body)."""
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def reset(self) -> None:
        """Forget the saved layout and shut every session and kernel down (between tests)."""
        for method, path in [("DELETE", "lab/api/workspaces/default")]:
            try:
                self.api(method, path)
            except urllib.error.HTTPError as e:
                if e.code != 404:  # nothing saved yet
                    raise
        for s in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{s['id']}")
        for k in self.api("GET", "api/kernels"):
            self.api("DELETE", f"api/kernels/{k['id']}")
        self.clear_feature_cache()

    def clear_feature_cache(self) -> None:
        """Empty the kernels' disk feature cache, so each test's first head-only epoch computes."""
        if self.feature_cache is not None:
            for entry in self.feature_cache.glob("wbfeat-*.safetensors"):
                entry.unlink()

    def dump_kernel_stacks(self, wait: float = 2.0) -> int:
        """After a failure: every kernel of this server writes its threads' stacks to the server log
        (PYTHONFAULTHANDLER is on in start_lab; SIGABRT ends the kernel). Returns how many kernels.

        A cell that never finished in CI left nothing to go on; this shows where it was."""
        kernels = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.process.pid and b"ipykernel_launcher" in argv:
                kernels.append(int(proc.name))
        for pid in kernels:
            try:
                os.kill(pid, signal.SIGABRT)
            except ProcessLookupError:
                pass
        if kernels:
            time.sleep(wait)
        return len(kernels)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as e:
            return f"(no server log: {e})"

    def stop(self) -> None:
        """Stop the server and everything it started (kernels) by process group."""
        if self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=5)
        try:  # kernels that outlived the server in its group
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_lab(tmp: Path, notebooks: Path = NOTEBOOKS, timeout: float = 60) -> Lab:
    """Start JupyterLab on a free port with everything it writes under `tmp`.

    The root is a fresh copy of `notebooks` (autosave never touches the repo). Config, settings,
    workspaces, runtime and IPython dirs are temporary so the user's own don't leak in, and a
    `python3` kernelspec pointing at this interpreter (sys.executable, the venv) comes first
    on JUPYTER_PATH, so the kernel runs in the same environment as the tests.
    """
    root = tmp / "root"
    root.mkdir(parents=True)
    if notebooks.is_dir():
        for nb in notebooks.rglob("*.ipynb"):
            if ".ipynb_checkpoints" in nb.parts:
                continue
            dest = root / nb.relative_to(notebooks)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, dest)

    config = tmp / "config"
    data = tmp / "data"
    settings = tmp / "settings"
    workspaces = tmp / "workspaces"
    kernel_dir = data / "kernels" / "python3"
    for d in (config, settings, workspaces, kernel_dir, tmp / "runtime", tmp / "ipython"):
        d.mkdir(parents=True, exist_ok=True)

    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
    }, indent=1))
    # No news feed, no update check: no toast, no requests to the internet.
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    }))
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_PATH": os.pathsep.join([str(data), *filter(None, [env.get("JUPYTER_PATH")])]),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
        "IPYTHONDIR": str(tmp / "ipython"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONFAULTHANDLER": "1",  # Lab.dump_kernel_stacks: a stuck kernel's stacks in the server log
        "WORKBENCH_CACHE_DIR": str(tmp / "feature-cache"),  # never the user's own cache folder
        # OpenMP threads that spin-wait collapse on a shared CPU (an exact head fit took 324 s here, 7.8 s
        # with PASSIVE); the notebook tests and docs/build_executed.py do the same
        "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE"),
        # the kernel imports this checkout's workbench, not whatever the venv's editable install points
        # at (a second worktree sharing the venv would otherwise test the other tree's code)
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]),
    })
    env.pop("JUPYTER_TOKEN", None)

    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", "--allow-root",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
    ]
    log_path = tmp / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    lab = Lab(url=f"http://127.0.0.1:{port}/", root_dir=root, log_path=log_path, process=proc,
              feature_cache=tmp / "feature-cache")

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "api/status", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            lab.stop()
            raise RuntimeError(f"JupyterLab not up after {timeout} s:\n{lab.log_tail()}")
        time.sleep(0.2)

    spec = lab.api("GET", "api/kernelspecs")["kernelspecs"]["python3"]["spec"]
    if spec["argv"][0] != sys.executable:
        lab.stop()
        raise RuntimeError(f"kernelspec python3 resolves to {spec['argv']}, not {sys.executable}")
    return lab


# --------------------------------------------------------------------------- page helpers


def cell(page, index: int):
    """The notebook's cell at `index` (all cell types count, as in the .ipynb)."""
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


def open_notebook(page, lab: Lab, name: str, timeout: float = 60) -> None:
    """Open `name` (relative to lab.root_dir) as the only tab and wait for its kernel."""
    page.goto(f"{lab.url}lab/tree/{name}?reset")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=timeout * 1000)
    page.locator(KERNEL_STATUS, has_text=KERNEL_IDLE_RE).first.wait_for(timeout=timeout * 1000)
    page.wait_for_timeout(500)  # "Idle" shows a moment before the kernel's channels are ready


def run_all(page) -> None:
    """Run menu -> Run All Cells (the menu item is found by its command id, not its label)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator("#jp-mainmenu-run .lm-Menu-item[data-command='runmenu:run-all']").click()
    # The first code cell shows [*] synchronously once scheduled; wait_until_idle then waits it out.


_IDLE_JS = """() => {
  const idle = [...document.querySelectorAll('%s')]
      .some(e => /\\|\\s*Idle$/.test(e.textContent.trim()));
  const running = [...document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt')]
      .some(e => e.textContent.includes('[*]'));
  return idle && !running;
}""" % KERNEL_STATUS


def wait_until_idle(page, timeout: float = 60, settle: float = 0.3) -> None:
    """Wait until the kernel is Idle and no cell shows [*], and that holds for `settle` s."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.1)
        page.wait_for_function(_IDLE_JS, timeout=left * 1000, polling=50)
        page.wait_for_timeout(settle * 1000)
        if page.evaluate(_IDLE_JS):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel not idle after {timeout} s")


def run_cell(page, index: int, timeout: float = 10) -> None:
    """Run one cell like a person: click its prompt, Escape (command mode), Shift+Enter.

    Returns once the cell has started (its prompt changed to [*] or a new count), not when it
    finishes: use wait_until_idle or wait on its output. Shift+Enter on the last cell adds an
    empty cell below, as in JupyterLab.
    """
    prompt = cell(page, index).locator(".jp-InputPrompt")
    before = prompt.inner_text()
    prompt.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "([el, before]) => el.textContent.trim() !== before.trim()",
        arg=[prompt.element_handle(), before], timeout=timeout * 1000, polling=20)


def cell_output_text(page, index: int) -> str:
    """The visible text of the cell's outputs, joined by newlines ("" if none)."""
    return "\n".join(cell(page, index).locator(".jp-OutputArea-output").all_inner_texts())


def screenshot(page, name: str) -> Path:
    """Save a PNG of the viewport as test-artifacts/browser/NAME.png and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
