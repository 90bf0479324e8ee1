"""The verify queue and relabels: transactional, applied at an epoch's start, recorded for to_code."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.errors import WorkbenchError

from helpers import assert_same_state, tiny_cnn


@pytest.fixture(scope="module")
def small():
    return wb.load_data("digits").subset(train=8, valid=4, seed=0)


def make(data, **kw) -> wb.Session:
    torch.manual_seed(0)
    return wb.Session(data, tiny_cnn(), **{"optimizer": "sgd", "lr": 0.1, "batch_size": 16, "seed": 0, **kw})


def test_relabel_changes_the_labels_training_uses_not_the_data(small) -> None:
    s = make(small)
    given_labels = small.train.labels.copy()
    done = s.relabel([0, 1], "7")
    assert done == {0: "7", 1: "7"}
    assert s.train_labels[:2].tolist() == [7, 7] and np.array_equal(small.train.labels, given_labels)
    assert s.recording[-1] == {"op": "relabel", "labels": [[0, "7"], [1, "7"]]}
    s.fit(1)
    sig = s.dynamics.signals()
    # the epoch's record measured samples 0 and 1 against their new label
    labels = torch.as_tensor(s.train_labels)
    assert int(labels[0]) == 7
    frame = wb.ErrorAnalysis.from_session(s).dynamics()
    assert frame.loc[0, "label"] == "7" and frame.loc[0, "given_label"] == small.classes[given_labels[0]]
    assert sig["p_true"].shape[1] == len(small.train)
    table = s.review.frame()
    assert table.set_index("id").loc[0, "status"] == "in effect since epoch 1"
    s.relabel({0: int(given_labels[0])})  # back to the given label: the override is gone
    assert 0 not in s.review.overrides and s.train_labels[0] == given_labels[0]


def test_a_relabel_trains_on_the_new_label(small) -> None:
    """The loss reads the override: relabelled runs diverge from plain ones, and agree with a Data
    whose label was changed in the first place."""
    changed = small.subset(train=8, valid=4, seed=0)
    changed.train.labels = changed.train.labels.copy()
    changed.train.labels[:5] = (changed.train.labels[:5] + 1) % 10
    direct, relabelled, plain = make(changed), make(small), make(small)
    relabelled.relabel({i: int(changed.train.labels[i]) for i in range(5)})
    for s in (direct, relabelled, plain):
        s.fit(1)
    a, b, c = (x.model.module.state_dict() for x in (direct, relabelled, plain))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bad_relabels_change_nothing(small) -> None:
    s = make(small)
    s.fit(1)
    before = s.state_dict()
    for ids, label, error in [([999], "1", "not a train sample"), ([0], "eleven", "Unknown class"),
                              ([0], 12, "must be a class name"), ([True], "1", "not a train sample"),
                              ({0: "1", 5000: "2"}, None, "not a train sample"), ([], "1", "No ids"),
                              ([0], None, "needs the new label")]:
        with pytest.raises(WorkbenchError, match=error):
            s.relabel(ids, label)
    with pytest.raises(WorkbenchError, match="not both"):
        s.relabel({0: "1"}, "2")
    assert_same_state(before, s.state_dict())


@given(ids=st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(allow_subnormal=False), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.integers(), st.text(max_size=3), max_size=2)),
       label=st.one_of(st.integers(), st.text(max_size=6), st.none(), st.floats(allow_subnormal=False), st.booleans()))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_relabels_raise_workbench_errors_or_apply_cleanly(small, ids, label) -> None:
    s = _shared(small)
    before = (dict(s.review.overrides), len(s.recording))
    try:
        s.relabel(ids, label)
    except WorkbenchError:
        assert (dict(s.review.overrides), len(s.recording)) == before
    else:
        assert len(s.recording) == before[1] + 1


_SESSIONS: dict = {}


def _shared(data) -> wb.Session:
    if "s" not in _SESSIONS:
        _SESSIONS["s"] = make(data)
    return _SESSIONS["s"]


def test_a_relabel_asked_for_during_an_epoch_applies_at_the_next(small) -> None:
    s = make(small)
    s.events.batch_interval_s = 0.0
    asked = []

    def relabel_once(event) -> None:
        if not asked:
            asked.append(s.relabel({2: "3"}))
            assert s.review.pending == {2: 3} and 2 not in s.review.overrides

    events = []
    s.on("review", events.append)
    s.on("batch_end", relabel_once)
    s.fit(2)
    assert s.review.overrides == {2: 3} and s.review.since[2] == 2 and not s.review.pending
    assert [e.what for e in events] == ["relabel", "relabel applied"] and events[0].pending
    ops = [r["op"] for r in s.recording]
    assert ops[-3:] == ["fit", "relabel", "fit"]  # recorded where it took effect: between the epochs
    code = s.to_code()
    assert code.index("session.fit(1)") < code.index("session.relabel({2: '3'})") < code.rindex("session.fit(1)")


def test_flags_keeps_and_export(small, tmp_path) -> None:
    s = make(small)
    s.flag([4, 5], note="=SUM(A1:A9)")
    s.flag([6], decision="keep", note="checked")
    s.relabel({7: "1"}, note="@looks like a one")
    assert len(s.review) == 4
    with pytest.raises(WorkbenchError, match="decision=.delete. is unknown"):
        s.flag([1], decision="delete")
    with pytest.raises(WorkbenchError, match="session.relabel"):
        s.flag([1], decision="relabel")
    path = s.review.export(tmp_path / "queue.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["decision"] for r in rows] == ["flag", "flag", "keep", "relabel"]
    assert rows[0]["note"] == "'=SUM(A1:A9)" and rows[3]["note"] == "'@looks like a one"
    assert rows[3]["new_label"] == "1" and rows[3]["status"] == "in effect since epoch 1"
    s.unflag([4, 7])
    assert 4 not in s.review.decisions and 7 in s.review.overrides  # a relabel stays until relabelled back
    with pytest.raises(WorkbenchError, match="Choose a path"):
        s.review.export(tmp_path / "missing" / "queue.csv")


@pytest.mark.slow  # a fresh interpreter replays the cell
def test_to_code_replays_a_relabel_bit_for_bit(small, tmp_path) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("to_code_tests", Path(__file__).with_name("test_to_code.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["to_code_tests"] = module
    spec.loader.exec_module(module)
    s = wb.Session(small, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), freeze="full",
                   batch_size=16, seed=3, optimizer="sgd", lr=0.05)
    s.fit(1)
    s.relabel({0: "4", 9: "2"})
    s.fit(1)
    assert "session.relabel({0: '4', 9: '2'})" in s.to_code()
    module.assert_replays(s, tmp_path)
