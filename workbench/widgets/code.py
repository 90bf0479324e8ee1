"""CodeCopy: a "Copy as code" button that shows `session.to_code()` and puts it on the clipboard.

What a widget can do with code in JupyterLab 4, checked in a real JupyterLab (tests/browser):
a widget's click reaches the kernel as a comm message, not as a cell execution, so IPython's
`set_next_input` has no reply to ride on there (its payload would surface with the next cell the
person runs), and JupyterLab exposes no page-level API to add a cell. The button therefore asks the
kernel for the code, shows it, and writes it to the clipboard from the page (the Clipboard API
works on localhost and https; elsewhere the text is selected for Ctrl+C). Its twin for a code cell,
`TrainingDashboard.copy_as_code()`, does use `set_next_input`: there the code lands in a new cell.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

from .common import log

_ESM = r"""
function render({ model, el }) {
  el.classList.add("wb-code");
  const bar = document.createElement("div");
  bar.className = "wb-code-bar";
  const btn = document.createElement("button");
  btn.className = "jupyter-button wb-code-copy";
  btn.textContent = "Copy as code";
  btn.title = "A Python cell that replays this run bit for bit (session.to_code())";
  const note = document.createElement("span");
  note.className = "wb-code-note";
  const pre = document.createElement("pre");
  pre.className = "wb-code-text";
  bar.append(btn, note);
  el.append(bar, pre);
  const draw = () => {
    const t = model.get("code");
    pre.textContent = t;
    pre.style.display = t ? "" : "none";
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(model.get("code"));
      note.textContent = "Copied: paste it into a new cell (Ctrl+V).";
      el.dataset.copied = "clipboard";
    } catch (e) {  // no Clipboard API here (plain http on another host): select it for Ctrl+C
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      note.textContent = "Selected: press Ctrl+C to copy it, then paste it into a new cell.";
      el.dataset.copied = "selected";
    }
  };
  model.on("change:code", draw);
  model.on("msg:custom", (msg) => { if (msg && msg.event === "ready") copy(); });
  btn.addEventListener("click", () => {
    note.textContent = "…";
    model.send({ event: "copy" });
  });
  draw();
}
export default { render };
"""

_CSS = """
.wb-code-bar {display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: center}
.wb-code-note {font-size: 13px; color: var(--jp-content-font-color2, rgba(0,0,0,.54))}
.wb-code-text {font-size: 13px; line-height: 1.4; max-height: 22em; overflow-y: auto; overflow-x: hidden;
  white-space: pre-wrap; word-break: break-word; color: var(--jp-content-font-color1, rgba(0,0,0,.87));
  background: var(--jp-cell-editor-background, #f7f7f7); border: 1px solid var(--jp-border-color2, #e0e0e0);
  padding: 6px 8px; margin: 4px 0}
"""


class CodeCopy(anywidget.AnyWidget):
    """Shows the code `source()` returns and copies it to the clipboard on a click."""

    _esm = _ESM
    _css = _CSS
    code = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Callable[[], str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._source = source
        self.on_msg(self._on_msg)

    def refresh(self) -> str:
        """Ask the source again and show it (the button's twin, without the clipboard)."""
        self.code = self._source()
        return self.code

    def _on_msg(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "copy":
            try:
                self.refresh()
            except Exception:  # shown in the widget tests' log check; the page keeps its old text
                log.exception("building the code failed")
                return
            self.send({"event": "ready"})
