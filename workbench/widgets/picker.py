"""BackbonePicker: choose a backbone for the data's kind, see what it is, load it.

Describing a backbone (a shape-only build and a hub check) and loading it (weights, tokenizer)
take seconds, so both run in background threads; the notebook stays usable. Once every backbone
is described, the list marks which ones can load their pretrained weights right now (bundled, or
their hub reachable), and Load is disabled for the others unless "pretrained weights" is unticked.
While a backbone loads, a line says what is happening and for how long it has been at it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ipywidgets as W

from ..errors import WorkbenchError
from ..models import list_backbones, load_backbone
from ..models.catalog import backbone_card
from .common import STOPPING, STYLE, MessageBox, ProgressLine, esc, fmt_params, guarded, log, start_worker

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
        self._phase = ""  # what loading is doing now, in words (the progress line shows it)
        self.names = list_backbones(self.kind)
        default = DEFAULTS.get(self.kind or "", self.names[0])
        self.available: dict[str, bool] = {}  # name -> can pretrained=True load now (filled in the background)
        self._relabeling = False
        self.name = W.Dropdown(options=self.names, value=default, description="backbone",
                               layout=W.Layout(width="auto", flex="0 1 460px", min_width="0"))
        self.name.add_class("wb-backbone")
        self.pretrained = W.Checkbox(value=True, description="pretrained weights", indent=False,
                                     layout=W.Layout(width="auto"))
        box = {"layout": W.Layout(width="180px"), "style": {"description_width": "initial"}}
        self.classes = W.BoundedIntText(value=num_classes or (data.num_classes if data is not None else 2),
                                        min=2, max=100_000, description="classes", disabled=data is not None, **box)
        self.size = W.BoundedIntText(value=_default_size(data), min=16, max=1024, step=16, description="image px", **box)
        self.max_length = W.BoundedIntText(value=128, min=8, max=512, description="max tokens", **box)
        self.load_button = W.Button(description="Load", icon="download", button_style="primary")
        self.load_button.add_class("wb-load")
        self.card = W.HTML()
        self.card.add_class("wb-card")
        self.progress = ProgressLine()
        self.progress.layout.display = "none"
        self.load_button.on_click(lambda _: self.load())
        self.name.observe(self._on_name, names="value")
        self.pretrained.observe(lambda _: self._update_load_button(), names="value")
        rows = [W.HBox([self.name, self.pretrained]), W.HBox([self.classes, self.size, self.max_length]),
                W.HBox([self.load_button, self.progress])]
        for row in rows:
            row.add_class("wb-wrap-row")
        super().__init__([W.HTML(STYLE), rows[0], rows[1], self.card, rows[2], self.message])
        self.add_class("wb-picker")
        self.add_class("wb-view")
        self._update_inputs()
        self._describe()
        start_worker(self._mark_available, name="workbench-catalog")

    def __repr__(self) -> str:  # the text a saved notebook shows where the widget was (no kernel, no widget state)
        return f"BackbonePicker widget (run the notebook to use it): {self.kind or 'any'} backbones"

    # ---- public twins -------------------------------------------------------------------------
    def on_load(self, fn: Callable) -> None:
        """Call fn(model) when a load succeeds (in the loading thread: assign traits only); a string
        it returns is added to the "Loaded" message."""
        self._callbacks.append(fn)

    @guarded()
    def load(self) -> None:
        """Build the chosen backbone in the background (the Load button)."""
        if self._thread is not None and self._thread.is_alive():
            self.message.show("A backbone is loading already.", "info")
            return
        self.load_button.disabled = True
        self.message.clear()
        weights = "reading its pretrained weights" if self.pretrained.value else "with random weights"
        self._phase = f"loading {self.name.value}: building the model and {weights}"
        self.progress.layout.display = ""
        self.progress.show(self._phase + "…", spin=True)  # at once, before the threads start
        self._thread = start_worker(self._load, name="workbench-load")
        start_worker(self._tick, self._thread, name="workbench-load-progress")

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

    def _tick(self, thread: threading.Thread) -> None:
        """While `thread` loads: what is happening and for how long (load_backbone reports no steps)."""
        start = time.perf_counter()
        while thread.is_alive():
            self.progress.show(f"{self._phase}… {time.perf_counter() - start:.0f} s", spin=True)
            thread.join(0.5)
        self.progress.layout.display = "none"

    def _load(self) -> None:
        try:
            model = load_backbone(self.name.value, self.classes.value, pretrained=self.pretrained.value,
                                  **self._options())
            self.model = model
            self._phase = f"{model.name} loaded: setting up its run"
            said = [fn(model) for fn in self._callbacks]  # e.g. the Workbench builds its tabs: seconds
            after = "".join(f" {s}" for s in said if isinstance(s, str))
            self.message.show(f"Loaded {model.name}: {model.weights}. {len(model.blocks)} blocks, "
                              f"{fmt_params(sum(b.params for b in model.blocks))} parameters.{after}", "ok")
        except WorkbenchError as exc:
            self.message.show(str(exc))
        except Exception as exc:
            self.message.show(f"Unexpected error ({type(exc).__name__}): {exc}")
            log.exception("loading a backbone failed")
        finally:
            self._update_load_button(loading=False)

    def _update_load_button(self, loading: bool | None = None) -> None:
        """Load is off while loading, and for pretrained weights that cannot load now (known once described)."""
        if loading is None:
            loading = self._thread is not None and self._thread.is_alive()
        offline = self.pretrained.value and self.available.get(self.name.value) is False
        self.load_button.disabled = loading or offline
        self.load_button.tooltip = ("its pretrained weights cannot load now: untick 'pretrained weights' or pick "
                                    "one marked ✓" if offline else "")

    def _mark_available(self) -> None:
        """Describe every backbone (a shape-only build and a cached hub check each, ~3 s in all) and
        mark in the list which can load pretrained weights now."""
        for name in self.names:
            if STOPPING.is_set():  # the interpreter is exiting
                return
            try:
                self.available[name] = backbone_card(name).available
            except Exception:  # a description is a courtesy: leave that name unmarked
                continue
        labels = [(f"{n}  {'✓ loads now' if self.available[n] else '✗ needs a download'}" if n in self.available
                   else n, n) for n in self.names]
        value, self._relabeling = self.name.value, True
        try:
            self.name.options = labels  # resets the value to the first option (its observers are muted)
            self.name.value = value
        finally:
            self._relabeling = False
        self._update_load_button()

    def _on_name(self, change) -> None:
        if self._relabeling:
            return
        self._describe()
        self._update_inputs()
        self._update_load_button()

    def _describe(self) -> None:
        name = self.name.value
        self.card.value = f'<span class="wb-muted">describing {esc(name)}…</span>'
        start_worker(self._describe_now, name, name="workbench-describe")

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
