"""LabelIssuesView: samples whose label looks wrong, ranked by cleanlab (errors.label_issues).

"Rank" computes the ranking for the validation split (the model's probabilities) or the training
split (cross-validated logistic regression on the cached features, a few seconds), shows the top
rows as a table and a gallery; "Flag top N" adds the top validation rows to the explorer's flags
(and so to its CSV export). Nothing is removed or relabelled. Each button has a public twin.

Once the session has recorded training dynamics, the train ranking combines three signals per sample
(errors.label_issues("train", combine=True)): cleanlab's label quality, the AUM and the hard-to-learn
region, and says which of them flag it; its cards carry Flag / Keep / relabel as…, which go to the
session's verify queue, and "Flag top N" flags the top train rows there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as W

from ..analysis import ErrorAnalysis
from ..analysis.label_issues import write_csv
from ..validate import integer
from .common import STYLE, BusyLine, MessageBox, esc, guarded, table_html
from .gallery import GALLERY_STYLE, CardGallery, ThumbnailCache, snippet_html
from .train_cards import handle_card, train_cards_html

SHOWN = 24


class LabelIssuesView(W.VBox):
    """The cleanlab ranking of one split, its top rows, and buttons to flag or export them."""

    def __init__(self, session, analysis: Callable[[], ErrorAnalysis | None] | None = None,
                 on_flagged: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self._analysis = analysis or (lambda: ErrorAnalysis.from_session(session) if session.predictions else None)
        self._on_flagged = on_flagged or (lambda: None)
        self.message = MessageBox()
        self.split = W.ToggleButtons(options=[("valid", "valid"), ("train", "train")], value="valid",
                                     tooltips=["the model's own probabilities", "cross-validated logistic regression"],
                                     style={"button_width": "70px"})
        self.rank_button = W.Button(description="Rank", icon="sort-amount-asc", button_style="primary",
                                    layout=W.Layout(width="auto"))
        self.flag_count = W.BoundedIntText(value=10, min=1, max=500, description="top", layout=W.Layout(width="130px"))
        self.flag_button = W.Button(description="Flag top N", icon="flag", layout=W.Layout(width="auto"),
                                    tooltip="valid: the explorer's flags; train: the session's verify queue")
        self.csv_path = W.Text(value="label_issues.csv", description="CSV",
                               layout=W.Layout(width="auto", flex="0 1 260px", min_width="160px"))
        self.csv_button = W.Button(description="Export ranking", icon="download", layout=W.Layout(width="auto"))
        self.busy = BusyLine(session)
        self.summary = W.HTML()
        self.table = W.HTML()
        self.gallery = W.HTML()
        self.gallery.add_class("wb-issues-gallery")
        self.train_gallery = CardGallery()  # train cards with the verify queue's actions
        self.train_gallery.add_class("wb-issues-train-gallery")
        self.train_gallery.observe(lambda c: self._on_card(c.new), names="clicked")
        self.ranking = None  # the DataFrame shown (the same errors.label_issues(split) returns)
        self.ranked_split: str | None = None
        self._thumbs = {s: ThumbnailCache(self.data, s) for s in ("valid", "train")} if self.data.kind == "image" else None
        self.rank_button.on_click(lambda _: self.rank(self.split.value))
        self.flag_button.on_click(lambda _: self.flag_top(self.flag_count.value))
        self.csv_button.on_click(lambda _: self.export(self.csv_path.value))
        rows = [W.HBox([self.split, self.rank_button]), W.HBox([self.flag_count, self.flag_button]),
                W.HBox([self.csv_path, self.csv_button])]
        for row in rows:
            row.add_class("wb-wrap-row")
        self.children = [
            W.HTML(STYLE + '<div class="wb-muted">Samples whose given label disagrees most with what the model (valid) '
                   "or a cross-validated classifier on the same features (train) expects, ranked by cleanlab's "
                   "confident learning. Review them; nothing is changed automatically.</div>"),
            *rows, self.busy, self.message, self.summary, self.table, self.gallery, self.train_gallery,
        ]
        self.add_class("wb-issues")
        session.on("fit_end", lambda _: self._clear())

    @guarded()
    def rank(self, split: str = "valid"):
        """Rank `split` by how likely each label is wrong; shows and returns errors.label_issues(split)."""
        analysis = self._need()
        dynamics = getattr(self.session, "dynamics", None)  # a stand-in session (a replayed run) has none
        if split == "train" and dynamics is not None and dynamics.epochs:
            with self.busy.working("ranking the train labels by cleanlab, AUM and hard-to-learn together "
                                   "(cross-validated logistic regression on the cached features: seconds)", self.session):
                return self._rank_combined(analysis)
        how = ("the model's own probabilities" if split == "valid" else
               "5-fold cross-validated logistic regression on the cached features, a few seconds")
        with self.busy.working(f"ranking the {split} labels with cleanlab ({how})", self.session):
            table = analysis.label_issues(split)
        self.split.value = split
        self.ranking, self.ranked_split = table, split
        issues = int(table["issue"].sum())
        self.summary.value = (f'<div class="wb-card"><b>{issues}</b> likely label issues of {len(table)} {split} samples '
                              f"(cleanlab find_label_issues; top {min(SHOWN, len(table))} shown, most likely first)</div>")
        head = table.head(SHOWN)
        self.table.value = table_html(["rank", "id", "given", "suggested", "quality", "p(given)", "issue"], [
            [r.rank, r.id, r.given_label, r.suggested_label, f"{r.label_quality:.3f}", f"{r.p_given:.2f}",
             "yes" if r.issue else ""] for r in head.itertuples()], optional=(4, 6))
        self.gallery.value = self._gallery(head, split)
        self.train_gallery.html = ""
        self.message.clear()
        return table

    def _rank_combined(self, analysis):
        """The train split ranked by cleanlab, AUM and hard-to-learn together; cards with queue actions."""
        table = analysis.label_issues("train", combine=True)
        self.split.value = "train"
        self.ranking, self.ranked_split = table, "train"
        strong = int((table["agree"] >= 2).sum())
        self.summary.value = (f'<div class="wb-card"><b>{strong}</b> of {len(table)} train samples flagged by at least two '
                              "of cleanlab (issue), AUM (negative) and hard-to-learn, over epochs "
                              f"{', '.join(map(str, self.session.dynamics.epochs[-8:]))}; ranked by their mean rank, "
                              f"top {min(SHOWN, len(table))} shown. Flag, keep or relabel from the cards.</div>")
        head = table.head(SHOWN)
        self.table.value = table_html(["rank", "id", "label", "quality", "AUM", "confidence", "region", "flagged by"], [
            [r.rank, r.id, r.label, f"{r.label_quality:.3f}", f"{r.aum:.2f}", f"{r.confidence:.2f}", r.region,
             r.flags] for r in head.itertuples()], wrap=(7,))
        self.gallery.value = ""
        self._train_cards()
        self.message.clear()
        return table

    @guarded()
    def flag_top(self, n: int = 10) -> list[int]:
        """Flag the top n validation label issues in the explorer's list (a note says why)."""
        analysis = self._need()
        n = integer("n", n, low=1, hint="Flag the top n: a whole number such as 10.")
        if self.split.value == "train":
            table = self.ranking if self.ranking is not None and self.ranked_split == "train" else self.rank("train")
            if table is None:  # rank() showed why
                return []
            ids = [int(i) for i in table["id"][:n]]
            self.session.flag(ids, note=f"top {n} of the train label-issue ranking")
            self.message.show(f"Flagged {len(ids)} train samples in the verify queue (the Verify tab; export it there).",
                              "ok")
            return ids
        with self.busy.working(f"flagging the top {n} validation label issues", self.session):
            ids = analysis.flag_label_issues(n=n)
        self._on_flagged()
        self.message.show(f"Flagged {len(ids)} validation samples for review (see Flagged; Export writes the CSV).", "ok")
        return ids

    @guarded()
    def export(self, path) -> Path:
        """Write the ranking shown as CSV (formula-looking cells neutralised)."""
        if self.ranking is None:
            self.rank(self.split.value)
        with self.busy.working(f"writing {len(self.ranking):,} ranked samples to {path}"):
            out = write_csv(self.ranking, path)
        self.message.show(f"Wrote {len(self.ranking)} ranked samples to {out.resolve()}", "ok")
        return out

    @guarded()
    def _on_card(self, click: dict) -> None:
        done = handle_card(self.session, click)
        if done:
            self.message.show(done, "ok")
            if self.ranking is not None and "score" in self.ranking:
                self._train_cards()

    def _train_cards(self) -> None:
        head = self.ranking.head(SHOWN)
        self.train_gallery.html = train_cards_html(self.session, head["id"].tolist(), self.ranking.set_index("id"),
                                                   self._thumbs and self._thumbs["train"],
                                                   "most likely label errors (train)")

    def _gallery(self, head, split: str) -> str:
        items = []
        for r in head.itertuples():
            meta = (f'<div class="wb-meta">#{r.rank} · {esc(split)} #{r.id}<br>given <b>{esc(r.given_label)}</b> · '
                    f"suggests <b>{esc(r.suggested_label)}</b></div>")
            if self._thumbs is not None:
                src = self._thumbs[split].get(int(r.id))
                items.append(f'<figure class="wb-item wb-wrong"><img src="data:image/png;base64,{src}" '
                             f'alt="{esc(split)} {r.id}">{meta}</figure>')
            else:
                items.append(f'<div class="wb-card-text wb-wrong">{snippet_html(self.data.item(int(r.id), split))}'
                             f"{meta}</div>")
        return f'{GALLERY_STYLE}<div class="wb-gallery">{"".join(items)}</div>'

    def _clear(self) -> None:
        if self.ranking is not None:
            self.ranking = self.ranked_split = None
            self.summary.value = '<span class="wb-muted">The model changed: press Rank again.</span>'
            self.table.value = self.gallery.value = self.train_gallery.html = ""

    def _need(self) -> ErrorAnalysis:
        analysis = self._analysis()
        if analysis is None:
            from ..errors import ConfigError

            raise ConfigError("No predictions yet: train an epoch first (session.step()).")
        return analysis
