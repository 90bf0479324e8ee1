"""Data and Split: labelled items in two splits, with the raw thing a person looks at.

A Split stores its items one way: `images` (uint8 array in memory), `texts` (list of str) or
`paths` (image files opened on demand). Labels are always int64 indices into `Data.classes`.
Every check runs before a Data is built, and errors name the problem and the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, DataError, suggest
from ..safety import same_form
from .checks import check_valid_fraction, check_seed, encode_labels, as_uint8_images, check_texts, load_image_file

SPLITS = ("train", "valid")


class Split:
    """One split (train or valid): int64 labels, ids, and the items stored one way."""

    def __init__(
        self,
        labels: np.ndarray,
        *,
        images: np.ndarray | None = None,
        texts: list[str] | None = None,
        paths: list[Path] | None = None,
        ids: Sequence[Any] | None = None,
    ) -> None:
        stores = [s for s in (images, texts, paths) if s is not None]
        if len(stores) != 1:
            raise ConfigError("A Split holds exactly one of images=, texts=, paths=. Pass one of them.")
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.images, self.texts, self.paths = images, texts, paths
        self.ids = [str(i) for i in (range(len(self.labels)) if ids is None else ids)]
        if not len(stores[0]) == len(self.labels) == len(self.ids):
            raise DataError(
                f"{len(stores[0])} items, {len(self.labels)} labels and {len(self.ids)} ids were given to one "
                "split. Pass one label (and id) per item."
            )

    def __len__(self) -> int:
        return len(self.labels)

    def _index(self, i: Any) -> int:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n:
            raise DataError(f"index {i!r} is out of range for a split of {n} samples. Use 0..{n - 1} (a whole number).")
        return int(i)

    def item(self, i: int) -> Image.Image | str:
        """The raw thing a person looks at: a PIL image ('L' or 'RGB') or the text."""
        i = self._index(i)
        if self.texts is not None:
            return self.texts[i]
        if self.images is not None:
            return Image.fromarray(self.images[i])
        return load_image_file(self.paths[i])

    def sample_id(self, i: int) -> str:
        """A stable id for exports: relative file path, or the original row index as str."""
        return self.ids[self._index(i)]

    def take(self, positions: Sequence[int] | np.ndarray) -> Split:
        """A new Split with the samples at `positions`, in that order."""
        pos = np.asarray(positions, dtype=np.int64)

        def pick(xs: list[Any] | None) -> list[Any] | None:
            return None if xs is None else [xs[p] for p in pos]

        images = None if self.images is None else self.images[pos]  # fancy indexing copies
        return Split(
            self.labels[pos], images=images, texts=pick(self.texts), paths=pick(self.paths), ids=pick(self.ids)
        )

    def __repr__(self) -> str:
        what = "texts" if self.texts is not None else "image files"
        if self.images is not None:
            what = f"images {self.images.shape[2]}x{self.images.shape[1]} {'RGB' if self.images.ndim == 4 else 'grey'}"
        return f"Split({len(self)} samples, {what})"


def stratified_split(full: Split, classes: list[str], valid_fraction: float, seed: int) -> tuple[Split, Split]:
    """Seeded stratified train/valid split: the same seed gives the same split."""
    counts = np.bincount(full.labels, minlength=len(classes))
    few = [f"{classes[c]!r} ({counts[c]})" for c in range(len(classes)) if counts[c] == 1]
    if few:
        raise DataError(
            f"class {', '.join(few[:5])} has fewer than 2 samples; a stratified split needs at least 2 per "
            "class (one for train, one for valid). Add samples, drop the class, or give your own valid split."
        )
    n, k = len(full), int((counts > 0).sum())
    n_valid = math.ceil(valid_fraction * n)  # as scikit-learn rounds it
    if n_valid < k or n - n_valid < k:
        raise DataError(
            f"valid_fraction={valid_fraction} of {n} samples leaves {n_valid} for valid and {n - n_valid} for "
            f"train, but each split needs at least one sample of each of the {k} classes. "
            f"Choose valid_fraction between {k / n:.2f} and {1 - k / n:.2f}, or add samples."
        )
    from sklearn.model_selection import train_test_split  # here, not at the top: keeps the import fast

    train_idx, valid_idx = train_test_split(
        np.arange(n), test_size=valid_fraction, stratify=full.labels, random_state=seed
    )
    return full.take(train_idx), full.take(valid_idx)


def assemble(
    cls: type[Data],
    kind: str,
    name: str,
    parts: Sequence[tuple[dict[str, Any], Sequence[Any]]],
    classes: Sequence[str] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """Build a Data from [(store, labels)]: one part is split stratified, two are (train, valid) as-is.

    `store` holds the Split keywords (images= / texts= / paths=, ids=).
    """
    labels = [lab for _, labs in parts for lab in (labs.tolist() if hasattr(labs, "tolist") else labs)]
    rows = None if len(parts) == 1 else [f"{s}[{i}]" for s, (_, labs) in zip(SPLITS, parts) for i in range(len(labs))]
    codes, classes = encode_labels(labels, classes, rows=rows)
    ends = np.cumsum([len(labs) for _, labs in parts])
    splits = [Split(codes[end - len(labs) : end], **store) for (store, labs), end in zip(parts, ends)]
    if len(splits) == 1:
        splits = list(stratified_split(splits[0], classes, valid_fraction, seed))
    return cls(kind, classes, splits[0], splits[1], name)


def _caps(caps: Any, classes: list[str], arg: str) -> np.ndarray | None:
    """Per-class caps from an int or a {class name: int} dict; -1 means no cap."""
    if caps is None:
        return None
    named = caps if isinstance(caps, dict) else dict.fromkeys(classes, caps)
    out = np.full(len(classes), -1, dtype=np.int64)
    for name, v in named.items():
        if name not in classes:
            raise ConfigError(
                f"subset({arg}=...) names class {name!r}, which is not one of {classes}."
                f"{suggest(str(name), classes)} Use the class names as keys."
            )
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"subset({arg}=...) got {v!r}; caps must be ints >= 0, e.g. {arg}=100.")
        out[classes.index(name)] = v
    return out


class Data:
    """Labelled data in a train and a valid split; `kind` is "image" or "text"."""

    def __init__(self, kind: str, classes: Sequence[str], train: Split, valid: Split, name: str = "data") -> None:
        if kind not in ("image", "text"):
            raise ConfigError(f"kind={kind!r} is unknown. Use kind='image' or kind='text'.")
        classes = [same_form(str(c)) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise DataError(f"classes {classes[:10]} must be at least 2 unique names. Fix the class list.")
        for split_name, split in (("train", train), ("valid", valid)):
            if (split.texts is not None) != (kind == "text"):
                raise ConfigError(f"the {split_name} split does not hold {kind}s. Build it with the right items.")
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(classes)):
                raise DataError(f"{split_name} labels fall outside 0..{len(classes) - 1}. Fix the labels.")
        if len(valid) == 0:  # every epoch is evaluated on it: refused here, so no consumer meets an empty one
            raise DataError(
                f"The valid split of {str(name)!r} is empty, so no epoch could be evaluated. Give the data a valid "
                "split: valid_fraction=0.2 when building it from one set of samples, valid=(items, labels), or a "
                "valid/ folder beside train/."
            )
        in_valid = np.bincount(valid.labels, minlength=len(classes)) > 0
        for c in np.flatnonzero(np.bincount(train.labels, minlength=len(classes)) == 0):
            where = "appears in the valid split but not in train" if in_valid[c] else "has no train samples"
            raise DataError(
                f"class {classes[c]!r} {where}, so the model could never learn it. Move some {classes[c]!r} "
                "samples into train, or drop the class."
            )
        self.kind, self.classes, self.train, self.valid, self.name = kind, classes, train, valid, str(name)
        # how it was made, as calls (session.to_code / to_script replay them); None: built in memory
        self.recipe: list[dict[str, Any]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _split(self, split: str) -> Split:
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} is unknown.{suggest(str(split), SPLITS)} Use 'train' or 'valid'.")
        return self.train if split == "train" else self.valid

    def item(self, i: int, split: str = "valid") -> Image.Image | str:
        """The raw thing a person looks at: a PIL image or the text of sample i."""
        return self._split(split).item(i)

    def sample_id(self, i: int, split: str = "valid") -> str:
        """A stable id for sample i: relative file path, or original row index as str."""
        return self._split(split).sample_id(i)

    def class_counts(self, split: str = "train") -> pd.Series:
        """Samples per class, in class order (index = class names)."""
        counts = np.bincount(self._split(split).labels, minlength=self.num_classes).astype(np.int64)
        return pd.Series(counts, index=pd.Index(self.classes, name="class"), name="count")

    def subset(
        self, train: int | dict[str, int] | None = None, valid: int | dict[str, int] | None = None, seed: int = 0
    ) -> Data:
        """At most n samples per class in each split (a dict caps per class); same seed, same subset."""
        seed = check_seed(seed)
        caps = [_caps(train, self.classes, "train"), _caps(valid, self.classes, "valid")]
        if caps[0] is not None and (caps[0] == 0).any():
            empty = ", ".join(repr(self.classes[c]) for c in np.flatnonzero(caps[0] == 0)[:5])
            raise ConfigError(
                f"subset(train=...) would leave class {empty} with 0 train samples. "
                "Give every class a train cap of at least 1."
            )
        counts = np.bincount(self.valid.labels, minlength=self.num_classes)
        if caps[1] is not None and np.where(caps[1] >= 0, np.minimum(caps[1], counts), counts).sum() == 0:
            raise ConfigError(
                f"subset(valid={valid!r}) would leave the valid split empty, and every epoch is evaluated on it. "
                "Keep some valid samples, e.g. subset(valid=20) (a dict caps classes one by one)."
            )
        parts = []
        for offset, (split, cap) in enumerate(zip((self.train, self.valid), caps)):
            rng = np.random.default_rng([seed, offset])  # one stream per split: valid caps don't move train
            keep = [np.flatnonzero(split.labels == c) for c in range(self.num_classes)]
            if cap is not None:
                keep = [rng.choice(p, int(n), replace=False) if 0 <= n < len(p) else p for p, n in zip(keep, cap)]
            parts.append(split.take(np.sort(np.concatenate(keep))))
        out = type(self)(self.kind, self.classes, parts[0], parts[1], self.name)
        if self.recipe is not None:
            from ..validate import jsonable  # numpy counts become plain numbers (a checkpoint is JSON)

            caps = jsonable({"train": train, "valid": valid, "seed": seed})
            out.recipe = [*self.recipe, {"call": "subset", "kwargs": caps}]
        return out

    def with_label_noise(self, fraction: float = 0.1, seed: int = 0) -> Data:
        """A copy whose train split has `fraction` of its labels flipped to another class at random
        (valid stays clean): planted noise, to see how label-issue signals find it (data/noise.py).
        The flipped positions are those where the copy's train labels differ from these."""
        from .noise import flipped_labels

        labels = flipped_labels(self.train.labels, self.num_classes, fraction, seed)
        train = self.train.take(np.arange(len(self.train)))
        train.labels = labels
        out = type(self)(self.kind, self.classes, train, self.valid, self.name)
        if self.recipe is not None:
            out.recipe = [*self.recipe, {"call": "with_label_noise", "kwargs": {"fraction": float(fraction), "seed": seed}}]
        return out

    # ---- data.show(): a sample grid (issue 16; the logic lives in show.py) -----------------------
    def show(self, n: int = 12, split: str = "train", seed: int = 0):
        """`n` samples with their labels, spread over the classes: a grid in a notebook (HTML), a list in a terminal."""
        from .show import SampleGrid

        return SampleGrid(self, n=n, split=split, seed=seed)

    def __repr__(self) -> str:
        names = [repr(c if len(c) <= 20 else c[:19] + "…") for c in self.classes]
        shown = ", ".join(names if len(names) <= 6 else names[:3] + ["..."] + names[-2:])
        return (
            f"Data({self.name!r}, kind={self.kind!r}, {self.num_classes} classes [{shown}], "
            f"train={len(self.train)}, valid={len(self.valid)})"
        )

    # --- constructors: in-memory here, the real loaders in sources.py ------------------------

    @classmethod
    def _from_memory(
        cls, kind: str, name: str, items: Any, labels: Any, classes: Any, valid: Any, vf: Any, seed: Any
    ) -> Data:
        """Shared body of from_arrays / from_texts: check the items, then assemble."""
        seed = check_seed(seed)
        if valid is None:
            vf = check_valid_fraction(vf)
        elif not (isinstance(valid, (tuple, list)) and len(valid) == 2):
            raise ConfigError(f"valid= must be a pair (items, labels), got {type(valid).__name__}. Pass valid=(x, y).")
        parts = []
        for which, (its, labs) in zip(SPLITS if valid else ("data",), [(items, labels)] + ([valid] if valid else [])):
            checked = as_uint8_images(its, f"{which} images") if kind == "image" else check_texts(its, which)
            if len(checked) != len(labs):
                raise DataError(
                    f"{len(checked)} {kind}s but {len(labs)} labels were given ({which}). Pass one label per item."
                )
            store = {"images" if kind == "image" else "texts": checked}
            parts.append((store, labs))
        return assemble(cls, kind, name, parts, classes, vf, seed)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: Sequence[Any] | np.ndarray,
        classes: Sequence[str] | None = None,
        *,
        name: str = "arrays",
        valid_fraction: float = 0.2,
        seed: int = 0,
        valid: tuple[np.ndarray, Any] | None = None,
    ) -> Data:
        """Images in memory (uint8 (N, H, W) or (N, H, W, 3)); valid=(images, labels) for an own split."""
        return cls._from_memory("image", name, images, labels, classes, valid, valid_fraction, seed)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        labels: Sequence[Any] | np.ndarray,
        classes: Sequence[str] | None = None,
        *,
        name: str = "texts",
        valid_fraction: float = 0.2,
        seed: int = 0,
        valid: tuple[Sequence[str], Any] | None = None,
    ) -> Data:
        """Texts in memory; valid=(texts, labels) for an own split."""
        return cls._from_memory("text", name, texts, labels, classes, valid, valid_fraction, seed)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, *, valid_fraction: float = 0.2, seed: int = 0) -> Data:
        """ImageFolder layout: one sub-folder per class (or train/ and valid/ holding them)."""
        from .sources import from_folder

        data = from_folder(cls, path, valid_fraction=valid_fraction, seed=seed)
        data.recipe = [{"call": "wb.Data.from_folder", "args": [str(Path(path).expanduser().resolve())],
                        "kwargs": {"valid_fraction": valid_fraction, "seed": seed}}]
        return data

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        label: str,
        text: str | None = None,
        image: str | None = None,
        split: str | None = None,
        valid_fraction: float = 0.2,
        seed: int = 0,
        name: str = "dataframe",
    ) -> Data:
        """A DataFrame with a label column and a text or an image column (paths, PIL images or arrays)."""
        from .sources import from_dataframe

        kw = dict(label=label, text=text, image=image, split=split, valid_fraction=valid_fraction, seed=seed, name=name)
        return from_dataframe(cls, df, **kw)

    @classmethod
    def from_torchvision(
        cls,
        name: str,
        root: str | os.PathLike,
        *,
        download: bool = True,
        valid_fraction: float | None = None,
        seed: int = 0,
    ) -> Data:
        """A torchvision dataset ("CIFAR10", "MNIST", ...): train=True as train, train=False as valid."""
        from .sources import from_torchvision

        data = from_torchvision(cls, name, root, download=download, valid_fraction=valid_fraction, seed=seed)
        data.recipe = [{"call": "wb.Data.from_torchvision", "args": [name, str(Path(root).expanduser().resolve())],
                        "kwargs": {"download": download, "valid_fraction": valid_fraction, "seed": seed}}]
        return data

    @classmethod
    def from_hf(
        cls,
        name: str,
        *,
        text: str = "text",
        label: str = "label",
        train_split: str = "train",
        valid_split: str | None = "validation",
        seed: int = 0,
        valid_fraction: float = 0.2,
    ) -> Data:
        """A Hugging Face text dataset via `datasets.load_dataset(name)`; see sources.from_hf."""
        from .sources import from_hf

        kw = dict(text=text, label=label, train_split=train_split, valid_split=valid_split, seed=seed)
        data = from_hf(cls, name, valid_fraction=valid_fraction, **kw)
        data.recipe = [{"call": "wb.Data.from_hf", "args": [name], "kwargs": {**kw, "valid_fraction": valid_fraction}}]
        return data
