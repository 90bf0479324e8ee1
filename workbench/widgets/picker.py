"""BackbonePicker: choose a backbone for the data's kind, see what it is, load it.

Describing a backbone (a shape-only build and a hub check) and loading it (weights, tokenizer)
take seconds, so both run in a background thread; the notebook stays usable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets as W

from ..errors import WorkbenchError
from ..models import list_backbones, load_backbone
from ..models.catalog import backbone_card
from .common import STYLE, MessageBox, esc, fmt_params, guarded, log

DEFAULTS = {"image": "efficientnet_lite0", "text": "minilm-l6"}


class BackbonePicker(W.VBox):
    """Pick and load a backbone; `picker.model` holds the result, `on_load(fn)` is told of it."""

    def __init__(self, data=None, kind: str | None = None, num_classes: int | None = None) -> None:
        self.data = data
        self.kind = kind or (data.kind if data is not None else None)
        self.message = MessageBox()
        self.model = None
        self._callbacks: list[Callable] = []
        self._thread: threading.Thread | None = None
        names = list_backbones(self.kind)
        default = DEFAULTS.get(self.kind or "", names[0])
        self.name = W.Dropdown(options=names, value=default, description="backbone", layout=W.Layout(width="340px"))
        self.name.add_class("wb-backbone")
        self.pretrained = W.Checkbox(value=True, description="pretrained weights", indent=False)
        self.classes = W.BoundedIntText(value=num_classes or (data.num_classes if data is not None else 2),
                                        min=2, max=100_000, description="classes", disabled=data is not None,
                                        layout=W.Layout(width="180px"))
        self.size = W.BoundedIntText(value=_default_size(data), min=16, max=1024, step=16, description="image px",
                                     layout=W.Layout(width="180px"))
        self.max_length = W.BoundedIntText(value=128, min=8, max=512, description="max tokens",
                                           layout=W.Layout(width="180px"))
        self.load_button = W.Button(description="Load", icon="download", button_style="primary")
        self.load_button.add_class("wb-load")
        self.card = W.HTML()
        self.card.add_class("wb-card")
        self.load_button.on_click(lambda _: self.load())
        self.name.observe(lambda _: self._describe(), names="value")
        self.name.observe(self._update_inputs, names="value")
        super().__init__([
            W.HTML(STYLE), W.HBox([self.name, self.pretrained]), W.HBox([self.classes, self.size, self.max_length]),
            self.card, W.HBox([self.load_button]), self.message,
        ])
        self.add_class("wb-picker")
        self._update_inputs()
        self._describe()

    # ---- public twins -------------------------------------------------------------------------
    def on_load(self, fn: Callable) -> None:
        """Call fn(model) when a load succeeds (in the loading thread: assign traits only)."""
        self._callbacks.append(fn)

    @guarded()
    def load(self) -> None:
        """Build the chosen backbone in the background (the Load button)."""
        if self._thread is not None and self._thread.is_alive():
            self.message.show("A backbone is loading already.", "info")
            return
        self.load_button.disabled = True
        self.message.show(f"Loading {self.name.value}…", "info")
        self._thread = threading.Thread(target=self._load, name="workbench-load", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- work in threads ---------------------------------------------------------------------
    def _options(self) -> dict:
        if self._kind_of(self.name.value) == "image":
            return {"image_size": self.size.value}
        return {"max_length": self.max_length.value}

    def _kind_of(self, name: str) -> str:
        return self.kind or ("text" if name in list_backbones("text") else "image")

    def _load(self) -> None:
        try:
            model = load_backbone(self.name.value, self.classes.value, pretrained=self.pretrained.value,
                                  **self._options())
            self.model = model
            self.message.show(f"Loaded {model.name}: {model.weights}. {len(model.blocks)} blocks, "
                              f"{fmt_params(sum(b.params for b in model.blocks))} parameters.", "ok")
            for fn in self._callbacks:
                fn(model)
        except WorkbenchError as exc:
            self.message.show(str(exc))
        except Exception as exc:
            self.message.show(f"Unexpected error ({type(exc).__name__}): {exc}")
            log.exception("loading a backbone failed")
        finally:
            self.load_button.disabled = False

    def _describe(self) -> None:
        name = self.name.value
        self.card.value = f'<span class="wb-muted">describing {esc(name)}…</span>'
        threading.Thread(target=self._describe_now, args=(name,), daemon=True).start()

    def _describe_now(self, name: str) -> None:
        try:
            c = backbone_card(name)
        except Exception as exc:  # the card is a courtesy: never block loading on it
            self.card.value = f'<span class="wb-muted">no description ({esc(type(exc).__name__)}: {esc(exc)})</span>'
            return
        if name != self.name.value:
            return  # the person chose another backbone meanwhile
        state = ("✓ available now" if c.available else f"✗ not reachable now ({c.why_not}); "
                 "untick 'pretrained weights' for random init, or pick a bundled backbone")
        self.card.value = (
            f'{STYLE}<div class="wb-card"><b>{esc(c.name)}</b> ({esc(c.library)}: {esc(c.source)}), {esc(c.kind)}<br>'
            f"{fmt_params(c.params)} parameters without the head · pretrained input {esc(c.input)}<br>"
            f"weights: {esc(c.weights_from)} · {esc(state)}</div>"
        )

    def _update_inputs(self, _=None) -> None:
        image = self._kind_of(self.name.value) == "image"
        self.size.layout.display = "" if image else "none"
        self.max_length.layout.display = "none" if image else ""


def _default_size(data) -> int:
    """64 px for small images (digits, MNIST): a CPU epoch takes seconds; else the usual 224."""
    images = getattr(getattr(data, "train", None), "images", None)
    if images is not None and max(images.shape[1:3]) <= 64:
        return 64
    return 224
