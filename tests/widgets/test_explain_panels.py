"""Why / Label issues / Map in the Errors tab: every click gives the numbers a script gets."""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def trained(session):
    session.step()
    return session


def test_explorer_has_the_three_tabs_and_why_shows_the_script_numbers(trained) -> None:
    x = wb.ErrorExplorer(trained)
    tabs = x.explain_tabs
    assert [tabs.get_title(i) for i in range(3)] == ["Why", "Label issues", "Map"]
    x.show_top_losses()
    first = x.shown_ids[0]
    tabs.selected_index = 1
    x.gallery.click(first, "why")  # a click on the card's picture or its Why? button
    assert x.why.index == first and tabs.selected_index == 0
    expected = wb.explain_many(trained, [first, first], ["true", "pred"])
    for got, want in zip(x.why.explained, expected):
        assert got.target == want.target
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-6)
    errors = wb.ErrorAnalysis.from_session(trained)
    assert x.why.neighbours.equals(errors.neighbours(first, k=8))
    assert "Nearest training samples" in x.why.neighbour_box.value and x.why.message.text == ""


def test_label_issues_tab_ranks_flags_and_exports(trained, tmp_path) -> None:
    x = wb.ErrorExplorer(trained)
    table = x.issues.rank("valid")
    assert table.equals(wb.ErrorAnalysis.from_session(trained).label_issues("valid"))
    ids = x.issues.flag_top(3)
    assert [f["id"] for f in x.flagged] == ids and "3 flagged" in x.flag_list.value
    assert "cleanlab rank 1" in x.flagged[0]["note"]
    train = x.issues.rank("train")
    assert train["split"].eq("train").all() and len(train) == len(trained.data.train)
    out = x.issues.export(tmp_path / "issues.csv")
    assert out.read_text().splitlines()[0].startswith('"rank","id","split"')  # text cells quoted (workbench.safety)


def test_map_tab_selection_shows_cards_below_the_map_and_cells_highlight(trained) -> None:
    x = wb.ErrorExplorer(trained)
    x.explain_tabs.selected_index = 2  # opening the tab draws the map
    m = x.data_map
    emb = wb.ErrorAnalysis.from_session(trained).embedding("pca")
    np.testing.assert_allclose(m.embedding.coords, emb.coords, rtol=1e-5, atol=1e-6)
    lo, hi = emb.coords.min(0), emb.coords.max(0)
    mid = (lo + hi) / 2
    polygon = [(lo[0] - 1, lo[1] - 1), (mid[0], lo[1] - 1), (mid[0], hi[1] + 1), (lo[0] - 1, hi[1] + 1)]
    ids = m.select_polygon(polygon)
    assert sorted(ids) == sorted(emb.inside(polygon).tolist()) and ids
    # the cards show below the map (the explorer's gallery above it stays as it was)
    assert "map lasso" in m.cards.value and m.cards.value.count("<figure") == min(50, len(ids))
    assert x.shown_ids == [] and "map lasso" not in x.gallery.value
    m.canvas.selected = [4]  # what the page sends for a click on point 4
    one = int(emb.ids[4])
    assert m.selected == [one] and f'data-id="{one}"' in m.cards.value and m.cards.value.count("<figure") == 1
    m.cards.click(one, "flag")  # a map card's Flag: the explorer's flag list, and the card shows it
    assert [f["id"] for f in x.flagged] == [one] and "wb-flagged" in m.cards.value
    cell = x.analysis.most_confused().iloc[0]
    x.select(int(cell.true_index), int(cell.pred_index))
    ringed = {int(emb.ids[p]) for p in m.canvas.highlighted}
    assert ringed == set(emb.cell(int(cell.true_index), int(cell.pred_index)).tolist())


def test_errors_show_in_the_message_boxes(trained) -> None:
    x = wb.ErrorExplorer(trained)
    x.why.show(10_000)
    assert "not a validation sample" in x.why.message.text
    x.data_map.select([1])
    assert "press Draw" in x.data_map.message.text


@pytest.mark.slow
def test_text_tokens_and_neighbour_snippets_are_escaped() -> None:
    texts = [f"{EVIL} great fun", "dull & slow <b>bold</b>", "a fine film", "so bad"] * 6
    labels = ["good", "bad", "good", "bad"] * 6
    data = wb.Data.from_texts(texts, labels, valid=(texts[:8], labels[:8]))
    s = wb.Session(data, wb.load_backbone("minilm-l6", 2), lr=5e-3, batch_size=16, seed=0)
    s.step()
    why = wb.WhyPanel(s)
    why.show(0)
    html = why.attributions.value + why.neighbour_box.value
    assert "<img src=x" not in html and "&lt;img" in html and "<b>bold</b>" not in html
    assert why.explained[0].kind == "text" and len(why.explained[0].tokens) > 3


def test_the_public_twins_refuse_indices_they_would_have_coerced(trained) -> None:
    """explain / flag / relabel / flag_top / the map's select / the dashboard's train: a bad index shows
    in the widget's message and nothing changes (2.7 used to show sample 2)."""
    x = wb.ErrorExplorer(trained)
    x.explain_tabs.selected_index = 2
    d = wb.TrainingDashboard(trained)
    for bad in (2.7, 1.0, True, "1", -1, 10_000):
        x.message.clear()
        x.explain(bad)
        assert x.why.index is None and (x.message.text or x.why.message.text)
        twins = [lambda: x.flag(bad), lambda: x.flag([0, bad]), lambda: x.relabel(bad, 0)]
        if not isinstance(bad, str):  # "1" names a digits class: relabel(0, "1") is right
            twins.append(lambda: x.relabel(0, bad))
        for twin in twins:
            x.message.clear()
            twin()
            assert x.flagged == [] and x.message.text, (bad, x.message.text)
        if bad not in (-1, 10_000):  # a count: any whole number >= 1 (10_000 flags them all)
            x.issues.flag_top(bad)
            assert x.flagged == [] and "whole number" in x.issues.message.text
        x.data_map.select([bad])
        assert x.data_map.canvas.selected == [] and x.data_map.message.text
        if bad != 10_000:
            d.message.clear()
            d.train(bad)
            assert not d.training and d.message.text and trained.epoch == 1
