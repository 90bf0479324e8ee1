"""ErrorExplorer driven from Python: cells, galleries, side panels, flags, escaping, 50 classes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import workbench as wb
from workbench.train.records import Predictions
from workbench.widgets import ErrorExplorer

EVIL = "<img src=x onerror=alert(1)>"


def fake_session(data, predictions, previous=None):
    """What the explorer reads from a Session, with predictions we choose."""
    return SimpleNamespace(data=data, predictions=predictions, previous_predictions=previous,
                           on=lambda event, fn: fn)


def predictions(labels, predicted, k, epoch=1, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), k)).astype(np.float32)
    logits[np.arange(len(labels)), predicted] += 6.0
    z = logits - logits.max(1, keepdims=True)
    losses = -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(labels)), labels]
    return Predictions(logits, np.asarray(labels), losses.astype(np.float32), np.arange(len(labels)), epoch)


@pytest.fixture
def texts():
    snippets = [EVIL, "a fine film", "dull & slow", "<b>bold</b> claim", "ok"] * 8
    labels = ["bad", "good", "bad", "good", "good"] * 8
    return wb.Data.from_texts(snippets, labels, valid=(snippets, labels))


def test_clicking_a_cell_shows_exactly_that_cells_samples_by_loss(session) -> None:
    session.step()
    x = ErrorExplorer(session)
    a = x.analysis
    cm = a.confusion_matrix.copy()
    np.fill_diagonal(cm, 0)
    t, p = np.unravel_index(int(cm.argmax()), cm.shape)
    cell = x._cells[x._shown.index(t)][x._shown.index(p)]
    assert f"cm-cell-{t}-{p}" in cell._dom_classes and cell.description == str(a.confusion_matrix[t, p])
    cell.click()
    assert x.selected == (t, p)
    assert x.shown_ids == list(a.indices(t, p)) and len(x.shown_ids) == a.confusion_matrix[t, p]
    for i in x.shown_ids[:50]:
        assert f"#{i} · true" in x.gallery.value
    assert x.gallery.value.count("<figure") == min(50, len(x.shown_ids))


def test_refreshes_after_each_epoch_and_counts_flips(session) -> None:
    x = ErrorExplorer(session)
    assert "No predictions yet" in x.header.value
    session.step()
    assert "epoch 1" in x.header.value
    session.step()
    assert "epoch 2" in x.header.value and ": " in x.flip_buttons[0].description
    x.flip_buttons[0].click()
    flips = x.analysis.flips(session.previous_predictions)
    assert x.shown_ids == [int(i) for i in flips.right_to_wrong]


def test_side_panels_top_losses_pairs_per_class(session) -> None:
    session.step()
    x = ErrorExplorer(session)
    x.top_button.click()
    assert x.shown_ids == x.analysis.top_losses(50)["id"].tolist()
    visible = [b for b in x._pair_buttons if b.layout.display != "none"]
    assert visible, "an untrained model confuses some pair"
    visible[0].click()
    assert x.selected == x._pair_of[0]
    x.per_class.children[5].click()  # the first class's button (after 5 header cells)
    a = x.analysis
    errors = np.flatnonzero((a.labels == 0) & (a.predicted != 0))
    assert sorted(x.shown_ids) == sorted(a.ids[errors].tolist())
    assert x._class_rows[0][3].value == str(int((a.labels == 0).sum()))


def test_rate_mode_colours_by_row_share(session) -> None:
    session.step()
    x = ErrorExplorer(session)
    x.mode.value = "rate"
    assert x._cells[0][0].description.endswith("%")


def test_text_gallery_escapes_untrusted_text(texts) -> None:
    labels = texts.valid.labels
    predicted = 1 - labels  # everything wrong: every text appears in some cell
    x = ErrorExplorer(fake_session(texts, predictions(labels, predicted, 2)))
    x.select("bad", "good")
    html = x.gallery.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and EVIL not in html and "dull &amp; slow" in html
    x.select("good", "bad")
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in x.gallery.value and "<b>bold</b>" not in x.gallery.value


def test_flag_unflag_and_relabel_from_the_cards_and_export(tmp_path, texts) -> None:
    labels = texts.valid.labels
    x = ErrorExplorer(fake_session(texts, predictions(labels, 1 - labels, 2)))
    x.select(0, 1)
    first_two = x.shown_ids[:2]
    assert f'data-id="{first_two[0]}"' in x.gallery.value and 'data-action="flag"' in x.gallery.value
    for i in first_two:
        x.gallery.click(i, "flag")  # what a click on the card's Flag button sends
    assert [f["id"] for f in x.analysis.flagged] == first_two and "wb-flagged" in x.gallery.value
    assert "2 flagged" in x.flag_list.value and x.side.get_title(4) == "Flagged (2)"
    x.refresh()  # a new epoch's analysis keeps the flags
    assert [f["id"] for f in x.analysis.flagged] == first_two
    x.gallery.click(first_two[0], "unflag")
    x.gallery.click(first_two[1], "relabel", label=texts.classes.index("good"))  # the card's "relabel as…" list
    x.export_path.value = str(tmp_path / "flags.csv")
    x.export_button.click()
    lines = (tmp_path / "flags.csv").read_text().splitlines()
    sample = texts.valid.sample_id(first_two[1])
    assert lines == ['"id","sample","given_label","predicted_label","note"',  # text cells quoted (workbench.safety)
                     f'{first_two[1]},"{sample}","bad","good","relabel as good"']
    assert "Wrote 1 flagged" in x.message.text


def test_the_selected_cell_is_a_synced_trait_that_code_can_set(texts) -> None:
    labels = texts.valid.labels
    x = ErrorExplorer(fake_session(texts, predictions(labels, 1 - labels, 2)))
    assert x.trait_metadata("selected", "sync") is True and "selected" in x.get_state()
    x.selected = (1, 0)  # from code, as from a click
    assert x.shown_ids == list(x.analysis.indices(1, 0)) and "true good, predicted as bad" in x.gallery.value
    assert x.get_state()["selected"] == (1, 0) or list(x.get_state()["selected"]) == [1, 0]
    x.show_top_losses()
    assert x.selected is None


def test_long_texts_show_their_start_and_the_rest_on_a_click() -> None:
    long = "word " * 200 + "<script>alert(1)</script> END"
    texts = [long, "short one"] * 6
    labels = ["bad", "good"] * 6
    data = wb.Data.from_texts(texts, labels, valid=(texts, labels))
    y = data.valid.labels
    x = ErrorExplorer(fake_session(data, predictions(y, 1 - y, 2)))
    x.select("bad", "good")
    html = x.gallery.value
    assert "<details>" in html and "(more)" in html and "END" in html  # the whole text, behind the click
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_fifty_classes_collapse_to_the_most_confused_and_can_be_picked() -> None:
    k = 50
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(k * 4, 8, 8), dtype=np.uint8)
    labels = np.repeat(np.arange(k), 4)
    data = wb.Data.from_arrays(images, labels, [f"class {i:02d}" for i in range(k)], valid=(images, labels))
    predicted = labels.copy()
    predicted[labels == 7] = 30  # the confusion lives between 7, 30, 41 and 12
    predicted[labels == 41] = 12
    x = ErrorExplorer(fake_session(data, predictions(labels, predicted, k)))
    assert len(x._cells) == 12 and {7, 30, 41, 12} <= set(x._shown)
    assert "Showing 12 of 50 classes" in x.message.text
    x.classes_pick.value = (3,)
    assert 3 in x._shown and len(x._shown) == 12
    x.select(7, 30)
    assert len(x.shown_ids) == 4


def test_actions_before_any_epoch_explain_themselves(session) -> None:
    x = ErrorExplorer(session)
    x.top_button.click()
    assert "train an epoch first" in x.message.text
