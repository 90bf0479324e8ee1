"""Real loaders: image folders, DataFrames, torchvision and Hugging Face datasets.

torch, torchvision and `datasets` are imported inside the functions that need them, so
`import workbench.data` stays fast. A failed download becomes HubUnavailableError naming the
bundled datasets that work offline; the original error is chained (`from`), never swallowed.
"""

from __future__ import annotations

import inspect
import os
import struct
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, DataError, DataNotFoundError, HubUnavailableError, MissingDependencyError, suggest
from .checks import (
    as_uint8_images,
    check_seed,
    check_texts,
    check_valid_fraction,
    describe_rows,
    encode_labels,
    sort_classes,
    stack_images,
)
from ..safety import same_form
from .core import Split, assemble, stratified_split

if TYPE_CHECKING:
    from .core import Data

# The same list as torchvision.datasets.folder.IMG_EXTENSIONS, kept here to avoid importing torch.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VALID_FOLDERS = ("valid", "val")
SPLIT_VALUES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid"}
OFFLINE_ALTERNATIVES = (
    'Bundled datasets work offline: wb.load_data("mnist-5k"), wb.load_data("digits") (images), '
    'wb.load_data("rotten-tomatoes"), wb.load_data("sms-spam") (texts).'
)
PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:240]}{'...' if len(text) > 240 else ''}"


def _hub_error(what: str, e: BaseException, extra: str = "", summary: str = "") -> HubUnavailableError:
    return HubUnavailableError(
        f"Downloading {what} failed ({summary or _one_line(e)}). This machine seems to be offline or cannot "
        f"reach the server. {OFFLINE_ALTERNATIVES}{extra}"
    )


def verify_image(path: Path) -> str | None:
    """Cheap header check of one image file: why it is bad, or None when it looks fine."""
    try:
        with Image.open(path) as im:
            im.verify()
    except PIL_ERRORS as e:
        return f"{type(e).__name__}: {e}"
    return None


def _check_files(paths: list[Path], shown: list[str]) -> None:
    bad = [(s, why) for p, s in zip(paths, shown) if (why := verify_image(p)) is not None]
    if bad:
        listed = "; ".join(f"{s!r} ({why})" for s, why in bad[:3]) + (" ..." if len(bad) > 3 else "")
        raise DataError(
            f"{len(bad)} image file{'s' if len(bad) > 1 else ''} cannot be read: {listed}. "
            "Delete or replace the bad file(s), then load again."
        )


def _class_dirs(folder: Path) -> list[Path]:
    return [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _scan(folder: Path, root: Path) -> dict[str, list[Path]]:
    """{class name: image paths} (recursive, like ImageFolder); errors name the empty class."""
    dirs = _class_dirs(folder)
    if not dirs:
        loose = sum(_is_image(p.name) for p in folder.iterdir() if p.is_file())
        found = f" (found {loose} images directly inside it)" if loose else ""
        raise DataError(
            f"folder {str(folder)!r} has no class sub-folders{found}. Data.from_folder expects one folder per "
            f"class: {folder.name}/<class name>/<image>.png, or train/ and valid/ folders each holding those."
        )
    out: dict[str, list[Path]] = {}
    for d in sorted(dirs):
        files = []
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            files += [Path(dirpath, f) for f in sorted(filenames) if _is_image(f)]
        if not files:
            raise DataError(
                f"class folder {d.relative_to(root).as_posix()!r} holds no image files "
                f"({', '.join(IMG_EXTENSIONS)}). Add images to it or remove the folder."
            )
        # one class per name as a person reads it: "café" typed on a Mac (NFD) and on Linux (NFC)
        out.setdefault(same_form(d.name), []).extend(files)
    return out


def from_folder(cls: type[Data], path: str | os.PathLike, *, valid_fraction: float = 0.2, seed: int = 0) -> Data:
    """ImageFolder layout; train/ + valid/ (or val/) sub-folders are used as the split."""
    seed = check_seed(seed)
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"from_folder needs the path of a folder (a str or pathlib.Path), got {type(path).__name__} "
                          f"{path!r}. Pass e.g. Data.from_folder('photos/').")
    root = Path(path).expanduser()
    if not root.is_dir():
        if root.exists():
            raise DataNotFoundError(
                f"{str(root)!r} is a file, not a folder. Pass the folder holding the class folders."
            )
        raise DataNotFoundError(
            f"folder {str(root)!r} does not exist (working directory: {os.getcwd()!r}). "
            "Check the path, or pass an absolute one."
        )
    subdirs = {d.name for d in _class_dirs(root)}
    valid_dirs = [v for v in VALID_FOLDERS if v in subdirs]
    if len(valid_dirs) > 1:
        raise DataError(f"folder {str(root)!r} has both valid/ and val/. Keep one of them as the valid split.")
    if "train" in subdirs and not valid_dirs:
        raise DataError(
            f"folder {str(root)!r} has a train/ folder but no valid/ or val/ folder. Add valid/ (class folders "
            "inside) to use your own split, or move the class folders up to let Data split them."
        )
    if not valid_dirs:
        valid_fraction = check_valid_fraction(valid_fraction)
    scans = [_scan(root / "train", root), _scan(root / valid_dirs[0], root)] if valid_dirs else [_scan(root, root)]
    classes = sort_classes(list(set().union(*scans)))
    if len(classes) < 2:
        raise DataError(
            f"folder {str(root)!r} has one class folder ({classes[0]!r}); a classifier needs at least 2 classes. "
            "Add one sub-folder of images per class."
        )
    parts = []
    for scan in scans:
        paths = [p for c in sort_classes(list(scan)) for p in scan[c]]
        ids = [p.relative_to(root).as_posix() for p in paths]
        _check_files(paths, ids)
        labels = [classes.index(c) for c in sort_classes(list(scan)) for _ in scan[c]]
        parts.append(Split(np.array(labels, dtype=np.int64), paths=paths, ids=ids))
    train, valid = parts if valid_dirs else stratified_split(parts[0], classes, valid_fraction, seed)
    return cls("image", classes, train, valid, root.resolve().name)


def _column(df: pd.DataFrame, col: Any, arg: str) -> pd.Series:
    if col not in df.columns:
        cols = [str(c) for c in df.columns]
        raise DataError(
            f"column {col!r} (given as {arg}=) is not in the DataFrame.{suggest(str(col), cols)} "
            f"Available columns: {', '.join(map(repr, cols))}. Pass one of them."
        )
    return df[col]


def _image_column(values: list[Any], rows: list[Any], col: str) -> dict[str, Any]:
    """Paths (checked on disk) or in-memory images (stacked) from a DataFrame column."""
    empty = [r for v, r in zip(values, rows) if v is None or (isinstance(v, float) and np.isnan(v))]
    if empty:
        raise DataError(f"{describe_rows(empty)} of image column {col!r} are empty. Drop them or fill them in.")
    is_path = [isinstance(v, (str, os.PathLike)) for v in values]
    is_image = [isinstance(v, (Image.Image, np.ndarray)) for v in values]
    if all(is_path):
        paths = [Path(v).expanduser().absolute() for v in values]  # item() must not depend on the cwd
        absent = [f"{r}: {str(p)!r}" for p, r in zip(paths, rows) if not p.is_file()]
        if absent:
            raise DataNotFoundError(
                f"{len(absent)} file(s) named in column {col!r} do not exist: {'; '.join(absent[:3])}"
                f"{' ...' if len(absent) > 3 else ''}. Fix the paths (relative ones start at {os.getcwd()!r})."
            )
        _check_files(paths, [str(p) for p in paths])
        return {"paths": paths}
    if all(is_image):
        return {"images": stack_images(values, rows, f"images in column {col!r}")}
    odd = [r for r, a, b in zip(rows, is_path, is_image) if not (a or b)]
    raise DataError(
        f"image column {col!r} must hold only file paths, or only PIL images / numpy arrays; "
        f"{describe_rows(odd) + ' hold other things' if odd else 'paths and in-memory images are mixed'}. "
        "Make the column one kind."
    )


def from_dataframe(
    cls: type[Data],
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
    """Rows of (text or image, label); a `split` column with 'train'/'valid' gives an own split."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}. Pass pd.DataFrame(...).")
    if (text is None) == (image is None):
        given = "both text= and image=" if text is not None else "neither text= nor image="
        raise ConfigError(
            f"You passed {given}. Pass exactly one: text='column' for texts or image='column' for images."
        )
    seed = check_seed(seed)
    if split is None:
        valid_fraction = check_valid_fraction(valid_fraction)
    labels = _column(df, label, "label")
    items = _column(df, text if text is not None else image, "text" if text is not None else "image")
    sides = _column(df, split, "split").tolist() if split is not None else None
    rows = list(df.index)
    codes, classes = encode_labels(labels.tolist(), rows=rows)
    if text is not None:
        store = {"texts": check_texts(items.tolist(), f"column {text!r}", rows)}
    else:
        store = _image_column(items.tolist(), rows, str(image))
    full = Split(codes, ids=rows, **store)
    kind = "text" if text is not None else "image"
    if sides is None:
        return cls(kind, classes, *stratified_split(full, classes, valid_fraction, seed), name)
    bad = [r for r, v in zip(rows, sides) if v not in SPLIT_VALUES]
    if bad:
        odd = sorted({repr(v) for v in sides if v not in SPLIT_VALUES})[:5]
        raise DataError(
            f"{describe_rows(bad)} of split column {split!r} hold {', '.join(odd)}. "
            "Use 'train' or 'valid' in every row (or drop split= to split at random)."
        )
    sides = np.array([SPLIT_VALUES[v] for v in sides])
    for side in ("train", "valid"):
        if not (sides == side).any():
            raise DataError(
                f"split column {split!r} has no '{side}' rows. Mark some rows '{side}', or drop split= "
                "to let Data split at random."
            )
    parts = [full.take(np.flatnonzero(sides == side)) for side in ("train", "valid")]
    return cls(kind, classes, parts[0], parts[1], name)


def _torchvision_split(ds_cls: Any, name: str, root: str, train: bool, download: bool) -> Any:
    """Instantiate one split, turning download and missing-file failures into our errors."""
    params = inspect.signature(ds_cls).parameters
    if "train" not in params and "split" not in params:
        raise DataError(
            f"torchvision dataset {name!r} has no train/test split argument, so Data cannot pick its splits. "
            "Load it yourself and use Data.from_arrays(images, labels, classes)."
        )
    kwargs: dict[str, Any] = {"train": train} if "train" in params else {"split": "train" if train else "test"}
    hint = " Or copy its files into root and pass download=False."
    try:
        return ds_cls(root=root, download=download, **kwargs)
    except PermissionError as e:
        raise DataError(f"cannot write to root={root!r} ({_one_line(e)}). Pass a root folder you can write to.") from e
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:  # URLError: no network
        raise _hub_error(f"torchvision dataset {name!r}", e, hint) from e
    except RuntimeError as e:
        msg = str(e)
        if msg.startswith("Error downloading"):  # MNIST-family lists the URLError of every mirror
            lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
            summary = f"RuntimeError: {lines[0].rstrip(':')}: {lines[-1][:200]}"
            raise _hub_error(f"torchvision dataset {name!r}", e, hint, summary) from e
        if "not found" in msg.lower() and not download:
            raise DataNotFoundError(
                f"torchvision dataset {name!r} is not in root={root!r} ({_one_line(e)}). "
                "Pass download=True (needs the internet) or copy its files there."
            ) from e
        raise
    except ValueError as e:
        if "split" in kwargs and "split" in str(e):
            raise DataError(
                f"torchvision dataset {name!r} has no {kwargs['split']!r} split ({_one_line(e)}). "
                "Load it yourself and use Data.from_arrays."
            ) from e
        raise


def _torchvision_arrays(ds: Any, name: str) -> tuple[np.ndarray, list[Any]]:
    """uint8 images and labels, from `.data` when the dataset keeps one in memory."""
    targets = getattr(ds, "targets", getattr(ds, "labels", None))
    data = getattr(ds, "data", None)
    if data is None or targets is None:
        pairs = [ds[i] for i in range(len(ds))]  # no in-memory array: read every sample once
        return stack_images([p[0] for p in pairs], list(range(len(pairs))), f"{name} images"), [p[1] for p in pairs]
    arr = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # SVHN and STL10 keep channels first
    labels = targets.tolist() if hasattr(targets, "tolist") else list(targets)
    return as_uint8_images(np.ascontiguousarray(arr), f"{name} images"), labels


def from_torchvision(
    cls: type[Data],
    name: str,
    root: str | os.PathLike,
    *,
    download: bool = True,
    valid_fraction: float | None = None,
    seed: int = 0,
) -> Data:
    """A torchvision dataset: train=True as train, train=False as valid (or valid_fraction of train)."""
    seed = check_seed(seed)
    if valid_fraction is not None:
        valid_fraction = check_valid_fraction(valid_fraction)
    try:
        import torchvision.datasets as tvd
    except ImportError as e:
        raise MissingDependencyError(f"torchvision is not installed ({e}). Install it: pip install torchvision") from e
    known = {
        n: c for n in tvd.__all__
        if inspect.isclass(c := getattr(tvd, n, None)) and issubclass(c, tvd.VisionDataset)
        and n not in ("VisionDataset", "DatasetFolder", "ImageFolder")
    }  # fmt: skip
    if name == "ImageFolder":
        raise ConfigError("ImageFolder is a folder layout, not a download. Use Data.from_folder(path).")
    canonical = {n.lower(): n for n in known}.get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        raise DataNotFoundError(
            f"torchvision has no dataset named {name!r}.{suggest(str(name), known)} "
            "Use a class name from torchvision.datasets, e.g. 'CIFAR10', 'MNIST' or 'FashionMNIST'."
        )
    root = str(Path(root).expanduser())
    train_ds = _torchvision_split(known[canonical], canonical, root, True, download)
    parts = [_torchvision_arrays(train_ds, canonical)]
    if valid_fraction is None:
        valid_ds = _torchvision_split(known[canonical], canonical, root, False, download)
        parts.append(_torchvision_arrays(valid_ds, canonical))
    parts = [({"images": images}, labels) for images, labels in parts]
    classes = getattr(train_ds, "classes", None)
    return assemble(cls, "image", canonical, parts, classes, valid_fraction or 0.2, seed)


def from_hf(
    cls: type[Data],
    name: str,
    *,
    text: str = "text",
    label: str = "label",
    train_split: str = "train",
    valid_split: str | None = "validation",
    seed: int = 0,
    valid_fraction: float = 0.2,
) -> Data:
    """A Hugging Face text dataset: `datasets.load_dataset(name)`, its train and validation splits.

    Without the default 'validation' split, 'test' is used; without that too (or with
    valid_split=None), a seeded stratified valid_fraction of train.
    """
    seed = check_seed(seed)
    valid_fraction = check_valid_fraction(valid_fraction)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"name={name!r} is not a dataset name. Pass e.g. 'cornell-movie-review-data/rotten_tomatoes'."
        )
    try:
        import datasets
    except ImportError as e:
        raise MissingDependencyError(
            f"Data.from_hf needs the Hugging Face `datasets` package ({e}). Install it: pip install datasets"
        ) from e
    from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

    try:
        dd = datasets.load_dataset(name)
    except (DatasetNotFoundError, DataFilesNotFoundError) as e:
        raise DataNotFoundError(
            f"Hugging Face dataset {name!r} was not found ({_one_line(e)}). Check the name on "
            "https://huggingface.co/datasets (e.g. 'cornell-movie-review-data/rotten_tomatoes')."
        ) from e
    except (ConnectionError, TimeoutError, OSError) as e:  # OfflineModeIsEnabled, LocalEntryNotFoundError, HTTP
        raise _hub_error(f"Hugging Face dataset {name!r}", e) from e
    available = list(dd.keys())
    if train_split not in available:
        raise DataError(
            f"dataset {name!r} has no split {train_split!r}; it has {available}. Pass train_split= one of them."
        )
    if valid_split is not None and valid_split not in available:
        if valid_split != "validation":
            raise DataError(
                f"dataset {name!r} has no split {valid_split!r}; it has {available}. Pass valid_split= one of "
                "them, or valid_split=None to split train."
            )
        valid_split = "test" if "test" in available else None
    split_names = [train_split] + ([valid_split] if valid_split is not None else [])
    for s in split_names:
        cols = dd[s].column_names
        for col, arg in ((text, "text"), (label, "label")):
            if col not in cols:
                raise DataError(
                    f"split {s!r} of {name!r} has no column {col!r} (given as {arg}=).{suggest(col, cols)} "
                    f"Available columns: {cols}. Pass one of them."
                )
    feature = dd[train_split].features.get(label)
    classes = list(feature.names) if hasattr(feature, "names") else None  # ClassLabel keeps the names
    parts = [({"texts": check_texts(list(dd[s][text]), f"{s}/{text}")}, list(dd[s][label])) for s in split_names]
    if classes is not None and any(v == -1 for _, labs in parts for v in labs):
        raise DataError(
            f"dataset {name!r} has label -1 (unlabelled) in {' or '.join(map(repr, split_names))}. Pick labelled "
            "splits with train_split= / valid_split=, or valid_split=None to split train."
        )
    return assemble(cls, "text", name, parts, classes, valid_fraction, seed)
