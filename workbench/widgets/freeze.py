"""FreezePanel: what trains, per block; presets; BatchNorm policy; discriminative LR.

The panel keeps no copy of the freeze state: it re-reads the session (its freeze plan, the blocks
the next epoch trains, their LRs, the path) on every `config_change` (settings or plan changed, in
a widget or in code), and after epochs (a progressive plan unfreezes blocks by itself). While
training runs, changes are queued by the session and apply between epochs.
"""

from __future__ import annotations

import ipywidgets as W

from ..train import freezing
from .common import STYLE, MessageBox, Painter, esc, fmt_params, fmt_share, guarded

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
                                      style={"button_width": "auto"}, layout=W.Layout(width="auto"))
        self.preset.add_class("wb-preset")
        self.n = W.IntSlider(value=min(2, below_head), min=1, max=max(1, below_head),
                             description="blocks below the head", style={"description_width": "initial"},
                             layout=W.Layout(width="auto", flex="0 1 380px", min_width="260px"))
        self.every = W.IntSlider(value=1, min=1, max=10, description="one more block every (epochs)",
                                 style={"description_width": "initial"},
                                 layout=W.Layout(width="auto", flex="0 1 420px", min_width="300px"))
        self.has_bn = any(getattr(m, "track_running_stats", False) for m in session.model.module.modules())
        self.bn = W.Dropdown(options=[("frozen BatchNorm keeps its statistics", "frozen"),
                                      ("frozen BatchNorm updates its statistics", "train")],
                             value=session.config.bn_policy, description="BatchNorm",
                             layout=W.Layout(width="auto", flex="0 1 430px", min_width="0",
                                             display="" if self.has_bn else "none"))
        self.decay = W.FloatSlider(value=session.config.lr_decay, min=0.1, max=1.0, step=0.05,
                                   description="LR decay per block down", readout_format=".2f",
                                   style={"description_width": "initial"},
                                   layout=W.Layout(width="auto", flex="0 1 380px", min_width="280px"),
                                   tooltip="each block below the head gets lr x decay^distance")
        self.rows: dict[str, tuple[W.Checkbox, W.Label]] = {}
        grid = [W.HTML("<b>block</b>"), W.HTML("<b>parameters</b>"), W.HTML("<b>learning rate</b>")]
        for block in session.model.blocks:
            box = W.Checkbox(value=block.trainable, description=block.name, indent=False,
                             layout=W.Layout(width="auto", min_width="0"))
            box.add_class(f"wb-block-{_css(block.name)}")
            lr = W.Label(layout=W.Layout(width="auto"))
            box.observe(lambda change, name=block.name: self._on_toggle(name, change["new"]), names="value")
            self.rows[block.name] = (box, lr)
            grid += [box, W.Label(fmt_params(block.params), layout=W.Layout(width="auto")), lr]
        self.table = W.GridBox(grid, layout=W.Layout(grid_template_columns="minmax(0, max-content) max-content max-content",
                                                     grid_gap="0 18px", overflow="visible", width="auto"))
        self.table.add_class("wb-blocks")
        self.summary = W.HTML()
        self.summary.add_class("wb-freeze-summary")
        for w in (self.preset, self.n, self.every):
            w.observe(lambda _: self._on_preset(), names="value")
        self.bn.observe(lambda change: self._configure(bn_policy=change["new"]), names="value")
        self.decay.observe(lambda change: self._configure(lr_decay=change["new"]), names="value")
        options = W.HBox([self.n, self.every, self.decay, self.bn])
        options.add_class("wb-wrap-row")
        super().__init__([W.HTML(STYLE), self.preset, options, self.summary, self.message, self.table])
        self.add_class("wb-freeze")
        self.add_class("wb-view")
        self.painter = Painter(self.refresh, interval=0.5, budget=0.02)
        session.on("config_change", lambda _: self.refresh())
        session.on("fit_start", lambda _: self.painter.hold())
        session.on("epoch_start", lambda _: self.painter.request())
        session.on("epoch_end", lambda _: self.painter.request())
        session.on("fit_end", lambda _: self.painter.flush())
        self.refresh()

    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was (no kernel, no widget state)
        return f"FreezePanel widget (run the notebook to use it): {self.session!r}"

    # ---- public twins -------------------------------------------------------------------------
    @guarded()
    def apply(self, spec) -> None:
        """Freeze as `spec` says ("head", "full", wb.last(n), wb.progressive(every=k), [names])."""
        self.session.freeze(spec)  # config_change -> refresh() shows it

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
        try:
            self.session.freeze(self._spec())
        except Exception:
            self.refresh()  # back to what the session holds
            raise

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

    @guarded()
    def _configure(self, **settings) -> None:
        if not self._syncing:
            try:
                self.session.configure(**settings)
            except Exception:
                self.refresh()
                raise

    # ---- view ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the session (safe from the training thread: it only assigns traits)."""
        s, self._syncing = self.session, True
        spec = s.freeze_spec
        try:
            upcoming = freezing.trainable_blocks(s.model, spec, epoch=s.epoch)
            lrs = s.next_lrs()
            self.preset.value = _preset_of(spec)
            if getattr(spec, "kind", None) == "last":
                self.n.value = spec.n
            if getattr(spec, "kind", None) == "progressive":
                self.every.value = spec.every
            for name, (box, lr) in self.rows.items():
                box.value = name in upcoming
                lr.value = f"{lrs[name]:.1e}" if name in upcoming else "frozen"
            self.n.layout.display = "" if self.preset.value == "last" else "none"
            self.every.layout.display = "" if self.preset.value == "progressive" else "none"
            self.bn.value, self.decay.value = s.config.bn_policy, s.config.lr_decay
        finally:
            self._syncing = False
        blocks = s.model.blocks
        total = sum(b.params for b in blocks)
        train = sum(b.params for b in blocks if b.name in upcoming)
        head = s.model.block_names[-1]
        below = [n for n in upcoming if n != head]
        note = " (from the next epoch)" if s.has_pending_changes or s.running else ""
        if below:  # the plan for the next epoch decides the path (a progressive plan may add a block at its start)
            path = f"full forward: {len(below)} block{'s' if len(below) != 1 else ''} below the head train"
        else:
            fast, why = s.path()
            path = ("cached features: the backbone's features are computed once, then an epoch is a few "
                    "matrix products" if fast else f"full forward: {why}")
        decay = (f" · LR ×{s.config.lr_decay:g} per block down" if below and s.config.lr_decay != 1 else "")
        self.summary.value = (
            f'{STYLE}<div class="wb-card"><b>{fmt_params(train)}</b> of {fmt_params(total)} parameters train '
            f"({fmt_share(train, total)}): {len(upcoming)} of {len(blocks)} blocks, the head"
            f"{f' and {len(below)} below it' if below else ' only'}{esc(note)}.<br>"
            f'<span class="wb-muted">next epoch: {esc(path)}{esc(decay)}</span></div>'
        )


def _preset_of(spec) -> str:
    if isinstance(spec, str):
        return spec if spec in ("head", "full") else "custom"
    kind = getattr(spec, "kind", None)
    return kind if kind in ("last", "progressive") else "custom"


def _css(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)
