"""Sample cards: image thumbnails or texts, each with its labels, p and loss; and CardGallery, the
explorer's gallery, whose cards answer clicks (Why, Flag, relabel) through one synced trait.

One HTML string of base64 thumbnails renders 30 images in 52-93 ms where 30 Image widgets took
205-288 ms (docs/ARCHITECTURE.md, "Rendering"). CardGallery keeps that: it is one anywidget whose
page code sets the string as the element's content and sends clicks back as `clicked` ({"id",
"action", "label", "n"}); benchmarks/explorer_latency.py measures it. Texts, class names and ids
are untrusted: all escaped. Long texts show their first lines; a click on them shows the whole
text (a <details> element: no kernel round trip).
"""

from __future__ import annotations

import base64
import io
import itertools

import anywidget
import traitlets
from PIL import Image

from ..validate import whole
from .common import esc

THUMB = 96  # px, longest side of the encoded thumbnail (shown at 128 px, pixelated)
PREVIEW_CHARS = 220  # a text card shows this much until clicked
RELABEL_MAX_CLASSES = 60  # beyond this a card offers no relabel list (a method does it)
GALLERY_STYLE = """<style>
.wb-gallery {display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start}
.wb-item {margin: 0; padding: 5px; border: 1px solid var(--jp-border-color1, #bdbdbd); border-radius: 4px; width: 140px;
  font-size: 14px; line-height: 1.4; box-sizing: border-box}
.wb-item img {width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; background: var(--jp-layout-color2, #eee);
  display: block}
.wb-item.wb-wrong, .wb-card-text.wb-wrong {border-color: var(--jp-error-color2, #e57373)}
.wb-card-text {flex: 1 1 300px; max-width: 460px; min-width: 0; padding: 8px; border: 1px solid var(--jp-border-color1, #bdbdbd);
  border-radius: 4px; font-size: 14px; line-height: 1.45; box-sizing: border-box}
.wb-snippet {white-space: pre-wrap; overflow-wrap: anywhere; font-size: 14px; line-height: 1.45}
.wb-snippet summary {list-style: none; cursor: pointer}
.wb-snippet summary::-webkit-details-marker {display: none}
.wb-snippet details[open] .wb-preview {display: none}
.wb-snippet details:not([open]) .wb-less {display: none}
.wb-more, .wb-less {color: var(--jp-content-link-color, #0d47a1); white-space: nowrap}
.wb-meta {color: var(--jp-content-font-color2, rgba(0,0,0,.54)); margin-top: 4px; line-height: 1.35; font-size: 14px; overflow-wrap: anywhere}
.wb-flagged {outline: 3px solid #ff9800}
.wb-actions {display: flex; flex-wrap: wrap; gap: 4px; margin-top: 4px}
.wb-actions button, .wb-actions select {font-size: 13px; padding: 1px 6px; max-width: 100%; cursor: pointer}
.wb-clickable img {cursor: pointer}
.wb-head {font-size: 14px; margin: 4px 0}
</style>"""


class ThumbnailCache:
    """base64 PNG thumbnails per (split, position): a sample never changes, so encode it once."""

    def __init__(self, data, split: str = "valid") -> None:
        self.data, self.split = data, split
        self._cache: dict[int, str] = {}

    def get(self, i: int) -> str:
        if i not in self._cache:
            image = self.data.item(i, self.split)
            if not isinstance(image, Image.Image):
                image = Image.fromarray(image)
            image = image.copy()
            image.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            self._cache[i] = base64.b64encode(buf.getvalue()).decode("ascii")
        return self._cache[i]


def snippet_html(text: str, preview: int = PREVIEW_CHARS) -> str:
    """A text for a card, escaped: whole when short; else its start, and the rest on a click."""
    text = str(text)
    if len(text) <= preview:
        return f'<div class="wb-snippet">{esc(text)}</div>'
    cut = text.rfind(" ", 0, preview)
    cut = cut if cut > preview // 2 else preview
    return (f'<div class="wb-snippet"><details><summary><span class="wb-preview">{esc(text[:cut])}… '
            f'<span class="wb-more">(more)</span></span><span class="wb-less">(less)</span></summary>'
            f"{esc(text)}</details></div>")


def gallery_html(analysis, data, ids, thumbs: ThumbnailCache | None, title: str, limit: int = 50,
                 flagged: set[int] = frozenset(), actions: bool = False) -> str:
    """The samples `ids` (already in display order) as cards with a title line. With `actions`,
    each card carries data-id and Why / Flag buttons and a relabel list (CardGallery sends them)."""
    ids = [int(i) for i in ids]
    shown = ids[:limit]
    more = f" (showing the first {limit})" if len(ids) > limit else ""
    look = "a card's picture or its Why?" if data.kind == "image" else "Why? on a card"
    hint = f" · click {look} to see what the model looked at" if actions and shown else ""
    head = (f'<div class="wb-head wb-muted"><b>{esc(title)}</b>: {len(ids)} sample{"s" if len(ids) != 1 else ""}'
            f"{esc(more)}{esc(hint)}</div>")
    if not shown:
        return GALLERY_STYLE + head
    table = analysis.table(shown)
    classes = list(getattr(analysis, "classes", data.classes))
    items = []
    for row in table.itertuples():
        i = int(row.id)
        wrong = " wb-wrong" if row.true != row.predicted else ""
        flag = " wb-flagged" if i in flagged else ""
        meta = (f'<div class="wb-meta">#{esc(i)} · true <b>{esc(row.true)}</b> → <b>{esc(row.predicted)}</b><br>'
                f"p={row.probability:.2f} · loss {row.loss:.2f}{' · flagged' if flag else ''}</div>")
        buttons = _actions(i, i in flagged, classes) if actions else ""
        data_id = f' data-id="{i}"' if actions else ""
        if data.kind == "text":
            items.append(f'<div class="wb-card-text{wrong}{flag}"{data_id}>{snippet_html(data.item(i, "valid"))}'
                         f"{meta}{buttons}</div>")
        else:
            src = thumbs.get(i) if thumbs is not None else ""
            clickable = " wb-clickable" if actions else ""
            items.append(f'<figure class="wb-item{wrong}{flag}{clickable}"{data_id}><img src="data:image/png;base64,{src}" '
                         f'alt="sample {esc(i)}" data-action="why" title="Why? What the model looked at">{meta}{buttons}'
                         "</figure>")
    return f'{GALLERY_STYLE}{head}<div class="wb-gallery">{"".join(items)}</div>'


def relabel_select(classes: list, title: str) -> str:
    """A card's "relabel as…" list (class names escaped); empty beyond RELABEL_MAX_CLASSES classes."""
    if len(classes) > RELABEL_MAX_CLASSES:
        return ""
    options = "".join(f'<option value="{k}">{esc(name)}</option>' for k, name in enumerate(classes))
    return f'<select data-action="relabel" title="{esc(title)}"><option value="">relabel as…</option>{options}</select>'


def _actions(i: int, flagged: bool, classes: list) -> str:
    flag = ('<button data-action="unflag" title="Remove the flag">Unflag</button>' if flagged else
            '<button data-action="flag" title="Flag: the given label looks wrong">Flag</button>')
    relabel = relabel_select(classes, "Flag with the label it should have")
    return f'<div class="wb-actions"><button data-action="why" title="What the model looked at">Why?</button>{flag}{relabel}</div>'


_ESM = r"""
function render({ model, el }) {
  el.classList.add("wb-cards");
  const draw = () => {
    el.innerHTML = model.get("html");
    el.dataset.drawnAt = String(Date.now());
  };
  let n = 0;
  const send = (id, action, label) => {
    n += 1;
    el.dataset.sentAt = String(Date.now());
    model.set("clicked", { id: id, action: action, label: label === undefined ? null : label, n: Date.now() * 1000 + n });
    model.save_changes();
  };
  el.addEventListener("click", (e) => {
    const card = e.target.closest("[data-id]");
    if (!card || !el.contains(card)) return;
    if (e.target.closest("summary, details, select, option")) return;  // expanding a text, picking a label
    const hit = e.target.closest("[data-action]");
    if (!hit) return;
    send(Number(card.dataset.id), hit.dataset.action);
  });
  el.addEventListener("change", (e) => {
    const select = e.target.closest("select[data-action='relabel']");
    if (!select || select.value === "") return;
    const card = select.closest("[data-id]");
    send(Number(card.dataset.id), "relabel", Number(select.value));
  });
  model.on("change:html", draw);
  draw();
}
export default { render };
"""


class CardGallery(anywidget.AnyWidget):
    """One HTML string of cards (`html`); a click on a card's Why? / Flag / relabel sets `clicked`."""

    _esm = _ESM
    html = traitlets.Unicode("").tag(sync=True)
    clicked = traitlets.Dict().tag(sync=True)  # {"id": valid position, "action": "why"|"flag"|"unflag"|"relabel", ...}
    _count = itertools.count(1)

    @property
    def value(self) -> str:
        """The cards' HTML (as an ipywidgets HTML widget's `value`)."""
        return self.html

    @value.setter
    def value(self, html: str) -> None:
        self.html = html

    def click(self, sample_id: int, action: str = "why", label: int | None = None) -> None:
        """What a click on card `sample_id` sends (the page's twin)."""
        sample_id = whole("sample_id", sample_id, hint="The id shown on the card.")
        if label is not None:
            label = whole("label", label, hint="A class index.")
        self.clicked = {"id": sample_id, "action": action, "label": label, "n": next(self._count)}
