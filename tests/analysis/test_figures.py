"""The figure helpers render what the analysis computed (script twins of the panels)."""

from __future__ import annotations

import numpy as np

from workbench import plots
from workbench.analysis import Attribution, Embedding

CLASSES = ("a", "<b>b</b>")


def _image() -> Attribution:
    heat = np.zeros((8, 8), np.float32)
    heat[:, :4] = 1.0
    return Attribution(index=3, kind="image", target=1, classes=CLASSES, true=0, predicted=1,
                       probabilities=np.array([0.3, 0.7]), image=np.full((8, 8, 3), 100, np.uint8),
                       heatmap=heat, cam=heat[::4, ::4])


def _text() -> Attribution:
    return Attribution(index=1, kind="text", target=0, classes=CLASSES, true=0, predicted=0,
                       probabilities=np.array([0.9, 0.1]), tokens=("[CLS]", "<img", "##x", "fine", "[SEP]"),
                       scores=np.array([0.1, 1.0, 0.5, -0.4, 0.0], np.float32),
                       special=np.array([True, False, False, False, True]))


def test_overlay_blends_only_where_the_heat_is() -> None:
    out = plots.overlay(_image())
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[:, 4:] == 100).all() and (out[:, :4] != 100).any()
    assert plots.image_png(out).startswith(b"\x89PNG")


def test_tokens_html_escapes_and_joins_word_pieces() -> None:
    html = plots.tokens_html(_text())
    assert "&lt;img" in html and "<img" not in html and "[CLS]" not in html
    assert ">&lt;img</span><span" in html and ">x</span>" in html  # "##x" joins "<img" without a space
    assert "rgba(198,40,40,0.24)" in html  # "fine" pushes against: red at 0.6 x |score| (text stays readable)
    assert _text().top_tokens(2) == [("<img", 1.0), ("##x", 0.5)]


def test_figures_build() -> None:
    assert plots.png(plots.attribution_figure([_image(), _image()])).startswith(b"\x89PNG")
    assert plots.png(plots.attribution_figure([_text()])).startswith(b"\x89PNG")
    emb = Embedding(coords=np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32), ids=np.arange(20),
                    labels=np.arange(20) % 2, predicted=np.zeros(20, int), classes=CLASSES, explained_variance=(0.5, 0.2))
    assert plots.png(plots.embedding_figure(emb, highlight=[1, 2])).startswith(b"\x89PNG")
    assert len(plots.class_palette(15)) == 15 and len(set(plots.class_palette(30))) == 30
