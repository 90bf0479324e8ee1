"""Cards for train samples: thumbnail or text, the label training uses, its training dynamics, and the
verify queue's actions (Flag / Keep / relabel as…), sent through a CardGallery's `clicked` trait.

Shared by the training-dynamics map, the label-issue ranking of the train split and the verify queue,
so a card means the same everywhere. Every string from the data (texts, class names, notes) is escaped.
"""

from __future__ import annotations

import pandas as pd

from .common import esc
from .gallery import GALLERY_STYLE, ThumbnailCache, relabel_select, snippet_html

LIMIT = 60  # cards per gallery
REGION_CLASS = {"easy-to-learn": "wb-easy", "ambiguous": "wb-ambiguous", "hard-to-learn": "wb-hard"}
CARD_STYLE = """<style>
.wb-train-card .wb-region {font-weight: 600}
.wb-signals {font-size: 11px; line-height: 1.3; white-space: nowrap; font-variant-numeric: tabular-nums}
.wb-train-card.wb-hard {border-color: #c62828} .wb-hard .wb-region {color: #c62828}
.wb-ambiguous .wb-region {color: #ef6c00} .wb-easy .wb-region {color: #2e7d32}
.wb-decision {display: inline-block; padding: 0 4px; border-radius: 3px; background: #fff3e0; color: #8a4b00}
.wb-decision.wb-keep {background: #e8f5e9; color: #1b5e20}
</style>"""


def train_cards_html(session, ids, frame: pd.DataFrame | None, thumbs: ThumbnailCache | None, title: str,
                     limit: int = LIMIT) -> str:
    """Cards for train positions `ids` (in display order) with a title line. `frame` is
    errors.dynamics() (None before any epoch): its row gives each card's signals."""
    ids = [int(i) for i in ids]
    shown = ids[:limit]
    more = f" (showing the first {limit})" if len(ids) > limit else ""
    head = (f'<div class="wb-head wb-muted"><b>{esc(title)}</b>: {len(ids)} train sample{"s" if len(ids) != 1 else ""}'
            f"{esc(more)} · Flag (to check), Keep (the label is right) or relabel: training uses a new label from "
            "the next epoch</div>")
    if not shown:
        return GALLERY_STYLE + CARD_STYLE + head
    data, review = session.data, session.review
    classes = list(data.classes)
    labels_now = review.labels()
    items = []
    for i in shown:
        row = frame.loc[i] if frame is not None and i in frame.index else None
        region = "" if row is None else str(row["region"])
        label = f"label <b>{esc(classes[labels_now[i]])}</b>"
        if labels_now[i] != review.given[i]:
            label += f" <span class='wb-muted'>(given {esc(classes[review.given[i]])})</span>"
        signals = ""
        if row is not None and row["epochs_seen"] > 0:
            signals = (f"<div class='wb-signals'>conf {row['confidence']:.2f} · var {row['variability']:.2f}<br>"
                       f"AUM {row['aum']:.2f} · forgot {int(row['forgetting'])}×</div>"
                       f"<span class='wb-region'>{esc(region)}</span>")
        decision = review.decisions.get(i, {}).get("decision")
        badge = ""
        if i in review.pending:
            badge = f"<br><span class='wb-decision'>relabel → {esc(classes[review.pending[i]])} next epoch</span>"
        elif decision:
            keep = " wb-keep" if decision == "keep" else ""
            badge = f"<br><span class='wb-decision{keep}'>{esc(decision)}</span>"
        meta = f'<div class="wb-meta">train #{i} · {label}{signals}{badge}</div>'
        look = f" {REGION_CLASS.get(region, '')} wb-train-card"
        flagged = " wb-flagged" if decision == "flag" else ""
        buttons = _actions(decision, classes)
        if data.kind == "text":
            items.append(f'<div class="wb-card-text{look}{flagged}" data-id="{i}">'
                         f'{snippet_html(data.item(i, "train"))}{meta}{buttons}</div>')
        else:
            src = thumbs.get(i) if thumbs is not None else ""
            items.append(f'<figure class="wb-item{look}{flagged}" data-id="{i}"><img src="data:image/png;base64,{src}" '
                         f'alt="train sample {i}">{meta}{buttons}</figure>')
    return f'{GALLERY_STYLE}{CARD_STYLE}{head}<div class="wb-gallery">{"".join(items)}</div>'


def _actions(decision: str | None, classes: list) -> str:
    flag = ('<button data-action="unflag" title="Take it out of the verify queue">Unflag</button>'
            if decision in ("flag", "keep") else
            '<button data-action="flag" title="Flag: the label looks wrong, check it">Flag</button>')
    keep = "" if decision == "keep" else '<button data-action="keep" title="Checked: the label is right">Keep</button>'
    relabel = relabel_select(classes, "Train on this label from the next epoch")
    return f'<div class="wb-actions">{flag}{keep}{relabel}</div>'


def handle_card(session, click: dict) -> str | None:
    """Apply a train card's click to the session's verify queue; returns what it did, in words."""
    action, i = click.get("action"), click.get("id")
    if i is None:
        return None
    if action == "flag":
        session.flag([i])
        return f"train #{i} flagged for review"
    if action == "keep":
        session.flag([i], note="checked: the label is right", decision="keep")
        return f"train #{i} kept: its label is right"
    if action == "unflag":
        session.unflag([i])
        return f"train #{i} taken out of the verify queue"
    if action == "relabel" and click.get("label") is not None:
        done = session.relabel({int(i): int(click["label"])})
        when = "from the next epoch" if not session.running else "when the next epoch starts"
        return f"train #{i} relabelled as {done[int(i)]!r}: training uses it {when}"
    return None
