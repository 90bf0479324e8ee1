"""`data.show()`: a grid of samples with their labels (fastai's `show_batch`), as HTML.

Core code: no ipywidgets, IPython or matplotlib. The grid is an object with `_repr_html_`, so a
notebook shows it when it ends a cell (and a saved notebook keeps it); in a terminal its repr
lists the samples. Images become small base64 PNG thumbnails (PIL); texts show their start, and
the whole text on a click (<details>, no script). Class names, texts and file names are untrusted:
every one is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
from PIL import Image

from ..validate import choice, integer

THUMB = 112  # px, longest side of an image thumbnail
BORDER = "var(--jp-border-color1,#bdbdbd)"  # JupyterLab's theme colour: cards read in light and dark
PREVIEW = 200  # characters of a text shown before a click


def pick(labels: np.ndarray, n: int, num_classes: int, seed: int) -> list[int]:
    """n sample positions spread over the classes (round robin, each class shuffled with `seed`)."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(num_classes)]
    out: list[int] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(int(pool.pop(0)))
    return out


class SampleGrid:
    """`n` samples of one split with their labels; shows itself as HTML in a notebook."""

    def __init__(self, data: Any, n: int = 12, split: str = "train", seed: int = 0) -> None:
        self.n = integer("n", n, low=1, hint="How many samples to show, e.g. data.show(12).")
        self.split = choice("split", split, ("train", "valid"))
        self.seed = integer("seed", seed, low=0)
        self.data = data
        part = getattr(data, self.split)
        self.positions = pick(part.labels, self.n, data.num_classes, self.seed)
        self.labels = [data.classes[int(part.labels[i])] for i in self.positions]

    def _repr_html_(self) -> str:
        d, part = self.data, getattr(self.data, self.split)
        cards = []
        for i, label in zip(self.positions, self.labels):
            item = d.item(i, self.split)
            caption = (f'<div style="font-size:14px;line-height:1.35;margin-top:3px"><b>{_e(label)}</b> '
                       f'<span style="color:var(--jp-content-font-color2,#616161)">#{i}</span></div>')
            if isinstance(item, str):
                cards.append('<div style="flex:1 1 280px;max-width:440px;padding:8px;'
                             f'border:1px solid {BORDER};border-radius:4px;font-size:14px;line-height:1.45">'
                             f'{_text(item)}{caption}</div>')
            else:
                cards.append(f'<figure style="margin:0;padding:5px;border:1px solid {BORDER};border-radius:4px;'
                             f'width:{THUMB + 12}px"><img src="data:image/png;base64,{_thumbnail(item)}" '
                             f'alt="{_e(label)}" style="width:{THUMB}px;height:{THUMB}px;object-fit:contain;'
                             'image-rendering:pixelated;background:var(--jp-layout-color2,#eee);display:block">'
                             f'{caption}</figure>')
        head = (f'<div style="font-size:14px;margin:4px 0"><b>{_e(d.name)}</b>: {len(self.positions)} of '
                f"{len(part):,} {self.split} samples, {d.num_classes} classes (one of each class in turn)</div>")
        return (f'<div class="wb-sample-grid">{head}<div style="display:flex;flex-wrap:wrap;gap:8px;'
                f'align-items:flex-start">{"".join(cards)}</div></div>')

    def __repr__(self) -> str:
        lines = [f"{self.data.name}: {len(self.positions)} {self.split} samples"]
        for i, label in zip(self.positions, self.labels):
            item = self.data.item(i, self.split)
            what = repr(item[:60] + ("…" if len(item) > 60 else "")) if isinstance(item, str) else f"image {item.size}"
            lines.append(f"  #{i:<6} {label:<16} {what}")
        return "\n".join(lines)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(text: str) -> str:
    body = 'style="white-space:pre-wrap;overflow-wrap:anywhere"'
    if len(text) <= PREVIEW:
        return f"<div {body}>{_e(text)}</div>"
    cut = text.rfind(" ", 0, PREVIEW)
    cut = cut if cut > PREVIEW // 2 else PREVIEW
    return (f'<details {body}><summary style="cursor:pointer">{_e(text[:cut])}… '
            '<span style="color:var(--jp-content-link-color,#0d47a1)">(click for the rest)</span></summary>'
            f"…{_e(text[cut:])}</details>")


def _thumbnail(image: Image.Image) -> str:
    image = image.copy()
    image.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
