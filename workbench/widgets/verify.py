"""VerifyQueueView: the session's verify queue of train labels (session.review), as a table and cards.

Samples arrive here from the cards of the training-dynamics map and of the train label-issue ranking
(Flag / Keep / relabel as…). The table shows each decision and whether a relabel is in effect or
waits for the next epoch; the cards below carry the same actions; Export writes the queue as CSV.
Nothing is deleted: a relabel overrides the label training uses, and relabelling a sample back to
its given label undoes it. The view re-renders on the session's `review` events.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as W

from .common import STYLE, MessageBox, Painter, guarded, table_html
from .gallery import CardGallery, ThumbnailCache
from .train_cards import handle_card, train_cards_html


class VerifyQueueView(W.VBox):
    """The verify queue: decisions, relabels in effect or waiting, cards and CSV export."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session, self.data = session, session.data
        self.message = MessageBox()
        self.summary = W.HTML()
        self.table = W.HTML()
        self.gallery = CardGallery()
        self.gallery.add_class("wb-verify-gallery")
        self.csv_path = W.Text(value="verify_queue.csv", description="CSV", layout=W.Layout(width="260px"))
        self.export_button = W.Button(description="Export queue", icon="download")
        self.export_button.on_click(lambda _: self.export(self.csv_path.value))
        self.gallery.observe(lambda c: self._on_card(c.new), names="clicked")
        self._thumbs = ThumbnailCache(self.data, "train") if self.data.kind == "image" else None
        export = W.HBox([self.csv_path, self.export_button], layout=W.Layout(width="auto"))
        export.add_class("wb-wrap-row")
        self.children = [W.HTML(STYLE), self.summary, export, self.message, self.table, self.gallery]
        self.add_class("wb-verify")
        self.painter = Painter(self.refresh, interval=0.0, budget=1.0)
        session.on("review", lambda _: self.painter.paint())  # a person's action: shown at once
        session.on("fit_end", lambda _: self.painter.request())
        self.refresh()

    @guarded()
    def export(self, path) -> Path:
        """Write the queue as CSV (session.review.export)."""
        out = self.session.review.export(path)
        self.message.show(f"Wrote {len(self.session.review)} queued samples to {out.resolve()}", "ok")
        return out

    def refresh(self) -> None:
        """Re-read the session's queue."""
        review = self.session.review
        table = review.frame()
        decided = table["decision"].value_counts().to_dict() if len(table) else {}
        parts = ", ".join(f"{n} {d}" for d, n in decided.items()) or "empty"
        self.summary.value = (f'<div class="wb-card"><b>Verify queue</b>: {parts} · {len(review.overrides)} relabels in '
                              f"effect, {len(review.pending)} waiting for the next epoch. Flag, keep or relabel train "
                              "samples from the cards of the training-dynamics map or the train label issues; a "
                              "relabel changes the label training uses (never the data), from the next epoch.</div>")
        self.table.value = table_html(["id", "given", "now", "decision", "new label", "status", "note"], [
            [r.id, r.given_label, r.label_now, r.decision, r.new_label, r.status, r.note]
            for r in table.itertuples()], wrap=(6,)) if len(table) else ""
        frame = self._frame() if len(table) else None
        self.gallery.html = train_cards_html(self.session, table["id"].tolist(), frame, self._thumbs, "queued samples")

    def _frame(self):
        """errors.dynamics() of the latest epoch, for the cards' signals (None before any epoch)."""
        if not self.session.dynamics.epochs or self.session.predictions is None:
            return None
        from ..analysis import ErrorAnalysis

        return ErrorAnalysis.from_session(self.session).dynamics()

    @guarded()
    def _on_card(self, click: dict) -> None:
        done = handle_card(self.session, click)
        if done:
            self.message.show(done, "ok")
