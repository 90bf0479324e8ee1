"""WhyPanel: why the model decided for one validation sample, and which training samples it leaned on.

For the sample at `index`: its attribution toward the true class and toward the predicted class
side by side (Grad-CAM overlays for images, coloured tokens for texts; `wb.explain_many`), then
its nearest training samples on the cached features with their labels (`errors.neighbours`).
`show(index)` is the public twin of clicking a card; the numbers are the ones a script gets.
"""

from __future__ import annotations

import base64

import ipywidgets as W
import traitlets

from ..analysis import ErrorAnalysis, explain_many
from ..plots import image_png, overlay, tokens_html
from .common import STYLE, BusyLine, MessageBox, Painter, esc, guarded
from .gallery import GALLERY_STYLE, ThumbnailCache, snippet_html

NEIGHBOURS = 8


class WhyPanel(W.VBox):
    """Attributions (true vs predicted) and nearest training samples of validation sample `index`."""

    index = traitlets.Int(allow_none=True, default_value=None)  # the sample shown (a valid position)

    def __init__(self, session, k: int = NEIGHBOURS) -> None:
        super().__init__()
        self.session, self.data, self.k = session, session.data, k
        self.message = MessageBox()
        self.title = W.HTML('<span class="wb-muted">Why: click a sample card\'s picture or its Why? button to see '
                            "what the model looked at.</span>")
        self.attributions = W.HTML()
        self.attributions.add_class("wb-why-attr")
        self.neighbour_box = W.HTML()
        self.neighbour_box.add_class("wb-why-neighbours")
        self.explained: list = []  # the Attribution objects shown (true, predicted)
        self.neighbours = None  # the DataFrame shown
        self._thumbs = ThumbnailCache(self.data, split="train") if self.data.kind == "image" else None
        self._stale = False
        self.busy = BusyLine(session)  # the first Why? computes the train features: seconds, said at once
        self.children = [W.HTML(STYLE), self.title, self.busy, self.message, self.attributions, self.neighbour_box]
        self.add_class("wb-why")
        # recomputing an explanation takes seconds: after a run, and only while the panel is shown
        self.painter = Painter(self._refresh_after_fit, interval=0.0, budget=1.0)
        session.on("epoch_end", lambda _: self._model_changed())
        session.on("fit_end", lambda _: self._stale and self.painter.request())

    @guarded()
    def show(self, index: int) -> None:
        """Explain validation sample `index` (true vs predicted class) and list its nearest training samples."""
        if self.session.predictions is None:
            self.message.show("No predictions yet: train an epoch first (session.step()).", "info")
            return
        if not hasattr(self.session, "model"):  # a stand-in holding predictions only (replays, tests)
            self.message.show("This view holds predictions only, no model to explain.", "info")
            return
        method = ("Grad-CAM (where in the image)" if self.data.kind == "image"
                  else "token attributions (integrated gradients)")
        with self.busy.working(f"Why #{index}: {method} toward the true and the predicted class", self.session):
            pair = explain_many(self.session, [index, index], ["true", "pred"])  # validates first: an int, never coerced
            self.busy.start(f"Why #{index}: the nearest training samples, by cosine on the features the "
                            "head sees")
            analysis = ErrorAnalysis.from_session(self.session)
            table = analysis.neighbours(index, k=self.k)
        self.message.clear()
        self._stale = False
        self.explained, self.neighbours = pair, table
        self.index = int(index)
        self._render(pair, table)

    def _render(self, pair, table) -> None:
        a = pair[0]
        p_true, p_pred = a.probabilities[a.true], a.probabilities[a.predicted]
        verdict = "correct" if a.correct else "wrong"
        self.title.value = (f'<div class="wb-card"><b>Why #{a.index}</b> · true <b>{esc(a.classes[a.true])}</b> '
                            f"(p={p_true:.2f}) · predicted <b>{esc(a.classes[a.predicted])}</b> (p={p_pred:.2f}) · "
                            f'{verdict} · <span class="wb-muted">{esc(a.method)}</span></div>')
        parts = []
        for att, label in zip(pair, ("toward the true class", "toward the predicted class")):
            head = f"<div><b>{esc(att.target_name)}</b> <span class='wb-muted'>{label}</span></div>"
            if att.kind == "image":
                src = base64.b64encode(image_png(overlay(att))).decode("ascii")
                body = f'<img class="wb-why-img" src="data:image/png;base64,{src}" width="160" height="160">'
                if not att.heatmap.any():
                    body += '<div class="wb-muted">no positive evidence for this class at this layer</div>'
            else:
                body = f'<div class="wb-why-text">{tokens_html(att)}</div>'
            parts.append(f'<div class="wb-why-one">{head}{body}</div>')
        self.attributions.value = (
            "<style>.wb-why-pair{display:flex;gap:16px;flex-wrap:wrap}.wb-why-one{max-width:460px}"
            ".wb-why-img{image-rendering:pixelated;border:1px solid var(--jp-border-color1,#bdbdbd)}.wb-why-text{font-size:13px}</style>"
            f'<div class="wb-why-pair">{"".join(parts)}</div>')
        self.neighbour_box.value = self._neighbours_html(table)

    def _neighbours_html(self, table) -> str:
        counts = table["label"].value_counts()
        summary = ", ".join(f"{esc(name)} ×{n}" for name, n in counts.items())
        items = []
        for r in table.itertuples():
            meta = f'<div class="wb-meta">train #{r.train_id} · <b>{esc(r.label)}</b><br>cos {r.similarity:.2f}</div>'
            if self._thumbs is not None:
                src = self._thumbs.get(int(r.train_id))
                items.append(f'<figure class="wb-item"><img src="data:image/png;base64,{src}" '
                             f'alt="train {r.train_id}">{meta}</figure>')
            else:
                items.append(f'<div class="wb-card-text">{snippet_html(self.data.item(int(r.train_id), "train"))}'
                             f"{meta}</div>")
        return (f'{GALLERY_STYLE}<div class="wb-muted"><b>Nearest training samples</b> (cosine on the pooled '
                f"features the head sees): their labels are {summary}</div>"
                f'<div class="wb-gallery">{"".join(items)}</div>')

    # ---- session events ---------------------------------------------------------------------------
    def _model_changed(self) -> None:
        """The weights moved: say so now; recompute when training stops (explaining needs the model idle)."""
        if self.index is not None:
            self._stale = True
            self.message.show(f"The model changed (epoch {self.session.epoch}); this explanation updates when "
                              "training stops.", "info")

    def _refresh_after_fit(self) -> None:
        if self._stale and self.index is not None:
            self.show(self.index)

