"""Property tests: a checkpoint resumes bit for bit, and find_lr() leaves no trace, for every optimizer x
schedule x freeze plan Hypothesis draws (head only + AdamW + cosine, the automatic LR and schedule,
warm-up, progressive unfreezing, an LR set mid-run).

Resume: a run saved after some epochs and loaded into a fresh session trains the next epochs to the same
weights, optimizer state, history and predictions as the run that went on. find_lr(): the weights,
BatchNorm statistics, optimizer state, schedule position and history after it are those before it, so
the next epoch is the one a twin without the LR test trains.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.train.optim import OPTIMIZERS

from helpers import assert_same_state

TIMING = ("epoch_time_s", "samples_per_s")
SCHEDULES = st.sampled_from(["auto", "constant", "cosine", "onecycle", "step", "exponential",
                             {"name": "cosine", "warmup_epochs": 0.5}, {"name": "onecycle", "pct_start": 0.5}])
FREEZE = st.sampled_from(["head", "full", "last2", "progressive"])
RUN = dict(optimizer=st.sampled_from(OPTIMIZERS), schedule=SCHEDULES, freeze=FREEZE,
           lr=st.sampled_from([None, 3e-3]), epochs=st.integers(1, 3), before=st.integers(1, 2),
           after=st.just(1), between=st.sampled_from([None, "lr", "freeze"]))
COMMON = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.slow  # ~2 x 40 s here: tiny epochs, a few per drawn run


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=2, valid=1, seed=0)  # 20 train samples: 3 steps of 8


def make(data, optimizer, schedule, freeze, lr, epochs) -> wb.Session:
    spec = {"last2": wb.last(2), "progressive": wb.progressive(every=1)}.get(freeze, freeze)
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    return wb.Session(data, model, freeze=spec, optimizer=optimizer, schedule=schedule, lr=lr, epochs=epochs,
                      batch_size=8, seed=2)


def train(s: wb.Session, epochs: int) -> None:
    """fit(epochs), or the stop it ended with when a drawn LR diverges (a recorded, consistent stop)."""
    try:
        s.fit(epochs)
    except wb.WorkbenchError:
        assert s.global_step == sum(r.batches for r in s.history)


def change(s: wb.Session, what: str | None) -> None:
    """A change between the epochs before and after (a new LR starts the schedule again)."""
    if what == "lr":
        s.configure(lr=1e-3)
    elif what == "freeze":
        s.freeze("full" if len(s.trainable) == 1 else "head")


def comparable(s: wb.Session) -> dict:
    sd = s.state_dict()
    sd.pop("name")  # a twin is another run in this kernel
    sd["history"] = [{k: v for k, v in r.items() if k not in TIMING} for r in sd["history"]]
    return sd


@COMMON
@given(**RUN)
def test_a_checkpoint_resumes_bit_for_bit(data, tmp_path_factory, optimizer, schedule, freeze, lr, epochs, before,
                                          after, between) -> None:
    torch.manual_seed(0)
    s = make(data, optimizer, schedule, freeze, lr, epochs)
    train(s, before)
    change(s, between)
    folder = tmp_path_factory.mktemp("run") / "run.wb"
    s.save(folder)
    again = wb.Session.load(folder, data=data)
    assert_same_state(comparable(s), comparable(again), "loaded state")
    train(s, after)
    train(again, after)
    assert_same_state(comparable(s), comparable(again), "state after resuming")


@COMMON
@given(**RUN)
def test_find_lr_leaves_no_trace_and_the_next_epoch_is_unchanged(data, optimizer, schedule, freeze, lr, epochs,
                                                                 before, after, between) -> None:
    torch.manual_seed(0)
    s, twin = make(data, optimizer, schedule, freeze, lr, epochs), make(data, optimizer, schedule, freeze, lr, epochs)
    for run in (s, twin):
        train(run, before)
        change(run, between)
    state = comparable(s)
    s.find_lr(steps=8)
    after_test = comparable(s)
    assert after_test["recording"][-1]["op"] == "find_lr"  # recorded, so to_code() replays it
    after_test["recording"].pop()
    assert_same_state(state, after_test, "state after find_lr")
    train(s, after)
    train(twin, after)
    mine, theirs = comparable(s), comparable(twin)
    ops = [e["op"] for e in mine.pop("recording")]  # find_lr splits fit(1) + fit(1) into two entries
    assert ops.count("find_lr") == 1 and theirs.pop("recording")[0] == s.recording[0]
    assert_same_state(theirs, mine, "the epochs after find_lr")
