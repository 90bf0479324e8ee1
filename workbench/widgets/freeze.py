"""FreezePanel: what trains, per block; presets; BatchNorm policy; discriminative LR.

The panel never keeps its own copy of the freeze state: it reads `session.trainable` and the
session's config after every change and every epoch (progressive unfreezing changes the blocks
by itself). While training runs, changes are queued by the session and apply between epochs.
"""

from __future__ import annotations

import ipywidgets as W

from ..train import freezing
from .common import STYLE, MessageBox, esc, fmt_params, guarded

PRESETS = [("Head only", "head"), ("Last N", "last"), ("Full", "full"), ("Progressive", "progressive"),
           ("Custom", "custom")]


class FreezePanel(W.VBox):
    """One row per block (trainable toggle, parameters, LR) and the presets over them."""

    def __init__(self, session) -> None:
        self.session = session
        self.message = MessageBox()
        self._syncing = False
        below_head = len(session.model.blocks) - 1
        self.preset = W.ToggleButtons(options=PRESETS, value=_preset_of(session.freeze_spec),
                                      style={"button_width": "95px"})
        self.preset.add_class("wb-preset")
        self.n = W.IntSlider(value=min(2, below_head), min=1, max=max(1, below_head), description="N blocks")
        self.every = W.IntSlider(value=1, min=1, max=10, description="every k epochs")
        self.bn = W.Dropdown(options=[("frozen BatchNorm keeps its statistics", "frozen"),
                                      ("frozen BatchNorm updates its statistics", "train")],
                             value=session.config.bn_policy, description="BN policy", layout=W.Layout(width="420px"))
        self.decay = W.FloatSlider(value=session.config.lr_decay, min=0.1, max=1.0, step=0.05,
                                   description="LR decay", readout_format=".2f",
                                   tooltip="each block below the head gets lr x decay^distance")
        self.rows: dict[str, tuple[W.Checkbox, W.Label]] = {}
        grid = [W.HTML("<b>block</b>"), W.HTML("<b>parameters</b>"), W.HTML("<b>learning rate</b>")]
        for block in session.model.blocks:
            box = W.Checkbox(value=block.trainable, description=block.name, indent=False,
                             layout=W.Layout(width="260px"))
            box.add_class(f"wb-block-{_css(block.name)}")
            lr = W.Label()
            box.observe(lambda change, name=block.name: self._on_toggle(name, change["new"]), names="value")
            self.rows[block.name] = (box, lr)
            grid += [box, W.Label(fmt_params(block.params)), lr]
        self.table = W.GridBox(grid, layout=W.Layout(grid_template_columns="270px 110px 130px"))
        self.summary = W.HTML()
        self.summary.add_class("wb-freeze-summary")
        for w in (self.preset, self.n, self.every):
            w.observe(lambda _: self._on_preset(), names="value")
        self.bn.observe(lambda change: self._configure(bn_policy=change["new"]), names="value")
        self.decay.observe(lambda change: self._configure(lr_decay=change["new"]), names="value")
        super().__init__([W.HTML(STYLE), self.preset, W.HBox([self.n, self.every]), W.HBox([self.bn, self.decay]),
                          self.summary, self.message, self.table])
        self.add_class("wb-freeze")
        session.on("epoch_start", lambda _: self.refresh())
        session.on("epoch_end", lambda _: self.refresh())
        self.refresh()

    # ---- public twins -------------------------------------------------------------------------
    @guarded()
    def apply(self, spec) -> None:
        """Freeze as `spec` says ("head", "full", wb.last(n), wb.progressive(every=k), [names])."""
        self.session.freeze(spec)
        self._syncing = True
        try:
            self.preset.value = _preset_of(spec)
            if getattr(spec, "kind", None) == "last":
                self.n.value = spec.n
            if getattr(spec, "kind", None) == "progressive":
                self.every.value = spec.every
        finally:
            self._syncing = False
        self.refresh()

    def set_trainable(self, block: str, trainable: bool) -> None:
        """Toggle one block (the row's checkbox): the plan becomes an explicit list of blocks."""
        self.rows[block][0].value = trainable

    # ---- handlers -----------------------------------------------------------------------------
    def _spec(self):
        kind = self.preset.value
        if kind == "last":
            return freezing.last(self.n.value)
        if kind == "progressive":
            return freezing.progressive(every=self.every.value)
        if kind == "custom":
            return [name for name, (box, _) in self.rows.items() if box.value]
        return kind

    @guarded()
    def _on_preset(self) -> None:
        if self._syncing:
            return
        self.session.freeze(self._spec())
        self.refresh()

    @guarded()
    def _on_toggle(self, name: str, value: bool) -> None:
        if self._syncing:
            return
        names = [n for n, (box, _) in self.rows.items() if box.value]
        try:
            self.session.freeze(names)
        except Exception:
            self.refresh()  # put the checkboxes back to what the session holds
            raise
        self._syncing = True
        self.preset.value = "custom"
        self._syncing = False
        self.refresh()

    @guarded()
    def _configure(self, **settings) -> None:
        if not self._syncing:
            self.session.configure(**settings)
            self.refresh()

    # ---- view ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the session (safe from the training thread: it only assigns traits)."""
        s, self._syncing = self.session, True
        try:
            pending = s.has_pending_changes
            upcoming = freezing.trainable_blocks(s.model, s.freeze_spec, epoch=s.epoch)
            lrs = s.next_lrs()
            for name, (box, lr) in self.rows.items():
                box.value = name in upcoming
                lr.value = f"{lrs[name]:.2e}" if name in upcoming else "frozen"
            self.n.layout.display = "" if self.preset.value == "last" else "none"
            self.every.layout.display = "" if self.preset.value == "progressive" else "none"
            self.bn.value, self.decay.value = s.config.bn_policy, s.config.lr_decay
        finally:
            self._syncing = False
        blocks = s.model.blocks
        total = sum(b.params for b in blocks)
        train = sum(b.params for b in blocks if b.name in upcoming)
        fast, why = s.path()
        note = " (applies from the next epoch)" if pending or s.running else ""
        path = ("cached features: an epoch is a few matrix products" if fast and not pending
                else f"full forward: {why}" if not fast else "decided at the next epoch")
        self.summary.value = (
            f'{STYLE}<div class="wb-card"><b>{fmt_params(train)}</b> of {fmt_params(total)} parameters train '
            f"({100 * train / max(total, 1):.1f}%) in {len(upcoming)} of {len(blocks)} blocks{esc(note)}.<br>"
            f'<span class="wb-muted">path: {esc(path)}</span></div>'
        )


def _preset_of(spec) -> str:
    if isinstance(spec, str):
        return spec if spec in ("head", "full") else "custom"
    kind = getattr(spec, "kind", None)
    return kind if kind in ("last", "progressive") else "custom"


def _css(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)
