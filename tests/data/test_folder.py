"""Data.from_folder on tiny PNG trees: layout, own split, items, and every bad folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data import Data
from workbench.errors import ConfigError, DataError, DataNotFoundError


def test_class_folders_are_split_stratified(make_tree) -> None:
    root = make_tree({"dog": 6, "cat": 4, "10": 5}, mode="L")
    (root / "cat" / ".DS_Store").write_text("x")  # hidden and non-image files are ignored
    (root / "cat" / "notes.txt").write_text("x")
    (root / ".cache").mkdir()
    data = Data.from_folder(root, valid_fraction=0.4, seed=0)
    assert data.name == "pets" and data.kind == "image"
    assert data.classes == ["10", "cat", "dog"]
    assert len(data.train) + len(data.valid) == 15 and len(data.valid) == 6
    assert data.class_counts("valid").tolist() == [2, 2, 2]
    assert data.train.paths is not None and data.train.images is None
    sid = data.sample_id(0)
    assert sid.count("/") == 1 and (root / sid).is_file() and sid.endswith(".png")
    img = data.item(0)
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (6, 4)
    again = Data.from_folder(root, valid_fraction=0.4, seed=0)
    assert [again.sample_id(i) for i in range(6)] == [data.sample_id(i) for i in range(6)]


def test_rgb_and_nested_files_and_palette(make_tree, write_image) -> None:
    root = make_tree({"a": 3, "b": 3})
    write_image(root / "a" / "deeper" / "x.PNG", mode="P")  # upper-case extension, sub-folder
    data = Data.from_folder(root, valid_fraction=0.5)
    ids = [data.sample_id(i, s) for s in ("train", "valid") for i in range(len(getattr(data, s)))]
    assert "a/deeper/x.PNG" in ids
    modes = {data.item(i, s).mode for s in ("train", "valid") for i in range(len(getattr(data, s)))}
    assert modes == {"RGB"}


def test_own_split_folders_are_used_as_is(tmp_path: Path, write_image) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                write_image(tmp_path / "ds" / split / c / f"{i}.png", value=i)
    data = Data.from_folder(tmp_path / "ds", valid_fraction=0.9)  # valid_fraction is unused here
    assert data.classes == ["cat", "dog"] and len(data.train) == 6 and len(data.valid) == 4
    assert data.sample_id(0, "valid") == "val/cat/0.png"
    assert data.sample_id(5, "train") == "train/dog/2.png"
    assert data.valid.labels.tolist() == [0, 0, 1, 1]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"folder '.*nope' does not exist .*Check the path"):
        Data.from_folder(tmp_path / "nope")


def test_a_file_is_not_a_folder(tmp_path: Path, write_image) -> None:
    with pytest.raises(DataNotFoundError, match=r"is a file, not a folder\. Pass the folder"):
        Data.from_folder(write_image(tmp_path / "one.png"))


def test_no_class_folders(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"has no class sub-folders \(found 1 images directly inside it\)\. .*"
                       r"flat/<class name>/<image>\.png"):  # fmt: skip
        Data.from_folder(tmp_path / "flat")


def test_empty_class_folder_is_named(make_tree) -> None:
    root = make_tree({"cat": 3, "dog": 3})
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("no images")
    msg = (r"class folder 'bird' holds no image files"
           r" \(\.jpg.*Add images to it or remove")
    with pytest.raises(DataError, match=msg):
        Data.from_folder(root)


def test_corrupt_image_is_named(make_tree) -> None:
    root = make_tree({"cat": 3, "dog": 3})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(DataError, match=r"1 image file cannot be read: 'dog/broken\.png' \(.*\)\. Delete or replace"):
        Data.from_folder(root)


def test_truncated_image_fails_on_item_with_the_file_name(make_tree) -> None:
    root = make_tree({"cat": 2, "dog": 2})
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(root / "cat" / "big.jpg")
    raw = (root / "cat" / "big.jpg").read_bytes()
    (root / "cat" / "big.jpg").write_bytes(raw[: len(raw) // 2])  # JPEG verify() only reads the header
    data = Data.from_folder(root, valid_fraction=0.4)
    split = data.train if "cat/big.jpg" in data.train.ids else data.valid
    i = split.ids.index("cat/big.jpg")
    with pytest.raises(DataError, match=r"image file '.*big\.jpg' could not be read \(OSError.*Replace or delete"):
        split.item(i)


def test_single_class_folder(make_tree) -> None:
    msg = (r"has one class folder \(.cat.\); a classifier needs at"
           r" least 2 classes\. Add one sub-folder")
    with pytest.raises(DataError, match=msg):
        Data.from_folder(make_tree({"cat": 4}))


def test_class_with_one_image(make_tree) -> None:
    with pytest.raises(DataError, match=r"class 'dog' \(1\) has fewer than 2 samples"):
        Data.from_folder(make_tree({"cat": 4, "dog": 1}))


def test_valid_class_absent_from_train(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "ds" / "train" / "cat" / "0.png")
    write_image(tmp_path / "ds" / "train" / "dog" / "0.png")
    write_image(tmp_path / "ds" / "valid" / "cow" / "0.png")
    with pytest.raises(DataError, match=r"class 'cow' appears in the valid split but not in train"):
        Data.from_folder(tmp_path / "ds")


def test_train_without_valid_folder(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "ds" / "train" / "cat" / "0.png")
    write_image(tmp_path / "ds" / "test" / "cat" / "0.png")
    with pytest.raises(DataError, match=r"has a train/ folder but no valid/ or val/ folder\. Add valid/"):
        Data.from_folder(tmp_path / "ds")


def test_bad_valid_fraction_before_scanning(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"valid_fraction=1\.0 is not a fraction"):
        Data.from_folder(tmp_path / "empty", valid_fraction=1.0)
