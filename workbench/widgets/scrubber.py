"""EpochScrubber: an epoch slider over the Errors tab, and the pinned samples' explanations at that epoch.

Moving the slider sets `explorer.epoch`: the confusion matrix, the side panels and the gallery show
that epoch's validation predictions as the session kept them (session.dynamics), the data map its
training dynamics up to then; "follow the latest" (the default) tracks each new epoch. Pinned
validation samples (session.pin) show their Grad-CAM (token attributions for texts) toward the true
and the predicted class at the chosen epoch, as recorded at that epoch's end. Public twins:
`show(epoch)`, `follow_latest()`, `pin(index)`, `unpin(index)`.
"""

from __future__ import annotations

import base64

import ipywidgets as W

from ..plots import image_png, overlay, tokens_html
from .common import STYLE, MessageBox, Painter, esc, guarded


class EpochScrubber(W.VBox):
    """The epoch slider of an ErrorExplorer, with the pinned samples' explanations."""

    def __init__(self, explorer) -> None:
        super().__init__()
        self.explorer, self.session = explorer, explorer.session
        self.message = MessageBox()
        self.slider = W.SelectionSlider(options=[("–", 0)], value=0, description="epoch", continuous_update=False,
                                        layout=W.Layout(width="340px"), style={"description_width": "initial"})
        self.slider.add_class("wb-scrub-slider")
        self.latest = W.Checkbox(value=True, description="follow the latest epoch", indent=False,
                                 layout=W.Layout(width="auto"))
        self.caption = W.HTML()
        self.pin_button = W.Button(description="Pin the Why sample", icon="thumb-tack", layout=W.Layout(width="auto"),
                                   tooltip="Record its Grad-CAM at every epoch end from now on")
        self.unpin_button = W.Button(description="Unpin all", layout=W.Layout(width="auto"))
        self.pinned = W.HTML()
        self.pinned.add_class("wb-pinned")
        self._quiet = False
        self.slider.observe(lambda c: self._moved(c.new), names="value")
        self.latest.observe(lambda c: c.new and self.follow_latest(), names="value")
        self.pin_button.on_click(lambda _: self.pin(self.explorer.why.index))
        self.unpin_button.on_click(lambda _: [self.unpin(i) for i in list(self.session.pinned)])
        row = W.HBox([self.slider, self.latest, self.caption], layout=W.Layout(width="auto", align_items="center"))
        pins = W.HBox([self.pin_button, self.unpin_button], layout=W.Layout(width="auto"))
        for box in (row, pins):
            box.add_class("wb-wrap-row")
        self.children = [W.HTML(STYLE), row, self.message, self.pinned, pins]
        self.add_class("wb-scrubber")
        self.painter = Painter(self.refresh, interval=2.0, budget=0.03)
        self.session.on("fit_start", lambda _: self.painter.hold())
        self.session.on("epoch_end", lambda _: self.painter.request())
        self.session.on("fit_end", lambda _: self.painter.flush())
        self.session.on("review", lambda e: e.what in ("pin", "unpin") and self._render_pins())
        self.refresh()

    # ---- public twins ------------------------------------------------------------------------------
    @guarded()
    def show(self, epoch: int) -> None:
        """Show epoch `epoch` in the matrix, the gallery and the pinned explanations (a slider move)."""
        kept = self.session.dynamics.valid_epochs
        if int(epoch) not in kept:
            from ..errors import ConfigError

            span = f"{kept[0]}..{kept[-1]}" if kept else "none yet"
            raise ConfigError(f"Epoch {epoch}'s predictions were not kept (kept: {span}). Pick a kept epoch.")
        self.slider.value = int(epoch)  # -> _moved

    def follow_latest(self) -> None:
        """Show the latest epoch, and each new one as it comes."""
        self.latest.value = True
        self.explorer.epoch = None
        self.refresh()

    @guarded()
    def pin(self, index: int | None) -> None:
        """Pin validation sample `index` (session.pin): its explanation is recorded at every epoch end."""
        if index is None:
            self.message.show("Open a sample in the Why tab first (a card's picture or its Why? button), then pin it.",
                              "info")
            return
        self.session.pin(int(index))
        self.message.show(f"Pinned validation #{int(index)}: its Grad-CAM is recorded at every epoch end from now on "
                          "(one explanation pass per epoch).", "ok")

    @guarded()
    def unpin(self, index: int) -> None:
        self.session.unpin(int(index))

    # ---- plumbing ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """The slider's epochs from the session's kept predictions; the pins at the shown epoch."""
        kept = self.session.dynamics.valid_epochs
        self._quiet = True
        try:
            options = [(str(e), e) for e in kept] or [("–", 0)]
            if [v for _, v in self.slider.options] != [v for _, v in options]:
                shown = self.slider.value
                self.slider.options = options
                self.slider.value = shown if shown in kept and not self.latest.value else options[-1][1]
            elif self.latest.value:
                self.slider.value = options[-1][1]
        finally:
            self._quiet = False
        self._caption()
        self._render_pins()

    def _moved(self, epoch: int) -> None:
        if self._quiet or not epoch:
            return
        kept = self.session.dynamics.valid_epochs
        latest = kept and epoch == kept[-1] and self.session.predictions is not None \
            and self.session.predictions.epoch == epoch
        self.latest.value = bool(latest)
        self.explorer.epoch = None if latest else int(epoch)  # -> explorer.refresh()
        self._caption()
        self._render_pins()

    def _epoch_shown(self) -> int | None:
        if self.explorer.epoch is not None:
            return self.explorer.epoch
        p = self.session.predictions
        return None if p is None else p.epoch

    def _caption(self) -> None:
        kept = self.session.dynamics.valid_epochs
        shown = self._epoch_shown()
        if not kept:
            self.caption.value = '<span class="wb-muted">no epochs kept yet: train one</span>'
            return
        which = "the latest" if self.explorer.epoch is None else "an earlier epoch, as kept by the session"
        self.caption.value = (f'<span class="wb-muted">showing epoch <b>{shown}</b> ({which}); {len(kept)} epochs kept'
                              "</span>")

    def _render_pins(self) -> None:
        epoch, pinned = self._epoch_shown(), list(self.session.pinned)
        if not pinned:
            self.pinned.value = ('<span class="wb-muted">Pin a sample (open it in Why, then "Pin the Why sample") to '
                                 "see its Grad-CAM move from epoch to epoch.</span>")
            return
        parts = []
        for i in pinned:
            pair = None if epoch is None else self.session.pinned_explanation(i, epoch)
            head = f"<div><b>valid #{i}</b>"
            if pair is None:
                frames = self.session.pin_frames.get(i, {})
                since = f" (recorded from epoch {min(frames)})" if frames else ""
                parts.append(f'<div class="wb-pin">{head} · <span class="wb-muted">not recorded at epoch {epoch}{since}'
                             "</span></div></div>")
                continue
            t, p = pair
            head += (f" · epoch {epoch}: true <b>{esc(t.classes[t.true])}</b> p={t.probabilities[t.true]:.2f}, "
                     f"predicted <b>{esc(t.classes[t.predicted])}</b> p={t.probabilities[t.predicted]:.2f}</div>")
            views = []
            for att, label in ((t, "toward the true class"), (p, "toward the predicted class")):
                if att.kind == "image":
                    src = base64.b64encode(image_png(overlay(att), size=120)).decode("ascii")
                    body = f'<img src="data:image/png;base64,{src}" width="120" height="120" alt="Grad-CAM">'
                else:
                    body = f'<div class="wb-why-text">{tokens_html(att, max_tokens=60)}</div>'
                views.append(f'<div class="wb-pin-one"><span class="wb-muted">{label}</span><br>{body}</div>')
            parts.append(f'<div class="wb-pin">{head}<div class="wb-pin-pair">{"".join(views)}</div></div>')
        self.pinned.value = ("<style>.wb-pin{margin:4px 0}.wb-pin-pair{display:flex;gap:10px;flex-wrap:wrap}"
                             ".wb-pin-one{max-width:320px;font-size:12px}.wb-pin img{image-rendering:pixelated;"
                             f"border:1px solid #ddd}}</style>{''.join(parts)}")
