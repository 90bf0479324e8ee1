"""Suite-wide set-up."""

import os

import pytest
import torch

# Before any test builds a model: torch's worker threads inherit this (see workbench/__init__).
torch.set_flush_denormal(True)

CACHE_ENV = "WORKBENCH_CACHE_DIR"  # workbench.train.disk_cache.ENV_DIR (not imported: keeps collection light)


@pytest.fixture(scope="session", autouse=True)
def feature_cache_outside_home(tmp_path_factory):
    """No test writes into the user's real cache folder: the disk feature cache of this process and
    of every kernel or subprocess a test starts (JupyterLab, notebooks) lives in a temporary folder."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("feature-cache-session"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(autouse=True)
def fresh_feature_cache(tmp_path_factory, monkeypatch):
    """Each test starts with an empty disk feature cache of its own (outside its tmp_path, so tests
    that list tmp_path see only what they wrote)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("feature-cache")))
