"""Indices, ids, counts and classes are never coerced: 2.7, 1.0, True, "1", -1 and out-of-range values are
refused with a WorkbenchError that names the argument, and nothing the analysis holds changes.

Every public function that takes a position, a sample id, a count or a class is listed in CALLS (the
analysis objects, the data, and the widgets' public twins are in tests/widgets/test_explorer.py).
Hypothesis draws the bad values; good ones (ints, numpy ints) keep working.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench import plots
from workbench.analysis import ErrorAnalysis
from workbench.analysis.attribution import Attribution
from workbench.analysis.compare import Comparison, Run
from workbench.errors import WorkbenchError
from workbench.train.records import Predictions

K, N, TRAIN = 4, 30, 50


def analysis() -> ErrorAnalysis:
    rng = np.random.default_rng(0)
    errors = ErrorAnalysis.from_predictions(rng.integers(0, K, N), rng.normal(size=(N, K)), [f"c{i}" for i in range(K)])
    errors.attach_features(torch.tensor(rng.normal(size=(N, 8))), torch.tensor(rng.normal(size=(TRAIN, 8))),
                           rng.integers(0, K, TRAIN))
    return errors


def comparison() -> Comparison:
    rng = np.random.default_rng(1)
    runs, labels = [], rng.integers(0, K, N)
    for name in ("a", "b"):
        p = Predictions(rng.normal(size=(N, K)).astype(np.float32), labels, np.ones(N, np.float32),
                        np.arange(N), 1)
        runs.append(Run(name=name, config={"lr": 0.1 if name == "a" else 0.2}, history=[], predictions=p,
                        classes=[f"c{i}" for i in range(K)], backbone="x", data_name="d", freeze="head"))
    return Comparison(runs)


def tokens() -> Attribution:
    return Attribution(index=0, kind="text", target=0, classes=("a", "b"), tokens=("x", "y", "z"),
                       scores=np.array([0.1, 0.5, -0.2], np.float32), special=np.zeros(3, bool))


DATA = wb.Data.from_texts([f"text {i}" for i in range(12)], [i % 2 for i in range(12)], valid_fraction=0.5)


def on_data() -> ErrorAnalysis:
    """An analysis of DATA's valid split (for the figures that show its samples)."""
    y = DATA.valid.labels
    return ErrorAnalysis.from_predictions(y, np.random.default_rng(2).normal(size=(len(y), 2)), DATA.classes)


# what each argument is: a position/id (0..N-1), a class (0..K-1 or a name), a count (>= 1) or a seed (>= 0)
CALLS = {
    "indices(true=)": ("class", lambda e, v: e.indices(v, 0)),
    "indices(pred=)": ("class", lambda e, v: e.indices(0, v)),
    "top_losses(k=)": ("count", lambda e, v: e.top_losses(k=v)),
    "top_losses(errors_only=)": ("flag", lambda e, v: e.top_losses(3, errors_only=v)),
    "most_confused(min_count=)": ("seed", lambda e, v: e.most_confused(min_count=v)),
    "neighbours(index)": ("id", lambda e, v: e.neighbours(v)),
    "neighbours(k=)": ("count", lambda e, v: e.neighbours(0, k=v)),
    "flag(id)": ("id", lambda e, v: e.flag(v)),
    "table([id])": ("id", lambda e, v: e.table([v])),
    "flag_label_issues(n=)": ("count or None", lambda e, v: e.flag_label_issues(n=v)),
    "embedding(seed=)": ("seed", lambda e, v: e.embedding(seed=v)),
    "embedding().cell(true)": ("class", lambda e, v: e.embedding().cell(v, 0)),
    "embedding().nearest(x)": ("coordinate", lambda e, v: e.embedding().nearest(v, 0.0)),
    "compare.diff(a)": ("run", lambda e, v: comparison().diff(v, 1)),
    "compare.analysis(run)": ("run", lambda e, v: comparison().analysis(v)),
    "compare.right_wrong(b)": ("run", lambda e, v: comparison().right_wrong(0, v)),
    "data.item(i)": ("item", lambda e, v: DATA.item(v)),
    "data.sample_id(i)": ("item", lambda e, v: DATA.sample_id(v, "train")),
    "attribution.top_tokens(k)": ("count", lambda e, v: tokens().top_tokens(v)),
    "plots.top_losses_figure(columns=)": ("count", lambda e, v: plots.top_losses_figure(on_data(), DATA, k=2, columns=v)),
    "plots.confusion_figure(max_classes=)": ("count", lambda e, v: plots.confusion_figure(e, max_classes=v)),
    "plots.compare_samples_figure(k=)": ("count", lambda e, v: plots.compare_samples_figure(comparison(), k=v)),
    "plots.compare_curves_figure(smooth=)": ("count", lambda e, v: plots.compare_curves_figure(comparison(), smooth=v)),
}
SIZE = {"id": N, "class": K, "run": 2, "item": len(DATA.valid)}

NOT_INTEGERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).filter(lambda f: not float(f).is_integer()),
    st.integers(-3, 40).map(float),  # 2.0 is a float: never silently taken as 2
    st.integers(-3, 40).map(np.float64),
    st.booleans(), st.sampled_from([np.bool_(True), np.bool_(False)]),
    st.text(max_size=3).filter(lambda t: t not in [f"c{i}" for i in range(K)]),
    st.none(), st.lists(st.integers(0, 3), max_size=2),
)


def bad_values(kind: str) -> st.SearchStrategy:
    if kind == "flag":
        return st.one_of(st.integers(-2, 3), st.text(max_size=2), st.none())
    if kind == "coordinate":
        return st.one_of(st.text(max_size=2), st.none(), st.booleans(), st.sampled_from([float("nan"), float("inf")]))
    if kind == "count or None":  # None is a choice there (cleanlab's own cut)
        return st.one_of(NOT_INTEGERS.filter(lambda v: v is not None), st.integers(-10**6, 0))
    if kind in ("count", "seed"):
        low = 1 if kind == "count" else 0
        return st.one_of(NOT_INTEGERS, st.integers(-10**6, low - 1))
    return st.one_of(NOT_INTEGERS, st.integers(-10**6, -1), st.integers(SIZE[kind], SIZE[kind] + 10**6))


@pytest.mark.parametrize("call", sorted(CALLS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_bad_indices_counts_and_classes_are_refused_by_name(call, data) -> None:
    kind, fn = CALLS[call]
    errors = analysis()
    value = data.draw(bad_values(kind), label="value")
    flagged = list(errors.flagged)
    with pytest.raises(WorkbenchError) as info:
        fn(errors, value)
    message = str(info.value)
    assert any(word in message for word in ("whole number", "out of range", "must be", "No sample", "No validation",
                                            "Unknown class", "No run", "True or False", "finite number")), message
    assert errors.flagged == flagged  # nothing changed


@pytest.mark.parametrize("call", sorted(CALLS))
def test_good_values_still_work(call) -> None:
    kind, fn = CALLS[call]
    errors = analysis()
    good = {"flag": [True, np.bool_(False)], "coordinate": [0.5, np.float32(1)], "count": [1, np.int64(3)],
            "seed": [0, np.int32(2)], "count or None": [None, 2], "class": [0, np.int64(K - 1), "c2"], "run": [0, np.int64(1), "b"],
            "id": [0, np.int64(N - 1)], "item": [0, np.int64(SIZE["item"] - 1)]}[kind]
    for value in good:
        fn(errors, value)


def test_the_issue_examples() -> None:
    errors = analysis()
    with pytest.raises(WorkbenchError, match=r"index must be a whole number \(an int\), got 2\.7"):
        errors.neighbours(2.7)
    with pytest.raises(WorkbenchError, match=r"true must be a whole number \(an int\), got 1\.5"):
        errors.indices(1.5, 0)
    with pytest.raises(WorkbenchError, match=r"top_losses k must be >= 1, got -1"):
        errors.top_losses(k=-1)
    with pytest.raises(WorkbenchError, match=r"flag id must be a whole number \(an int\), got True"):
        errors.flag(True)
