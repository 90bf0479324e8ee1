"""Property tests: any settings a person can type either work or leave the session untouched.

Hypothesis draws settings for Session(...), configure(...) and freeze(...): valid values, and
wrong types, NaN/inf, unknown keys, misspelt dict keys and odd containers. Each draw is either
accepted, and then an epoch trains (or stops on a WorkbenchError with a consistent history), or
refused with a WorkbenchError and `state_dict()` bit-identical to before.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.train.losses import LOSSES
from workbench.train.optim import OPTIMIZERS, SCHEDULES

from helpers import assert_same_state

# (the suite flushes denormal floats to zero, as workbench does: Hypothesis must not draw them)
JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6), st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.lists(st.integers(-1, 2), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(0, 2), max_size=2),
)
SCHEDULE = st.one_of(
    st.sampled_from(SCHEDULES),
    st.fixed_dictionaries({"name": st.sampled_from(SCHEDULES)}, optional={
        "gamma": st.floats(0.05, 1, allow_subnormal=False), "step_epochs": st.integers(1, 3), "warmup_epochs": st.floats(0, 1, allow_subnormal=False),
        "div_factor": st.floats(1, 30, allow_subnormal=False), "pct_start": st.floats(0.1, 0.9, allow_subnormal=False), "nme": st.just("typo")}),
)
VALID = {
    "lr": st.floats(1e-5, 3e-2, allow_subnormal=False), "optimizer": st.sampled_from(OPTIMIZERS), "batch_size": st.integers(2, 64),
    "epochs": st.integers(1, 6), "weight_decay": st.floats(0, 0.1, allow_subnormal=False), "l1": st.floats(0, 1e-4, allow_subnormal=False),
    "momentum": st.floats(0, 0.95, allow_subnormal=False), "loss": st.sampled_from(LOSSES), "label_smoothing": st.floats(0, 0.3, allow_subnormal=False),
    "focal_gamma": st.floats(0, 4, allow_subnormal=False), "sampler": st.sampled_from(["random", "balanced"]),
    "class_weights": st.one_of(st.none(), st.just("balanced"), st.lists(st.floats(0.1, 3, allow_subnormal=False), min_size=10, max_size=10)),
    "early_stopping": st.one_of(st.none(), st.integers(1, 3)), "lr_decay": st.floats(0.1, 1, allow_subnormal=False),
    "bn_policy": st.sampled_from(["frozen", "train"]), "head_dropout": st.one_of(st.none(), st.floats(0, 0.8, allow_subnormal=False)),
    "seed": st.integers(0, 99), "channels_last": st.booleans(), "fast_path": st.booleans(),
    "schedule": SCHEDULE, "eval_batch_size": st.one_of(st.none(), st.integers(1, 128)),
    "augment": st.fixed_dictionaries({}, optional={"flip": st.booleans(), "rotation": st.floats(0, 20, allow_subnormal=False),
                                                   "crop": st.booleans(), "flp": st.booleans()}),
}
UNKNOWN = ["learning_rate", "bogus", "Lr"]


@st.composite
def setting_dicts(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(sorted(VALID) + UNKNOWN), max_size=4, unique=True))
    return {k: draw(st.one_of(VALID[k], JUNK) if k in VALID else JUNK) for k in keys}


FREEZE = st.one_of(
    st.sampled_from(["head", "full", "heads", "", "layer2"]),
    st.tuples(st.just("last"), st.one_of(st.integers(-1, 6), JUNK)),
    st.tuples(st.just("progressive"), st.one_of(st.integers(0, 3), JUNK)),
    st.lists(st.sampled_from(["stem", "layer1", "layer2", "layer3", "layer4", "head", "nope"]), max_size=4),
    JUNK,
)


def build_spec(drawn):
    """wb.last / wb.progressive are built here: their own argument checks are part of the test."""
    if isinstance(drawn, tuple) and drawn and drawn[0] == "last":
        return wb.last(drawn[1])
    if isinstance(drawn, tuple) and drawn and drawn[0] == "progressive":
        return wb.progressive(every=drawn[1])
    return drawn


def model() -> wb.Model:
    return wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=12, valid=4, seed=0)


def trains_or_fails_cleanly(s: wb.Session) -> None:
    try:
        r = s.step()
    except WorkbenchError:  # e.g. a drawn LR that diverges: a consistent, recorded stop
        assert s.global_step == sum(r.batches for r in s.history)
        return
    assert r is not None and r.batches == r.num_batches and math.isfinite(r.train_loss)


COMMON = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.slow  # ~90 s: CI runs them; `-m "not slow"` skips them


@COMMON
@given(drawn=setting_dicts(), freeze=FREEZE)
def test_session_settings_build_a_working_session_or_nothing(data, drawn, freeze) -> None:
    m = model()
    before = {k: v.clone() for k, v in m.module.state_dict().items()}
    flags = [p.requires_grad for p in m.module.parameters()]
    try:
        s = wb.Session(data, m, freeze=build_spec(freeze), **drawn)
    except WorkbenchError:
        assert_same_state(before, m.module.state_dict())
        assert flags == [p.requires_grad for p in m.module.parameters()]
        return
    trains_or_fails_cleanly(s)


@COMMON
@given(drawn=setting_dicts(), freeze=FREEZE)
def test_configure_and_freeze_change_everything_or_nothing(data, drawn, freeze) -> None:
    s = wb.Session(data, model(), optimizer="adam", batch_size=16, freeze=wb.last(1))
    s.step()
    before = s.state_dict()
    try:
        s.configure(**drawn)
    except WorkbenchError:
        assert_same_state(before, s.state_dict())
    before = s.state_dict()
    try:
        spec = build_spec(freeze)
        s.freeze(spec)
    except WorkbenchError:
        assert_same_state(before, s.state_dict())
    assert {id(p) for g in s.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in s.model.module.parameters() if p.requires_grad}
    trains_or_fails_cleanly(s)
    assert all(torch.isfinite(v.float()).all() for v in s.model.module.state_dict().values())
