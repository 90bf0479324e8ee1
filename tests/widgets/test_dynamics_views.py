"""The epoch scrubber, the training-dynamics map, the verify queue and the combined train ranking,
driven from Python: every click gives the numbers and the session state a script gets."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import workbench as wb

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def trained(session):
    session.fit(3, progress=False)
    return session


def matrix_counts(x) -> np.ndarray:
    k = len(x._shown)
    return np.array([[int(x._cells[r][c].description) for c in range(k)] for r in range(k)])


def test_scrubbing_shows_the_kept_epochs_matrix_and_gallery(trained) -> None:
    x = wb.ErrorExplorer(trained)
    s = x.scrubber
    assert [v for _, v in s.slider.options] == [1, 2, 3] and s.slider.value == 3 and s.latest.value
    s.show(1)
    kept = wb.ErrorAnalysis.from_session(trained, epoch=1)
    assert x.epoch == 1 and x.analysis.epoch == 1 and not s.latest.value
    assert np.array_equal(matrix_counts(x), kept.confusion_matrix)
    assert "epoch 1" in x.header.value and "showing epoch <b>1</b>" in s.caption.value
    cell = tuple(int(v) for v in np.unravel_index(np.argmax(kept.confusion_matrix - np.diag(np.diag(
        kept.confusion_matrix))), kept.confusion_matrix.shape))
    x.select(*cell)
    assert x.shown_ids == kept.indices(*cell).tolist()
    s.show(2)  # the selected cell follows the epoch
    assert x.shown_ids == wb.ErrorAnalysis.from_session(trained, epoch=2).indices(*cell).tolist()
    table = x.issues.rank("valid")  # rankings read the latest epoch's predictions while an earlier one is shown
    assert table.equals(wb.ErrorAnalysis.from_session(trained).label_issues("valid"))
    s.follow_latest()
    latest = wb.ErrorAnalysis.from_session(trained)
    assert x.epoch is None and np.array_equal(matrix_counts(x), latest.confusion_matrix)
    assert x.shown_ids == latest.indices(*cell).tolist()
    s.show(9)
    assert "were not kept" in s.message.text and x.epoch is None


def test_the_slider_follows_new_epochs_unless_held(trained) -> None:
    x = wb.ErrorExplorer(trained)
    s = x.scrubber
    trained.fit(1, progress=False)
    assert [v for _, v in s.slider.options] == [1, 2, 3, 4] and s.slider.value == 4 and x.epoch is None
    s.show(2)
    trained.fit(1, progress=False)
    assert s.slider.value == 2 and x.epoch == 2 and [v for _, v in s.slider.options][-1] == 5


def test_pins_show_the_grad_cam_recorded_at_each_epoch(trained) -> None:
    x = wb.ErrorExplorer(trained)
    s = x.scrubber
    s.pin(None)
    assert "Open a sample in the Why tab first" in s.message.text
    x.explain(3)
    s.pin(x.why.index)
    assert trained.pinned == [3] and "Pinned validation #3" in s.message.text
    assert s.pinned.value.count("<img") == 2  # toward the true and the predicted class, at epoch 3
    trained.fit(1, progress=False)
    s.show(3)
    assert s.pinned.value.count("<img") == 2 and "epoch 3" in s.pinned.value
    s.show(1)
    assert "not recorded at epoch 1 (recorded from epoch 3)" in s.pinned.value
    s.unpin_button.click()
    assert trained.pinned == [] and "Pin a sample" in s.pinned.value


def test_dynamics_map_regions_lasso_and_card_actions(trained) -> None:
    x = wb.ErrorExplorer(trained)
    x.explain_tabs.selected_index = 2
    x.map_view.value = "dynamics"  # the toggle draws the training-dynamics map
    m = x.dynamics_map
    frame = wb.ErrorAnalysis.from_session(trained).dynamics()
    assert m.data_map is not None and len(m._ids) == int((frame["epochs_seen"] > 0).sum())
    assert "train samples over epochs 1-3" in m.info.value
    coords = np.frombuffer(m.canvas.points, dtype=np.float32).reshape(-1, 2)
    np.testing.assert_allclose(coords[:, 1], frame.loc[m._ids, "confidence"], atol=1e-6)
    hard = m.select_region("hard-to-learn")
    assert sorted(hard) == sorted(frame.index[frame["region"] == "hard-to-learn"].tolist())
    polygon = [(0, -0.1), (1, -0.1), (1, 0.5), (0, 0.5)]
    ids = m.select_polygon(polygon)
    assert set(ids) == set(frame.index[frame["confidence"] < 0.5]) and m.selected == sorted(
        ids, key=lambda i: (frame.loc[i, "confidence"], i))
    first = m.selected[0]
    assert f'data-id="{first}"' in m.gallery.html
    m.gallery.click(first, "relabel", 4)
    assert trained.review.overrides[first] == 4 and trained.recording[-1]["op"] == "relabel"
    assert "relabelled as '4'" in m.message.text
    m.gallery.click(m.selected[1], "flag")
    m.gallery.click(m.selected[2], "keep")
    ringed = np.frombuffer(m.canvas.wrong, dtype=np.uint8)
    position = {int(i): n for n, i in enumerate(m._ids)}
    assert ringed[position[first]] == 1 and ringed[position[m.selected[1]]] == 1 and ringed[position[m.selected[2]]] == 0
    assert trained.review.decisions[m.selected[2]]["decision"] == "keep"
    i = m.click(0.0, 1.0)
    assert m.selected == [i]


def test_verify_queue_lists_decisions_and_exports_them(trained, tmp_path) -> None:
    x = wb.ErrorExplorer(trained)
    v = x.verify
    assert "empty" in v.summary.value
    trained.flag([5], note=EVIL)
    trained.relabel({6: "2"})
    assert "1 flag" in v.summary.value and "1 relabels in effect" in v.summary.value
    assert EVIL not in v.table.value and "&lt;img" in v.table.value
    v.gallery.click(5, "relabel", 1)
    assert trained.review.overrides[5] == 1
    v.gallery.click(6, "unflag")
    assert 6 not in trained.review.decisions and 6 in trained.review.overrides
    v.csv_path.value = str(tmp_path / "q.csv")
    v.export_button.click()
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert [(r["id"], r["decision"]) for r in rows] == [("5", "relabel"), ("6", "relabel")]
    assert "Wrote 2 queued samples" in v.message.text


def test_a_card_relabel_while_training_waits_for_the_next_epoch(trained) -> None:
    x = wb.ErrorExplorer(trained)
    m = x.dynamics_map
    m.draw()
    asked = []
    trained.events.batch_interval_s = 0.0

    def click_once(_) -> None:
        if not asked:
            m.gallery.click(7, "relabel", 2)
            asked.append(m.message.text)

    trained.on("batch_end", click_once)
    trained.fit(1, progress=False)
    assert "when the next epoch starts" in asked[0]
    assert trained.review.pending == {7: 2} and 7 not in trained.review.overrides
    trained.fit(1, progress=False)
    assert trained.review.overrides == {7: 2} and not trained.review.pending


def test_label_issues_train_ranking_combines_the_signals(trained) -> None:
    x = wb.ErrorExplorer(trained)
    table = x.issues.rank("train")
    want = wb.ErrorAnalysis.from_session(trained).label_issues("train", combine=True)
    assert table.equals(want)
    assert "flagged by at least two" in x.issues.summary.value and "AUM" in x.issues.table.value
    assert x.issues.train_gallery.html.count("data-id=") == 24 and x.issues.gallery.value == ""
    ids = x.issues.flag_top(4)
    assert ids == want["id"].head(4).tolist()
    assert all(trained.review.decisions[i]["decision"] == "flag" for i in ids)
    x.issues.train_gallery.click(ids[0], "keep")
    assert trained.review.decisions[ids[0]]["decision"] == "keep"
    x.issues.rank("valid")
    assert x.issues.train_gallery.html == "" and x.issues.gallery.value
