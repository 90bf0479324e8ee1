"""Checks and conversions for labels, images and texts, run before any Data is built.

Each raises a WorkbenchError subclass whose message names the rows at fault and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, DataError, suggest
from ..safety import same_form

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")


def describe_rows(rows: Sequence[Any], limit: int = 5) -> str:
    """'3 rows (4, 9, 12)': how many rows are bad and which (the first few), for error messages."""
    shown = ", ".join(str(r) for r in list(rows)[:limit]) + (", ..." if len(rows) > limit else "")
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''} ({shown})"


def sort_classes(names: Sequence[str]) -> list[str]:
    """Natural order for digit names ('2' before '10'), alphabetical otherwise."""
    if all(n.isascii() and n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def check_valid_fraction(valid_fraction: Any) -> float:
    """valid_fraction must be a number strictly between 0 and 1."""
    ok = isinstance(valid_fraction, (int, float, np.floating)) and not isinstance(valid_fraction, bool)
    if not ok or not 0 < float(valid_fraction) < 1:
        raise ConfigError(
            f"valid_fraction={valid_fraction!r} is not a fraction between 0 and 1 (exclusive). "
            "Pass e.g. valid_fraction=0.2 to keep 20% of the samples for validation."
        )
    return float(valid_fraction)


def check_seed(seed: Any) -> int:
    """seed must be a non-negative int (it feeds numpy and scikit-learn)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not a non-negative integer. Pass e.g. seed=0.")
    return int(seed)


def _label_key(v: Any, row: Any) -> int | str:
    if isinstance(v, str):
        return same_form(v)
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
        return int(v)
    raise DataError(
        f"label {v!r} in row {row} is a {type(v).__name__}; labels must be ints or strings. "
        "Convert them first, e.g. labels = [str(x) for x in labels]."
    )


def _check_one_type(keys: list[int | str], rows: list[Any]) -> None:
    """Labels 1 and "1" are two values a person reads as one class: refuse the mix by name."""
    numbers = {k for k in keys if isinstance(k, int)}
    clash = sorted({k for k in keys if isinstance(k, str) and k.strip().lstrip("-").isdigit() and int(k) in numbers})
    if clash:
        first = next(r for r, k in zip(rows, keys) if isinstance(k, str) and k in clash)
        raise DataError(
            f"labels mix numbers and text for the same class: {int(clash[0])} and {clash[0]!r} (e.g. row {first}). "
            "Convert the label column to one type first, e.g. labels = [str(x) for x in labels] or "
            "df[label_column].astype(str)."
        )


def encode_labels(
    values: Sequence[Any], classes: Sequence[str] | None = None, *, rows: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Int or str labels -> int64 indices and the class list (sorted unless given).

    With classes given, int labels are positions in it; `rows` names values in errors.
    """
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    rows = list(range(len(values))) if rows is None else list(rows)
    missing = [r for v, r in zip(values, rows) if v is None or v is pd.NA or v is pd.NaT or v != v]
    if missing:
        raise DataError(
            f"{describe_rows(missing)} of {len(values)} have no label (None or NaN). Drop those rows or fill "
            "in their labels before building the Data (pandas: df = df.dropna(subset=[label_column]))."
        )
    keys = [_label_key(v, r) for v, r in zip(values, rows)]
    _check_one_type(keys, rows)
    given = classes is not None
    if classes is None:
        uniq = set(keys)
        ints = all(isinstance(k, int) for k in uniq)
        classes = [str(k) for k in sorted(uniq)] if ints else sort_classes([str(k) for k in uniq])
    classes = [same_form(str(c)) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"classes has duplicate names {classes}. Give each class one unique name.")
    if len(classes) < 2:
        raise DataError(
            f"only one class ({', '.join(map(repr, classes)) or 'none'}) found in {len(values)} labels; a "
            "classifier needs at least 2 classes. Add samples of another class, or check the label column."
        )
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([k if given and isinstance(k, int) else index.get(str(k), -1) for k in keys], dtype=np.int64)
    bad = np.flatnonzero((codes < 0) | (codes >= len(classes)))
    if len(bad):
        shown = sorted({repr(values[i]) for i in bad})[:5]
        first = values[bad[0]]
        raise DataError(
            f"{describe_rows([rows[i] for i in bad])} have labels ({', '.join(shown)}) that match none of the "
            f"{len(classes)} classes {classes[:10]}{' ...' if len(classes) > 10 else ''} (int labels: "
            f"0..{len(classes) - 1}).{suggest(first, classes) if isinstance(first, str) else ''} "
            "Fix the labels, or pass classes= listing every class."
        )
    return codes, classes


def as_uint8_images(images: Any, what: str = "images") -> np.ndarray:
    """Check and convert an image array to uint8 (N, H, W) grey or (N, H, W, 3) RGB."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] in (1, 4):
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr[..., :3]  # drop alpha: models see RGB
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] != 3:
        raise DataError(f"{what} have shape {arr.shape}, channels first. Pass images.transpose(0, 2, 3, 1).")
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise DataError(
            f"{what} have shape {arr.shape}; expected (N, H, W) grey or (N, H, W, 3) RGB. "
            "Reshape them, e.g. flat MNIST rows with images.reshape(-1, 28, 28)."
        )
    if arr.dtype == np.uint8:
        return arr
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size and arr.dtype.kind in "uif" else (0, -1)
    if arr.dtype.kind not in "uif" or lo < 0 or hi > 255 or not np.all(arr == np.round(arr)):
        raise DataError(
            f"{what} have dtype {arr.dtype} with values {lo:g}..{hi:g}; Data stores images as uint8 0..255. "
            "Scale them first, e.g. (images * 255).round().astype('uint8') for 0..1 floats."
        )
    return arr.astype(np.uint8)


def stack_images(items: Sequence[Any], rows: Sequence[Any], what: str = "images") -> np.ndarray:
    """Stack PIL images or arrays of one size into uint8 (grey, or RGB if any is colour)."""
    arrays = []
    for item in items:
        if isinstance(item, Image.Image):
            item = np.asarray(to_8bit(item))
        arrays.append(as_uint8_images(np.asarray(item)[None], what)[0])
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in arrays]
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        odd = [r for r, a in zip(rows, arrays) if a.shape[:2] != arrays[0].shape[:2]]
        raise DataError(
            f"{what} come in {len(sizes)} sizes ({', '.join(f'{w}x{h}' for h, w in sizes[:4])}); "
            f"{describe_rows(odd)} differ from the first. In-memory images must share one size: resize "
            "them first, or save them to files and pass the paths instead."
        )
    return np.stack(arrays)


def check_texts(texts: Any, which: str = "data", rows: Sequence[Any] | None = None) -> list[str]:
    """Texts must be a sequence of str; name the rows that are not."""
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        raise DataError(f"texts ({which}) must be a list of strings, got {type(texts).__name__}. Pass a list.")
    texts = texts.tolist() if hasattr(texts, "tolist") else list(texts)
    bad = [r for t, r in zip(texts, range(len(texts)) if rows is None else rows) if not isinstance(t, str)]
    if bad:
        raise DataError(
            f"{describe_rows(bad)} of the {which} texts are not strings (None, NaN or numbers). "
            "Drop those rows or convert them, e.g. df[text_column].astype(str)."
        )
    return texts


def to_8bit(im: Image.Image) -> Image.Image:
    """An 'L' grey or 'RGB' image. 16-bit and 32-bit grey images are scaled to 0..255, not clipped
    (PIL's convert("L") clips them, turning a 16-bit photo white); float images by their range."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if im.mode == "F" and 0 <= lo and hi <= 1:
            a = a * 255
        elif lo >= 0 and hi <= 255 and im.mode != "F":
            pass  # already in 8-bit range (e.g. a mode "I" PNG of small values)
        elif lo >= 0 and hi <= 65535 and im.mode != "F":
            a = a / 257  # 16-bit full range to 8-bit
        else:
            a = (a - lo) / max(hi - lo, 1e-12) * 255
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    return im.convert("L" if im.mode in GREY_MODES else "RGB")


def load_image_file(path: Path) -> Image.Image:
    """Open an image file fully (so the file is closed) as 'L' grey or 'RGB'."""
    try:
        with Image.open(path) as im:
            return to_8bit(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(
            f"image file {str(path)!r} could not be read ({type(e).__name__}: {e}). "
            "Replace or delete the file, then build the Data again."
        ) from e
