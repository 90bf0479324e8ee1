"""Measuring a rendered view in the page: every tab and sub-tab walked, clipping and text contrast.

`walk_tabs(page, root, visit)` clicks through every tab of the view's top tab bar and, inside each,
every tab of every tab widget it shows, at any depth (views that other code adds are walked too:
nothing here names a tab). `clipped(page)` lists widget areas and texts wider than their box
(`scrollWidth > clientWidth`). `low_contrast(page, root)` computes, from computed styles, the
contrast of every visible text against the background it is drawn on (colours with alpha composited
over their ancestors', `opacity` included) and lists those under 4.5:1 (3:1 for large text). The
theme is JupyterLab's setting, changed through its REST API.
"""

from __future__ import annotations

import json
import re
import urllib.request

from browser.lab import screenshot
from browser.test_classroom import CLIPPED_JS

_MARK_JS = r"""([rootSel, parentId]) => {
  const visible = el => el.getClientRects().length > 0 && el.clientWidth > 0;
  const isTab = el => el.classList.contains('widget-tab') || el.classList.contains('jupyter-widget-tab');
  window.__wbWalk = window.__wbWalk || 0;
  const parent = parentId === null ? document.querySelector(rootSel)
                                   : document.querySelector(`[data-wb-walk="${parentId}"]`);
  if (!parent) return [];
  const all = [...parent.querySelectorAll('.widget-tab, .jupyter-widget-tab')].filter(visible);
  // the tab widgets nearest to `parent`: no other tab widget between them and it
  const kids = all.filter(el => {
    let up = el.parentElement;
    while (up && up !== parent) { if (isTab(up)) return false; up = up.parentElement; }
    return true;
  });
  return kids.map(el => {
    if (!el.dataset.wbWalk) el.dataset.wbWalk = String(++window.__wbWalk);
    const titles = [...el.querySelectorAll(':scope > .lm-TabBar .lm-TabBar-tabLabel')].map(t => t.textContent.trim());
    return {id: el.dataset.wbWalk, titles};
  });
}"""


def walk_tabs(page, root: str, visit, path: tuple[str, ...] = (), parent: str | None = None) -> list[tuple[str, ...]]:
    """Click every tab under `root` (a CSS selector) depth first; `visit(path, panel)` after each
    click, `panel` a locator of the tab widget whose tab was clicked. Returns the paths visited."""
    seen: list[tuple[str, ...]] = []
    for widget in page.evaluate(_MARK_JS, [root, parent]):
        box = page.locator(f'[data-wb-walk="{widget["id"]}"]')
        for i, title in enumerate(widget["titles"]):
            box.locator(":scope > .lm-TabBar .lm-TabBar-tab").nth(i).click()
            page.wait_for_timeout(250)  # Lumino lays the panel out after the click
            here = (*path, title)
            visit(here, box)
            seen.append(here)
            seen += walk_tabs(page, root, visit, here, widget["id"])
    return seen


def clipped(page) -> list[str]:
    return page.evaluate(CLIPPED_JS)


_CONTRAST_JS = r"""(rootSel) => {
  const parse = c => {
    let m = c.match(/^rgba?\(([^)]+)\)$/);
    if (m) { const v = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; }
    m = c.match(/^color\(srgb ([^)]+)\)$/);
    if (m) { const v = m[1].split(/[ \/]+/).filter(Boolean).map(Number); return [v[0] * 255, v[1] * 255, v[2] * 255, v.length > 3 ? v[3] : 1]; }
    return null;
  };
  const over = (top, under) => {  // top (with alpha) composited over an opaque `under`
    const a = top[3];
    return [top[0] * a + under[0] * (1 - a), top[1] * a + under[1] * (1 - a), top[2] * a + under[2] * (1 - a), 1];
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    let base = layers.length && layers[layers.length - 1][3] >= 1 ? layers.pop() : [255, 255, 255, 1];
    while (layers.length) base = over(layers.pop(), base);
    return base;
  };
  const opacity = el => { let o = 1; for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity); return o; };
  const root = document.querySelector(rootSel);
  const out = [], checked = [];
  if (!root) return {checked: 0, low: ['no ' + rootSel]};
  for (const el of root.querySelectorAll('*')) {
    if (!el.getClientRects().length || el.closest('canvas, svg, option, [disabled], .mod-disabled, :disabled, [aria-hidden="true"]')) continue;
    const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
    if (!own) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || Number(cs.opacity) === 0) continue;
    const bg = background(el);
    const fg = parse(cs.color);
    if (!fg) continue;
    const o = opacity(el);
    const text = over([fg[0], fg[1], fg[2], fg[3] * o], bg);
    const l1 = lum(text), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const cls = [...el.classList].filter(c => /^(wb-|widget-|jupyter-|lm-)/.test(c)).slice(0, 3).join('.');
    checked.push(ratio);
    if (ratio < need) out.push(`${el.tagName.toLowerCase()}.${cls} "${own.slice(0, 40)}" ${ratio.toFixed(2)}:1 (${cs.color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
  }
  return {checked: checked.length, min: Math.min(...checked), low: out};
}"""


def low_contrast(page, root: str) -> dict:
    """{checked: texts measured, min: the lowest ratio, low: descriptions of those under the bar}."""
    return page.evaluate(_CONTRAST_JS, root)


_CATCH_JS = """([sel, contrast, clipped]) => {
  window.__wbCaught = null;
  const measure = { contrast: eval(contrast), clipped: eval(clipped) };
  const obs = new MutationObserver(() => {
    const el = document.querySelector(sel);
    if (window.__wbCaught || !el || !el.getClientRects().length || !el.textContent.trim()) return;
    window.__wbCaught = {text: el.textContent.trim(), contrast: measure.contrast(sel), clipped: measure.clipped()};
    obs.disconnect();
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def catch_when_shown(page, selector: str) -> None:
    """Measure `selector` (contrast and the page's clipping) the moment it shows text, in the page:
    a busy line may show for less than a poll's interval. Read it with `caught(page)`."""
    page.evaluate(_CATCH_JS, [selector, _CONTRAST_JS, "() => (" + CLIPPED_JS + ")()"])


def caught(page) -> dict | None:
    return page.evaluate("() => window.__wbCaught")


def set_theme(lab, theme: str) -> None:
    """JupyterLab's theme setting ("JupyterLab Light" / "JupyterLab Dark"); pages load it on (re)load."""
    body = json.dumps({"raw": json.dumps({"theme": theme})}).encode()
    req = urllib.request.Request(lab.url + "lab/api/settings/@jupyterlab/apputils-extension:themes", data=body,
                                 method="PUT", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def theme_of(page) -> str:
    return page.evaluate("() => document.body.dataset.jpThemeName || ''")


def slug(path: tuple[str, ...]) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "", p.lower()) or "tab" for p in path)


class Measure:
    """A visit for walk_tabs: clipping and contrast per tab, a screenshot each; findings by step."""

    def __init__(self, page, prefix: str, root: str) -> None:
        self.page, self.prefix, self.root = page, prefix, root
        self.clipped: dict[str, list[str]] = {}
        self.contrast: dict[str, list[str]] = {}
        self.min_contrast = float("inf")
        self.texts = 0

    def __call__(self, path: tuple[str, ...], box) -> None:
        box.evaluate("el => el.scrollIntoView({block: 'start'})")
        self.page.wait_for_timeout(150)
        name = f"{self.prefix}/{'/'.join(path)}"
        found = clipped(self.page)
        if found:
            self.clipped[name] = found
        c = low_contrast(self.page, self.root)
        self.texts += c["checked"]
        self.min_contrast = min(self.min_contrast, c.get("min", float("inf")))
        if c["low"]:
            self.contrast[name] = c["low"]
        screenshot(self.page, f"round2_{self.prefix}_{slug(path)}")
