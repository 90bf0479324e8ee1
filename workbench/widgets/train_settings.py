"""The Train tab's settings, described once: each Setting says how to build its control, read the
session's value and turn a value into `session.configure(...)`. SettingsPanel lays them out (the LR
row above a grid that wraps) and re-reads the session on every `config_change`, so code and clicks
show the same values; a value the session refuses is shown in the message box and the control goes
back to what the session holds (one source of truth)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import traitlets

from ..errors import WorkbenchError
from ..train.losses import LOSSES
from ..train.optim import OPTIMIZERS, SCHEDULES
from .common import esc, guarded

DESCRIPTION = {"description_width": "118px"}
FILL = {"width": "auto", "min_width": "0"}  # fills its grid cell (a 100% width plus margins would overflow)


# ---- the settings, described once ----------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One control: how to build it, read the session's value, and turn a value into configure()."""

    name: str
    make: Callable[[], W.Widget]
    read: Callable[[Any], Any]  # session -> control value
    write: Callable[[Any, Any], dict]  # (control value, config) -> session.configure(**...)
    shown: Callable[[Any], bool] = lambda s: True  # session -> is this setting offered?


def _head_dropout(session) -> float:
    c = session.config
    if c.head_dropout is not None:
        return float(c.head_dropout)
    drops = [m.p for m in session.model.head.modules() if type(m).__name__ == "Dropout"]
    return float(drops[0]) if drops else 0.0


def _augment(name: str) -> Callable[[Any, Any], dict]:
    def write(value, c) -> dict:
        a = c.augment
        return {"augment": {"flip": a.flip, "crop": a.crop, "rotation": a.rotation, "color": a.color, name: value}}

    return write


def _dropdown(options, label: str) -> Callable[[], W.Widget]:
    return lambda: W.Dropdown(options=options, description=label, style=DESCRIPTION, layout=W.Layout(**FILL))


def _slider(cls, label: str, **kw) -> Callable[[], W.Widget]:
    return lambda: cls(description=label, style=DESCRIPTION, layout=W.Layout(**FILL), **kw)


def _int_text(label: str, **kw) -> Callable[[], W.Widget]:
    return lambda: W.BoundedIntText(description=label, style=DESCRIPTION, layout=W.Layout(**FILL), **kw)


def _check(label: str) -> Callable[[], W.Widget]:
    return lambda: W.Checkbox(description=label, indent=False, layout=W.Layout(**FILL))


def _image(session) -> bool:
    return session.model.kind == "image"


def _has_head_dropout(session) -> bool:
    return any(type(m).__name__ == "Dropout" for m in session.model.head.modules())


SETTINGS: tuple[Setting, ...] = (
    Setting("optimizer", _dropdown(OPTIMIZERS, "optimizer"), lambda s: s.config.optimizer,
            lambda v, c: {"optimizer": v}),
    Setting("lr", lambda: LrControl(), lambda s: s.config.lr, lambda v, c: {"lr": v}),
    Setting("schedule", _dropdown(SCHEDULES, "LR schedule"), lambda s: s.config.schedule.name,
            lambda v, c: {"schedule": {"name": v, "step_epochs": max(1, c.epochs // 3)}}),
    Setting("epochs", _int_text("planned epochs", min=1, max=1000), lambda s: s.config.epochs,
            lambda v, c: {"epochs": v}),
    Setting("batch_size", _dropdown([8, 16, 32, 64, 128, 256], "batch size"), lambda s: s.config.batch_size,
            lambda v, c: {"batch_size": v}),
    Setting("loss", _dropdown(LOSSES, "loss"), lambda s: s.config.loss, lambda v, c: {"loss": v}),
    Setting("label_smoothing", _slider(W.FloatSlider, "label smoothing", min=0, max=0.5, step=0.05),
            lambda s: s.config.label_smoothing, lambda v, c: {"label_smoothing": v}),
    Setting("focal_gamma", _slider(W.FloatSlider, "focal gamma", min=0, max=5, step=0.5),
            lambda s: s.config.focal_gamma, lambda v, c: {"focal_gamma": v}),
    Setting("sampler", _dropdown(["random", "balanced"], "sampler"), lambda s: s.config.sampler,
            lambda v, c: {"sampler": v}),
    Setting("class_weights", _check("balanced class weights"), lambda s: s.config.class_weights == "balanced",
            lambda v, c: {"class_weights": "balanced" if v else None}),
    Setting("weight_decay", lambda: W.BoundedFloatText(min=0, max=1, step=1e-4, description="weight decay",
                                                       style=DESCRIPTION, layout=W.Layout(**FILL)),
            lambda s: s.config.weight_decay, lambda v, c: {"weight_decay": v}),
    Setting("head_dropout", _slider(W.FloatSlider, "head dropout", min=0, max=0.9, step=0.05), _head_dropout,
            lambda v, c: {"head_dropout": v}, shown=_has_head_dropout),
    Setting("early_stopping", _int_text("early stopping", min=0, max=100,
                                        tooltip="patience in epochs on the valid loss; 0 = off"),
            lambda s: s.config.early_stopping or 0, lambda v, c: {"early_stopping": v or None}),
    Setting("flip", _check("random flip"), lambda s: s.config.augment.flip, _augment("flip"), shown=_image),
    Setting("crop", _check("random crop"), lambda s: s.config.augment.crop, _augment("crop"), shown=_image),
    Setting("rotation", _slider(W.IntSlider, "rotation °", min=0, max=45), lambda s: int(s.config.augment.rotation),
            _augment("rotation"), shown=_image),
    Setting("color", _slider(W.FloatSlider, "colour jitter", min=0, max=0.5, step=0.05),
            lambda s: s.config.augment.color, _augment("color"), shown=_image),
)


def round_sig(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits - 1}e}")


class LrControl(W.HBox):
    """The learning rate: an "auto" switch, a log slider and the value typed out beside it.

    `value` is the setting: a float, or None for the automatic choice (then the slider and the box
    show the LR the next epoch would use, greyed). Slider moves are rounded to two significant
    digits (1.3e-04, not 1.2589e-04); the box takes any value typed in (1e-4, 0.0003).
    """

    value = traitlets.Float(allow_none=True, default_value=None)

    def __init__(self) -> None:
        self._syncing = False
        label = W.Label("learning rate", layout=W.Layout(width="118px", flex="0 0 118px"))
        label.add_class("wb-lr-label")
        self.auto = W.Checkbox(value=True, description="auto", indent=False, layout=W.Layout(width="62px"))
        self.slider = W.FloatLogSlider(value=1e-3, base=10, min=-6, max=0, step=0.05, readout=False,
                                       layout=W.Layout(flex="1 1 120px", min_width="80px", width="auto"))
        self.text = W.FloatText(value=1e-3, layout=W.Layout(width="92px", flex="0 0 92px"))
        self.note = W.HTML(layout=W.Layout(flex="1 1 100%", min_width="0", width="auto"))
        for w, css in ((self.auto, "wb-lr-auto"), (self.slider, "wb-lr-slider"), (self.text, "wb-lr-value"),
                       (self.note, "wb-lr-note")):
            w.add_class(css)
        super().__init__([label, self.auto, self.slider, self.text, self.note], layout=W.Layout(**FILL))
        self.add_class("wb-wrap-row")
        self.add_class("wb-lr")
        self.auto.observe(lambda c: self._user(None if c["new"] else self.text.value), names="value")
        self.slider.observe(lambda c: self._from_slider(c["new"]), names="value")
        self.text.observe(lambda c: self._from_text(c["new"]), names="value")

    def _user(self, value: float | None) -> None:
        if not self._syncing:
            self.value = value

    def _from_text(self, value: float) -> None:
        if not self.auto.value:  # on auto the box shows the chosen LR and takes no input
            self._user(value)

    def _from_slider(self, value: float) -> None:
        """A move of the slider, unless it is the front end snapping the shown value to the slider's
        grid (10^(k * step)) and sending it back: that echo must not turn "auto" or a typed 3e-4 into
        the nearest grid value."""
        if self.auto.value:
            return
        shown = self.value
        if shown and value > 0 and abs(math.log10(value) - math.log10(shown)) <= self.slider.step / 2 + 1e-9:
            return
        self._user(round_sig(value))

    def show(self, value: float | None, effective: float, words: str) -> None:
        """Show the setting (`value`), the LR the next epoch uses and why, without firing `value`."""
        self._syncing = True
        try:
            self.value = value
            self.auto.value = value is None
            shown = effective if value is None else value
            if shown > 0:
                self.slider.value = min(max(shown, 1e-6), 1.0)
            self.text.value = shown
            self.slider.disabled = self.text.disabled = value is None
            self.note.value = f'<span class="wb-muted">{esc(words)}</span>'
        finally:
            self._syncing = False


class SettingsPanel(W.Accordion):
    """Every Setting the session offers, in one collapsible panel; `inputs[name]` is its control."""

    def __init__(self, session, message) -> None:
        self.session = session
        self.message = message
        self._syncing = False
        self.inputs: dict[str, W.Widget] = {}
        cells = []
        for setting in SETTINGS:
            if not setting.shown(session):
                continue
            w = setting.make()
            w.add_class(f"wb-set-{setting.name}")
            w.observe(lambda change, s=setting: self._on_control(s, change["new"]), names="value")
            self.inputs[setting.name] = w
            if setting.name != "lr":  # the LR (switch, slider, value) gets a whole row above the grid
                cells.append(w)
        grid = W.GridBox(cells, layout=W.Layout(width="auto", grid_gap="2px 16px", overflow="visible",
                                                grid_template_columns="repeat(auto-fill, minmax(250px, 1fr))"))
        grid.add_class("wb-settings-grid")
        super().__init__(children=[W.VBox([self.inputs["lr"], grid], layout=W.Layout(overflow="visible"))],
                         selected_index=None)
        self.set_title(0, "Settings: optimizer, learning rate, loss, regularisation")
        self.add_class("wb-settings")

    @guarded()
    def _on_control(self, setting: Setting, value) -> None:
        if self._syncing:
            return
        try:
            self.session.configure(**setting.write(value, self.session.config))
        except WorkbenchError:
            self.sync()  # back to what the session holds: one source of truth
            raise
        if self.session.running:
            self.message.show(f"{setting.name} changes from the next epoch.", "info")

    def sync(self) -> None:
        """Every control from the session (on config_change and at start), without firing configure()."""
        s = self.session
        self._syncing = True
        try:
            by_name = {setting.name: setting for setting in SETTINGS}
            for name, w in self.inputs.items():
                value = by_name[name].read(s)
                if name == "lr":
                    auto = f" · base {s._describe_lr()}" if value is None else ""
                    w.show(value, s._lr(), f"next epoch: {s.next_epoch_lr().words()}{auto}")  # what runs
                    continue
                if name == "batch_size" and value not in w.options:
                    w.options = sorted({*w.options, value})
                w.value = value
        finally:
            self._syncing = False
