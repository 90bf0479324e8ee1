"""from_torchvision and from_hf: the real loading code, offline errors, and conversion to Data.

No test here reaches the network: torchvision's urlopen is made to fail as it does offline,
and Hugging Face runs in offline mode (HF_HUB_OFFLINE=1) or on an in-memory DatasetDict.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from workbench.data import Data
from workbench.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    HubUnavailableError,
    MissingDependencyError,
)

BUNDLED_HINT = r'wb\.load_data\("mnist-5k"\), wb\.load_data\("digits"\).*"rotten-tomatoes".*"sms-spam"'


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """urlopen fails the way it does on a machine without DNS (as on CI here)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hugging Face offline mode with an empty cache, also when `datasets` is already imported."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_import_stays_light() -> None:
    code = "import sys, workbench.data; print([m for m in ('torch', 'torchvision', 'datasets') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- torchvision ------------------------------------------------------------------------------


def test_torchvision_mnist_from_local_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    train_y, test_y = np.arange(20) % 10, np.arange(10)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    data = Data.from_torchvision("mnist", tmp_path, download=False)  # case-insensitive name
    assert data.name == "MNIST" and data.kind == "image" and data.num_classes == 10
    assert data.classes[3] == "3 - three"
    assert len(data.train) == 20 and len(data.valid) == 10  # train=True / train=False as-is
    assert data.train.images.shape == (20, 28, 28) and data.train.images.dtype == np.uint8
    assert data.train.labels.tolist() == train_y.tolist() and data.sample_id(4) == "4"
    assert data.item(0).mode == "L" and data.item(0).size == (28, 28)
    split = Data.from_torchvision("MNIST", tmp_path, download=False, valid_fraction=0.5, seed=0)
    assert len(split.train) == 10 and len(split.valid) == 10  # the test part is left out
    assert split.class_counts("valid").tolist() == [1] * 10


@pytest.mark.parametrize("name", ["MNIST", "CIFAR10"])
def test_torchvision_offline_names_bundled_alternatives(no_internet: None, tmp_path: Path, name: str) -> None:
    start = time.perf_counter()
    msg = (
        rf"Downloading torchvision dataset '{name}' failed \(.*Name or service not known.*\)\. "
        rf"This machine seems to be offline.*{BUNDLED_HINT}"
    )
    with pytest.raises(HubUnavailableError, match=msg) as info:
        Data.from_torchvision(name, tmp_path, download=True)
    assert time.perf_counter() - start < 10
    assert isinstance(info.value, ConnectionError) and info.value.__cause__ is not None


def test_torchvision_not_downloaded(tmp_path: Path) -> None:
    msg = (r"'CIFAR10' is not in root=.* Pass"
           r" download=True \(needs the internet\)")
    with pytest.raises(DataNotFoundError, match=msg):
        Data.from_torchvision("CIFAR10", tmp_path, download=False)


def test_torchvision_unknown_name(tmp_path: Path) -> None:
    msg = (r"torchvision has no dataset named"
           r" 'CIFAR-10'\. Did you mean: 'CIFAR10'")
    with pytest.raises(DataNotFoundError, match=msg):
        Data.from_torchvision("CIFAR-10", tmp_path)
    with pytest.raises(ConfigError, match=r"Use Data\.from_folder\(path\)"):
        Data.from_torchvision("ImageFolder", tmp_path)


def test_torchvision_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(MissingDependencyError, match=r"Install it: pip install torchvision$"):
        Data.from_torchvision("MNIST", tmp_path)


# --- Hugging Face -----------------------------------------------------------------------------


def test_hf_offline_names_bundled_alternatives(hf_offline: None) -> None:
    start = time.perf_counter()
    msg = (
        r"Downloading Hugging Face dataset 'cornell-movie-review-data/rotten_tomatoes' failed \(ConnectionError: "
        rf".*\)\. This machine seems to be offline.*{BUNDLED_HINT}"
    )
    with pytest.raises(HubUnavailableError, match=msg):
        Data.from_hf("cornell-movie-review-data/rotten_tomatoes")
    assert time.perf_counter() - start < 10


def test_hf_missing_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    msg = (r"needs the Hugging Face `datasets`"
           r" package.*pip install datasets$")
    with pytest.raises(MissingDependencyError, match=msg):
        Data.from_hf("imdb")


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """datasets.load_dataset returns an in-memory DatasetDict shaped like rotten_tomatoes."""
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})

    def part(n: int, offset: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"text": [f"review {offset + i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=features
        )

    splits = {"train": part(20, 0), "validation": part(6, 100), "test": part(8, 200)}
    calls: dict[str, object] = {}

    def load_dataset(name: str) -> datasets.DatasetDict:
        calls["name"] = name
        return datasets.DatasetDict({k: v for k, v in splits.items() if k in calls.get("keep", splits)})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hf_conversion(fake_hub: dict[str, object]) -> None:
    data = Data.from_hf("cornell-movie-review-data/rotten_tomatoes")
    assert fake_hub["name"] == "cornell-movie-review-data/rotten_tomatoes"
    assert data.kind == "text" and data.classes == ["neg", "pos"]
    assert data.name == "cornell-movie-review-data/rotten_tomatoes"
    assert len(data.train) == 20 and len(data.valid) == 6
    assert data.item(1) == "review 101" and data.valid.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_hf_falls_back_to_test_then_to_a_split(fake_hub: dict[str, object]) -> None:
    fake_hub["keep"] = ("train", "test")
    assert len(Data.from_hf("imdb").valid) == 8
    fake_hub["keep"] = ("train",)
    data = Data.from_hf("imdb", valid_fraction=0.25, seed=0)
    assert len(data.train) == 15 and len(data.valid) == 5
    again = Data.from_hf("imdb", valid_fraction=0.25)
    assert [data.sample_id(i) for i in range(5)] == [again.sample_id(i) for i in range(5)]


def test_hf_bad_split_and_columns(fake_hub: dict[str, object]) -> None:
    msg = (r"has no split 'dev'; it has \['train',"
           r" 'validation', 'test'\]\. Pass valid_split=")
    with pytest.raises(DataError, match=msg):
        Data.from_hf("x", valid_split="dev")
    msg = (r"has no column 'sentence' \(given as text=\)\."
           r" Available columns: \['text', 'label'\]")
    with pytest.raises(DataError, match=msg):
        Data.from_hf("x", text="sentence")
