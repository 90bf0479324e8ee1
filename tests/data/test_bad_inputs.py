"""Bad inputs at the data boundary: each gets a clear error, or is read the way a person means it."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from PIL import Image

import workbench as wb
from workbench.errors import ConfigError, DataError


@pytest.mark.parametrize("path", [123, None, 4.5, ["a"]])
def test_from_folder_needs_a_path(path) -> None:
    with pytest.raises(ConfigError, match="from_folder needs the path of a folder"):
        wb.Data.from_folder(path)


def test_labels_mixing_a_number_and_its_text_are_named() -> None:
    texts = ["a", "b", "c", "d", "e", "f"]
    with pytest.raises(DataError, match=r"labels mix numbers and text for the same class: 1 and '1' \(e.g. row 3\)"):
        wb.Data.from_texts(texts, [0, 1, 0, "1", 0, 1], valid_fraction=0.5)
    ok = wb.Data.from_texts(texts, ["0", "1", "0", "1", "0", "1"], valid_fraction=0.5)
    assert ok.classes == ["0", "1"]


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path) -> None:
    for c, level in (("dark", 8000), ("bright", 60000)):
        (tmp_path / c).mkdir()
        for i in range(3):
            arr = np.full((8, 8), level + i, dtype=np.uint16)
            arr[0, 0] = 0
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    probe = Image.open(tmp_path / "dark" / "0.png")
    assert probe.mode.startswith("I"), probe.mode  # really a 16-bit file
    data = wb.Data.from_folder(tmp_path, valid_fraction=0.34)
    for split in ("train", "valid"):
        for i in range(len(getattr(data, split))):
            image = np.asarray(data.item(i, split))
            expected = round(8000 / 257) if data.classes[getattr(data, split).labels[i]] == "dark" else round(60000 / 257)
            assert image.dtype == np.uint8 and image[0, 0] == 0 and abs(int(image[4, 4]) - expected) <= 1


def test_class_names_that_differ_only_in_unicode_form_are_one_class(tmp_path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    texts = [f"t{i}" for i in range(8)]
    data = wb.Data.from_texts(texts, [nfc, nfd, "tea", "tea", nfc, nfd, "tea", "tea"], valid_fraction=0.5)
    assert data.classes == ["café", "tea"] and data.num_classes == 2
    for name in (nfc, nfd, "tea"):
        (tmp_path / name).mkdir(exist_ok=True)
    for i, name in enumerate([nfc, nfd, "tea", "tea", nfc, nfd, "tea", "tea"]):
        Image.new("L", (8, 8), i * 20).save(tmp_path / name / f"{i}.png")
    folder = wb.Data.from_folder(tmp_path, valid_fraction=0.5)
    assert folder.classes == [nfc, "tea"] and folder.class_counts("train").sum() + len(folder.valid) == 8


def test_an_empty_valid_split_is_refused_where_the_data_is_made() -> None:
    """Every epoch is evaluated on the valid split, so no Data has an empty one: each constructor refuses
    it with the fix, and nothing downstream (Session, analysis, widgets, scripts) meets one."""
    train = wb.load_data("digits").train
    empty = train.take(np.array([], dtype=np.int64))
    with pytest.raises(DataError, match=r"valid split of 'no-valid' is empty.*valid_fraction=0.2"):
        wb.Data("image", [str(i) for i in range(10)], train, empty, "no-valid")
    with pytest.raises(DataError, match="valid split of '[a-z]+' is empty"):
        wb.Data.from_texts(["a", "b", "c", "d"], [0, 1, 0, 1], valid=([], []))
    with pytest.raises(DataError, match="valid split of '[a-z]+' is empty"):
        wb.Data.from_arrays(np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 1], ["a", "b"],
                            valid=(np.zeros((0, 8, 8), np.uint8), []))
