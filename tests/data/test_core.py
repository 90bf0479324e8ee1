"""Data and Split built from memory: labels, splits, subset, items and the errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.data import Data, Split, load_data
from workbench.errors import ConfigError, DataError, WorkbenchError


def images(n: int, rgb: bool = False) -> np.ndarray:
    shape = (n, 5, 7, 3) if rgb else (n, 5, 7)
    return (np.arange(n * int(np.prod(shape[1:]))) % 256).astype(np.uint8).reshape(shape)


def test_from_arrays_int_labels_make_sorted_digit_classes() -> None:
    labels = [10, 2, 2, 10, 2, 10, 2, 10, 1, 1]
    data = Data.from_arrays(images(10), labels, valid_fraction=0.5)
    assert data.classes == ["1", "2", "10"]  # natural order, not "1", "10", "2"
    assert data.kind == "image" and len(data.train) == 5 and len(data.valid) == 5
    assert data.class_counts("valid").tolist() == [1, 2, 2]


def test_string_labels_sorted_alphabetically_and_digit_strings_naturally() -> None:
    data = Data.from_texts(["a"] * 6, ["pos", "neg", "pos", "neg", "pos", "neg"], valid_fraction=0.34)
    assert data.classes == ["neg", "pos"]
    data = Data.from_texts(["a"] * 6, ["10", "9", "10", "9", "10", "9"], valid_fraction=0.34)
    assert data.classes == ["9", "10"]


def test_given_classes_keep_their_order_and_map_strings_and_ints() -> None:
    data = Data.from_texts(list("abcdef"), ["fresh", "rotten"] * 3, ["rotten", "fresh"], valid_fraction=0.34)
    assert data.classes == ["rotten", "fresh"]
    assert sorted(zip(data.train.texts, data.train.labels.tolist())) == [
        (t, 1 if "abcdef".index(t) % 2 == 0 else 0) for t in sorted(data.train.texts)
    ]
    data = Data.from_arrays(images(4), np.array([0, 1, 0, 1]), ["cat", "dog"], valid=(images(2), [1, 0]))
    assert data.valid.labels.tolist() == [1, 0] and data.num_classes == 2


def test_rgb_arrays_give_rgb_items_and_ids_are_row_positions() -> None:
    x = images(8, rgb=True)
    data = Data.from_arrays(x, [0, 1] * 4, ["a", "b"], valid_fraction=0.25, seed=3)
    img = data.item(1)
    assert img.mode == "RGB" and img.size == (7, 5)
    row = int(data.sample_id(1))
    assert np.array_equal(np.asarray(img), x[row])
    last = len(data.train) - 1
    assert data.item(last, "train") == Image.fromarray(x[int(data.sample_id(last, "train"))])


def test_float_images_with_integer_values_are_converted() -> None:
    data = Data.from_arrays(images(4).astype(np.float64), [0, 1, 0, 1], valid=(images(2)[..., None], [0, 1]))
    assert data.train.images.dtype == np.uint8 and data.valid.images.shape == (2, 5, 7)


def test_own_valid_split_is_used_as_is() -> None:
    data = Data.from_texts(["a", "b", "c"], [0, 1, 1], ["x", "y"], valid=(["d", "e"], [1, 0]))
    assert data.train.texts == ["a", "b", "c"] and data.valid.texts == ["d", "e"]


def test_same_seed_same_split_other_seed_other_split() -> None:
    x, y = images(40), [i % 2 for i in range(40)]
    ids = lambda d: [d.sample_id(i) for i in range(len(d.valid))]  # noqa: E731
    assert ids(Data.from_arrays(x, y, seed=5)) == ids(Data.from_arrays(x, y, seed=5))
    assert ids(Data.from_arrays(x, y, seed=5)) != ids(Data.from_arrays(x, y, seed=6))


def test_class_counts_is_a_series_in_class_order() -> None:
    data = Data.from_texts(["t"] * 10, ["b"] * 6 + ["a"] * 4, valid_fraction=0.5)
    counts = data.class_counts()
    assert isinstance(counts, pd.Series) and counts.index.tolist() == ["a", "b"] and counts.tolist() == [2, 3]


def test_repr_is_one_readable_line() -> None:
    data = Data.from_texts(["t"] * 24, [f"class{i}" for i in range(12)] * 2, valid_fraction=0.5, name="many")
    text = repr(data)
    assert text == (
        "Data('many', kind='text', 12 classes ['class0', 'class1', 'class10', ..., 'class8', 'class9'], "
        "train=12, valid=12)"
    )
    assert repr(data.train) == "Split(12 samples, texts)"


def test_subset_caps_per_class_deterministic() -> None:
    data = load_data("digits")
    small = data.subset(train=20, valid=5, seed=1)
    assert small.class_counts("train").tolist() == [20] * 10
    assert small.class_counts("valid").tolist() == [5] * 10
    assert small.classes == data.classes and len(data.train) == 1437  # the original is unchanged
    again = data.subset(train=20, valid=5, seed=1)
    assert [again.sample_id(i, "train") for i in range(200)] == [small.sample_id(i, "train") for i in range(200)]
    other = data.subset(train=20, valid=5, seed=2)
    assert {other.sample_id(i, "train") for i in range(200)} != {small.sample_id(i, "train") for i in range(200)}
    # kept samples keep their labels and images
    row = [data.sample_id(i, "train") for i in range(len(data.train))].index(small.sample_id(0, "train"))
    assert np.array_equal(small.train.images[0], data.train.images[row])
    assert small.train.labels[0] == data.train.labels[row]


def test_subset_dict_caps_build_an_imbalanced_set() -> None:
    data = load_data("digits")
    imb = data.subset(train={"0": 5, "1": 200})
    counts = imb.class_counts("train")
    assert counts["0"] == 5 and counts["1"] == 146  # a cap above the count keeps them all
    assert counts.drop(["0", "1"]).tolist() == data.class_counts("train").drop(["0", "1"]).tolist()
    assert len(imb.valid) == len(data.valid)


def test_subset_bad_caps() -> None:
    data = load_data("digits")
    with pytest.raises(ConfigError, match=r"would leave class '3' with 0 train samples\. Give every class"):
        data.subset(train={"3": 0})
    with pytest.raises(ConfigError, match=r"names class 'ten'.*Use the class names as keys"):
        data.subset(train={"ten": 3})
    with pytest.raises(ConfigError, match=r"subset\(valid=\.\.\.\) got -1; caps must be ints >= 0"):
        data.subset(valid=-1)
    with pytest.raises(ConfigError, match=r"subset\(valid=0\) would leave the valid split empty.*subset\(valid=20\)"):
        data.subset(valid=0)  # every epoch is evaluated on it: refused here, not at the first fit
    with pytest.raises(ConfigError, match=r"would leave the valid split empty"):
        data.subset(valid={c: 0 for c in data.classes})
    assert data.subset(valid={"3": 0}).class_counts("valid")["3"] == 0  # one class left out of valid is fine


def test_item_and_split_errors() -> None:
    data = Data.from_texts(["a", "b", "c", "d"], [0, 1, 0, 1], valid_fraction=0.5)
    with pytest.raises(DataError, match=r"index 2 is out of range for a split of 2 samples\. Use 0\.\.1"):
        data.item(2)
    msg = (r"split='trian' is unknown\. Did you mean:"
           r" 'train'\?.*Use 'train' or 'valid'")
    with pytest.raises(ConfigError, match=msg):
        data.item(0, split="trian")


def test_missing_labels_name_the_rows() -> None:
    with pytest.raises(DataError, match=r"3 rows \(1, 3, 4\) of 6 have no label \(None or NaN\)\. Drop those rows"):
        Data.from_texts(list("abcdef"), ["x", None, "y", float("nan"), np.nan, "x"])


def test_single_class() -> None:
    with pytest.raises(DataError, match=r"only one class \('cat'\) found in 4 labels.*Add samples of another class"):
        Data.from_arrays(images(4), ["cat"] * 4)


def test_class_with_one_sample_cannot_be_stratified() -> None:
    with pytest.raises(DataError, match=r"class 'bird' \(1\) has fewer than 2 samples.*give your own valid split"):
        Data.from_texts(list("abcde"), ["cat", "cat", "dog", "dog", "bird"])


def test_valid_fraction_too_small_for_the_classes() -> None:
    with pytest.raises(DataError, match=r"leaves 1 for valid .* each of the 3 classes\. Choose valid_fraction"):
        Data.from_texts(["t"] * 30, [0, 1, 2] * 10, valid_fraction=0.01)


def test_valid_class_absent_from_train() -> None:
    with pytest.raises(DataError, match=r"class 'dog' appears in the valid split but not in train.*Move some 'dog'"):
        Data.from_texts(["a", "b"], ["cat", "cow"], valid=(["c"], ["dog"]))


def test_label_out_of_range_or_unknown() -> None:
    with pytest.raises(DataError, match=r"1 row \(2\) have labels \(5\) that match none of the 2 classes"):
        Data.from_texts(["a", "b", "c"], [0, 1, 5], ["x", "y"])
    with pytest.raises(DataError, match=r"\('dgo'\) that match none.*Did you mean: 'dog'\?"):
        Data.from_texts(["a", "b", "c"], ["cat", "dog", "dgo"], ["cat", "dog"])


def test_bad_arrays_and_lengths() -> None:
    with pytest.raises(DataError, match=r"have shape \(4, 3, 5, 7\), channels first.*transpose\(0, 2, 3, 1\)"):
        Data.from_arrays(np.zeros((4, 3, 5, 7), np.uint8), [0, 1, 0, 1])
    with pytest.raises(DataError, match=r"values 0\.5\.\.0\.5; Data stores images as uint8 0\.\.255"):
        Data.from_arrays(np.full((4, 2, 2), 0.5), [0, 1, 0, 1])
    with pytest.raises(DataError, match=r"3 images but 4 labels were given"):
        Data.from_arrays(images(3), [0, 1, 0, 1])
    with pytest.raises(DataError, match=r"1 row \(2\) of the data texts are not strings"):
        Data.from_texts(["a", "b", None, "c"], [0, 1, 0, 1])


def test_bad_seed_and_every_error_is_a_workbench_error() -> None:
    with pytest.raises(ConfigError, match=r"seed=-1 is not a non-negative integer"):
        Data.from_texts(["a", "b", "c", "d"], [0, 1, 0, 1], seed=-1)
    assert issubclass(ConfigError, WorkbenchError) and issubclass(DataError, ValueError)


def test_split_needs_exactly_one_store() -> None:
    with pytest.raises(ConfigError, match="exactly one of images=, texts=, paths="):
        Split(np.zeros(2), texts=["a", "b"], images=images(2))
