"""The LR that runs is the LR the session says will run (train/lr_plan.py).

Setting the LR, the schedule or the optimizer starts the schedule again, fit(n) past the plan extends
it, and the "next epoch" line of summary() (the Train tab and the dashboard show the same words) gives
the head's LR at the first and last step of the epoch that then runs: checked against the optimizer's
own LR, batch by batch, over schedules x optimizers x head only / full / progressive.
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.train.optim import OPTIMIZERS

from helpers import assert_same_state

NUMBER = r"([-+]?\d\.\d+e[-+]\d+)"
SCHEDULES = ["auto", "constant", "cosine", "onecycle", "step", "exponential",
             {"name": "cosine", "warmup_epochs": 1.0}, {"name": "step", "step_epochs": 1, "gamma": 0.5}]


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=3, valid=2, seed=0)  # 30 train samples: 4 steps of 8


def make(data, freeze="head", **settings) -> wb.Session:
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    return wb.Session(data, model, freeze=freeze, batch_size=8, seed=0, **settings)


def shown(session: wb.Session) -> tuple[float, float]:
    """The head's first and last LR of the next epoch, as summary()'s "next epoch" line says them."""
    line = next(x for x in session.summary().splitlines() if x.startswith("next epoch:"))
    match = re.search(rf"LR {NUMBER}(?: → {NUMBER})?", line)
    assert match, line
    return float(match[1]), float(match[2] or match[1])


class Watch:
    """Per epoch: what summary() said at its start, and the head's LR at each of its steps."""

    def __init__(self, session: wb.Session) -> None:
        self.session, self.said, self.ran = session, {}, {}
        session.events.batch_interval_s = 0.0  # every batch_end
        session.on("epoch_start", lambda e: self.said.__setitem__(e.epoch, shown(session)))
        session.on("batch_end", self._batch)

    def _batch(self, b) -> None:
        names = [g["name"] for g in self.session.optimizer.param_groups]
        self.ran.setdefault(b.epoch, []).append(dict(zip(names, b.lrs))[self.session.model.block_names[-1]])

    def check(self, before: tuple[float, float] | None = None) -> None:
        """Every epoch ran at the LR it was announced with (and the first at `before`, said before the fit)."""
        for epoch, lrs in self.ran.items():
            said = self.said[epoch]
            assert (lrs[0], lrs[-1]) == pytest.approx(said, rel=6e-3, abs=1e-12), (epoch, said, lrs)
        if before is not None:
            first = self.ran[min(self.ran)]
            assert (first[0], first[-1]) == pytest.approx(before, rel=6e-3, abs=1e-12), (before, first)
        self.said, self.ran = {}, {}


def test_an_lr_set_after_the_plan_ran_is_the_lr_that_runs(data) -> None:
    """The issue: five epochs of a five-epoch plan, then LR 1e-2 + cosine: the sixth epoch ran at 0.0."""
    s = make(data, optimizer="adamw", epochs=5)
    s.fit(5)
    s.configure(lr=1e-2, schedule="cosine")
    assert shown(s)[0] == pytest.approx(1e-2) and "cosine, epoch 1 of 5" in s.summary()
    watch = Watch(s)
    r = s.step()
    assert r.batch_lrs[0] == pytest.approx(1e-2) and min(r.batch_lrs) > 5e-3
    watch.check()
    s.configure(lr=1e-2)  # the same value again: setting it starts the schedule again
    assert shown(s)[0] == pytest.approx(1e-2)


def test_fit_past_the_plan_extends_it_and_says_so(data) -> None:
    """notebooks/text.ipynb and course notebook 10 ran fit(6) on a 5-epoch plan: the sixth epoch at ~1e-8."""
    s = make(data, optimizer="adamw", epochs=5)
    watch = Watch(s)
    s.fit(6)
    watch.check()
    assert s.config.epochs == 6 and "session.configure(epochs=6)\nsession.fit(6)" in s.to_code()
    assert s.history[-1].batch_lrs[0] > 1e-4  # the last epoch of a 6-epoch one-cycle, not the floor
    assert "the 6-epoch plan is done: fit() extends it" in s.summary()
    before = shown(s)
    s.fit(1)
    watch.check(before)
    assert s.config.epochs == 7


def test_the_plan_survives_a_checkpoint_and_to_code_records_it(data, tmp_path) -> None:
    s = make(data, optimizer="sgd", lr=0.05, schedule="cosine", epochs=2)
    s.fit(2)
    s.configure(lr=0.02)
    s.fit(1)
    s.save(tmp_path / "run.wb")
    again = wb.Session.load(tmp_path / "run.wb", data=data)
    assert shown(again) == shown(s)
    a, b = s.fit(1)[0], again.fit(1)[0]
    assert a.batch_lrs == b.batch_lrs
    assert_same_state(s.model.module.state_dict(), again.model.module.state_dict())
    assert "session.configure(lr=0.02)\nsession.fit(2)" in s.to_code()  # fit(1) + fit(1) inside the plan: one fit(2)


def test_a_change_queued_during_a_fit_restarts_the_schedule_where_it_applies(data) -> None:
    s = make(data, optimizer="adam", lr=1e-2, schedule="cosine", epochs=3)
    watch = Watch(s)
    queued = []

    def change_once(b) -> None:
        if not queued:
            queued.append(s.configure(lr=5e-3))  # queued: applies at the next epoch's start

    s.on("batch_end", change_once)
    s.fit(3)
    watch.check()
    assert s.history[1].batch_lrs[0] == pytest.approx(5e-3)  # epoch 2 starts the schedule again
    assert s.config.epochs == 3 and "session.fit(1)\nsession.configure(lr=0.005)\nsession.fit(2)" in s.to_code()


ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("fit"), st.integers(1, 3)),
    st.tuples(st.just("lr"), st.sampled_from([None, 3e-3, 2e-2])),
    st.tuples(st.just("schedule"), st.sampled_from(SCHEDULES)),
    st.tuples(st.just("epochs"), st.integers(1, 4)),
    st.tuples(st.just("freeze"), st.sampled_from(["head", "full", "progressive"])),
), min_size=1, max_size=4)


@pytest.mark.slow  # ~60 s: every drawn run trains a few tiny epochs
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(optimizer=st.sampled_from(OPTIMIZERS), schedule=st.sampled_from(SCHEDULES), epochs=st.integers(1, 3),
       freeze=st.sampled_from(["head", "full", "progressive"]), lr=st.sampled_from([None, 1e-2]), actions=ACTIONS)
def test_every_epoch_runs_at_the_lr_it_was_announced_with(data, optimizer, schedule, epochs, freeze, lr, actions):
    torch.manual_seed(0)
    spec = wb.progressive(every=1) if freeze == "progressive" else freeze
    s = make(data, freeze=spec, optimizer=optimizer, schedule=schedule, epochs=epochs, lr=lr)
    watch = Watch(s)
    for kind, value in [("fit", 1), *actions]:
        if kind == "fit":
            before = shown(s) if value == 1 else None  # fit(1) is what the line describes
            s.fit(value)
            watch.check(before)
        elif kind == "freeze":
            s.freeze(wb.progressive(every=1) if value == "progressive" else value)
        else:
            s.configure(**{kind: value})
    assert s.global_step == sum(r.batches for r in s.history)
