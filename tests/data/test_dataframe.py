"""Data.from_dataframe with text, image paths, in-memory images, a split column, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.data import Data
from workbench.errors import ConfigError, DataError, DataNotFoundError


@pytest.fixture
def reviews() -> pd.DataFrame:
    texts = [f"review number {i}" for i in range(20)]
    df = pd.DataFrame({"review": texts, "stars": ["good", "bad"] * 10, "part": ["train"] * 14 + ["valid"] * 6})
    df.index = [f"r{i}" for i in range(20)]
    return df


def test_text_column(reviews: pd.DataFrame) -> None:
    data = Data.from_dataframe(reviews, text="review", label="stars", valid_fraction=0.25, seed=0, name="reviews")
    assert data.kind == "text" and data.classes == ["bad", "good"] and data.name == "reviews"
    assert len(data.train) == 15 and len(data.valid) == 5
    sid = data.sample_id(0)
    assert sid.startswith("r") and data.item(0) == reviews.loc[sid, "review"]
    assert data.valid.labels[0] == ["bad", "good"].index(reviews.loc[sid, "stars"])


def test_split_column_is_used_as_is(reviews: pd.DataFrame) -> None:
    data = Data.from_dataframe(reviews, text="review", label="stars", split="part")
    assert len(data.train) == 14 and len(data.valid) == 6
    assert [data.sample_id(i) for i in range(6)] == [f"r{i}" for i in range(14, 20)]
    assert data.class_counts("valid").tolist() == [3, 3]


def test_image_paths(tmp_path: Path, write_image) -> None:
    paths = [write_image(tmp_path / f"{i}.png", value=i * 20, mode="L") for i in range(6)]
    df = pd.DataFrame({"file": [str(p) for p in paths[:3]] + paths[3:], "y": [0, 1, 0, 1, 0, 1]})
    data = Data.from_dataframe(df, image="file", label="y", valid_fraction=0.34)
    assert data.classes == ["0", "1"] and data.train.paths is not None
    row = int(data.sample_id(0))
    assert np.asarray(data.item(0))[0, 0] == row * 20


def test_in_memory_images_pil_and_arrays() -> None:
    pil = [Image.new("RGB", (4, 3), (i, 0, 0)) for i in range(4)]
    arrays = [np.full((3, 4), 9, np.uint8) for _ in range(4)]  # grey arrays join RGB ones as RGB
    df = pd.DataFrame({"img": pil + arrays, "label": ["a", "b"] * 4})
    data = Data.from_dataframe(df, image="img", label="label", valid_fraction=0.5)
    assert data.train.images.shape == (4, 3, 4, 3) and data.train.images.dtype == np.uint8
    item = data.item(0)
    assert item.mode == "RGB" and item.size == (4, 3)


def test_missing_column_lists_the_available_ones(reviews: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"column 'sentiment' \(given as label=\) is not in the DataFrame\. "
                       r"Available columns: 'review', 'stars', 'part'\. Pass one of them"):  # fmt: skip
        Data.from_dataframe(reviews, text="review", label="sentiment")
    with pytest.raises(DataError, match=r"column 'reveiw' \(given as text=\).*Did you mean: 'review'\?"):
        Data.from_dataframe(reviews, text="reveiw", label="stars")


def test_both_or_neither_text_and_image(reviews: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"You passed both text= and image=\. Pass exactly one: text='column'"):
        Data.from_dataframe(reviews, text="review", image="review", label="stars")
    with pytest.raises(ConfigError, match=r"You passed neither text= nor image=\. Pass exactly one"):
        Data.from_dataframe(reviews, label="stars")


def test_nan_labels_name_rows(reviews: pd.DataFrame) -> None:
    reviews.loc[["r3", "r7"], "stars"] = None
    with pytest.raises(DataError, match=r"2 rows \(r3, r7\) of 20 have no label \(None or NaN\).*dropna"):
        Data.from_dataframe(reviews, text="review", label="stars")


def test_nan_labels_in_a_float_column() -> None:
    df = pd.DataFrame({"t": list("abcdefgh"), "y": [0, 1, np.nan, 1, 0, 1, 0, np.nan]})
    with pytest.raises(DataError, match=r"2 rows \(2, 7\) of 8 have no label"):
        Data.from_dataframe(df, text="t", label="y")
    data = Data.from_dataframe(df.dropna(), text="t", label="y", valid_fraction=0.34)
    assert data.classes == ["0", "1"]  # 0.0 / 1.0 floats read as the ints they are


def test_non_text_values_in_text_column(reviews: pd.DataFrame) -> None:
    reviews.loc["r5", "review"] = None
    with pytest.raises(DataError, match=r"1 row \(r5\) of the column 'review' texts are not strings.*astype\(str\)"):
        Data.from_dataframe(reviews, text="review", label="stars")


def test_bad_split_values(reviews: pd.DataFrame) -> None:
    reviews.loc["r19", "part"] = "test"
    with pytest.raises(DataError, match=r"1 row \(r19\) of split column 'part' hold 'test'\. Use 'train' or 'valid'"):
        Data.from_dataframe(reviews, text="review", label="stars", split="part")
    reviews["part"] = "train"
    with pytest.raises(DataError, match=r"split column 'part' has no 'valid' rows"):
        Data.from_dataframe(reviews, text="review", label="stars", split="part")


def test_split_column_class_only_in_valid(reviews: pd.DataFrame) -> None:
    reviews.loc["r19", "stars"] = "meh"
    with pytest.raises(DataError, match=r"class 'meh' appears in the valid split but not in train"):
        Data.from_dataframe(reviews, text="review", label="stars", split="part")


def test_missing_and_corrupt_image_files(tmp_path: Path, write_image) -> None:
    good = [str(write_image(tmp_path / f"{i}.png")) for i in range(3)]
    df = pd.DataFrame({"f": good + [str(tmp_path / "gone.png")], "y": [0, 1, 0, 1]})
    with pytest.raises(DataNotFoundError, match=r"1 file\(s\) named in column 'f' do not exist: 3: '.*gone\.png'"):
        Data.from_dataframe(df, image="f", label="y")
    (tmp_path / "gone.png").write_text("not an image")
    with pytest.raises(DataError, match=r"1 image file cannot be read: '.*gone\.png' \(UnidentifiedImageError"):
        Data.from_dataframe(df, image="f", label="y")


def test_in_memory_images_of_different_sizes() -> None:
    df = pd.DataFrame({"img": [np.zeros((3, 4), np.uint8)] * 3 + [np.zeros((5, 5), np.uint8)], "y": [0, 1] * 2})
    with pytest.raises(DataError, match=r"come in 2 sizes \(4x3, 5x5\); 1 row \(3\) differ.*resize them first"):
        Data.from_dataframe(df, image="img", label="y")


def test_mixed_image_column() -> None:
    df = pd.DataFrame({"img": [np.zeros((3, 4), np.uint8), "a.png", 5, 6], "y": [0, 1] * 2})
    msg = (r"must hold only file paths, or only PIL images /"
           r" numpy arrays; 2 rows \(2, 3\)")
    with pytest.raises(DataError, match=msg):
        Data.from_dataframe(df, image="img", label="y")


def test_not_a_dataframe() -> None:
    with pytest.raises(DataError, match=r"needs a pandas DataFrame, got dict"):
        Data.from_dataframe({"t": ["a"]}, text="t", label="y")


def test_single_class_and_one_sample_class() -> None:
    df = pd.DataFrame({"t": list("abcd"), "y": ["spam"] * 4})
    with pytest.raises(DataError, match=r"only one class \('spam'\) found in 4 labels"):
        Data.from_dataframe(df, text="t", label="y")
    df.loc[3, "y"] = "ham"
    with pytest.raises(DataError, match=r"class 'ham' \(1\) has fewer than 2 samples"):
        Data.from_dataframe(df, text="t", label="y")


def test_relative_image_paths_survive_a_change_of_directory(
    tmp_path: Path, write_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for i in range(4):
        write_image(tmp_path / "imgs" / f"{i}.png", value=i)
    df = pd.DataFrame({"f": [f"imgs/{i}.png" for i in range(4)], "y": [0, 1, 0, 1]})
    data = Data.from_dataframe(df, image="f", label="y", valid_fraction=0.5)
    monkeypatch.chdir(tmp_path.parent)
    assert data.item(0).size == (6, 4)
