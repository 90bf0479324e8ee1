"""Two threads on one session (a widget's training thread and a code cell), as docs/ARCHITECTURE.md,
"Threading", says: a second fit() and fit() during find_lr() are refused with a message naming what
runs and where; configure() and freeze() during a run are checked at once (a bad one is refused and
changes nothing) and a good one waits for the next epoch's start; reads that would see or disturb a
half-trained model (state_dict, features, predict) are refused from another thread."""

from __future__ import annotations

import threading

import pytest
import torch

import workbench as wb
from workbench.errors import ConfigError, WorkbenchError

from helpers import assert_same_state


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=3, valid=2, seed=0)


def make(data, **settings) -> wb.Session:
    torch.manual_seed(0)
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    return wb.Session(data, model, batch_size=8, seed=0,
                      **{"optimizer": "sgd", "lr": 0.05, "schedule": "constant", **settings})


class Held:
    """Run `job` in a thread and hold it at its first `event` until release()."""

    def __init__(self, session: wb.Session, event: str, job) -> None:
        self.inside, self.go, self.result, self.error = threading.Event(), threading.Event(), None, None
        session.events.batch_interval_s = 0.0

        def hold(_e) -> None:
            if not self.inside.is_set():
                self.inside.set()
                assert self.go.wait(120)

        session.on(event, hold)

        def run() -> None:
            try:
                self.result = job()
            except BaseException as exc:  # noqa: BLE001 - the test reads it
                self.error = exc

        self.thread = threading.Thread(target=run, name="workbench-train")
        self.thread.start()
        assert self.inside.wait(120), "the job never reached its first event"

    def release(self):
        self.go.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def test_a_second_fit_and_everything_that_needs_the_model_are_refused_by_name(data, tmp_path) -> None:
    s = make(data)
    state = s.state_dict()
    held = Held(s, "batch_end", lambda: s.fit(2))
    assert s.running
    for call, attempt in [(lambda: s.fit(1), "start training (fit(1))"), (s.step, "start training (fit(1))"),
                          (lambda: s.find_lr(steps=5), "start finding the learning rate"),
                          (s.fit_head, "start fitting the head"), (s.state_dict, "take a state_dict()"),
                          (lambda: s.features("valid"), "read the valid features"),
                          (lambda: s.predict([data.item(0)]), "predict")]:
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"Cannot {attempt}") and "busy training (fit(2)) in thread 'workbench-train'" in message
        assert "session.stop()" in message
    with pytest.raises(WorkbenchError, match="training \\(fit\\(2\\)\\)"):
        s.save(tmp_path / "run.wb")
    with pytest.raises(WorkbenchError, match=r"Cannot start loading a state: this session is busy training"):
        s.load_state_dict(state)
    results = held.release()
    assert len(results) == 2 and not s.running and s.fit(1)[0].epoch == 3  # free again


def test_changes_during_a_fit_are_checked_now_and_applied_at_the_next_epoch(data) -> None:
    s = make(data, epochs=3)
    held = Held(s, "batch_end", lambda: s.fit(2))
    config, spec = s.config, s.freeze_spec
    for bad in ({"lr": -1.0}, {"optimizer": "adamm"}, {"lr": "fast"}, {"bogus": 1}):
        with pytest.raises(ConfigError):
            s.configure(**bad)
    with pytest.raises(WorkbenchError):
        s.freeze("layer9")
    assert s.config is config and s.freeze_spec == spec and not s.has_pending_changes  # nothing queued
    assert s.configure(lr=0.01).lr == 0.01 and s.config.lr == 0.05  # queued, not applied mid-epoch
    s.configure(weight_decay=0.001)  # merged with the queued LR
    s.freeze("full")
    assert s.has_pending_changes and s.freeze_spec == "full" and s.trainable == [s.model.block_names[-1]]
    held.release()
    first, second = s.history
    assert first.lrs == {s.model.block_names[-1]: 0.05} and len(first.trainable) == 1
    assert second.batch_lrs[0] == pytest.approx(0.01) and len(second.trainable) == len(s.model.blocks)
    assert s.config.weight_decay == 0.001 and not s.has_pending_changes
    code = s.to_code()
    assert code.index("session.fit(1)") < code.index("session.configure(lr=0.01, weight_decay=0.001)") < \
        code.index("session.freeze('full')")


def test_a_fit_during_find_lr_is_refused_and_find_lr_restores_everything(data) -> None:
    s = make(data, optimizer="adamw", lr=1e-3, schedule="cosine")
    s.fit(1)
    before = s.state_dict()
    held = Held(s, "progress", lambda: s.find_lr(steps=6, progress=False))
    with pytest.raises(ConfigError, match=r"Cannot start training \(fit\(1\)\): this session is busy finding the "
                                          r"learning rate \(find_lr\) in thread 'workbench-train'"):
        s.fit(1)
    s.configure(label_smoothing=0.1)  # queued until the next epoch
    result = held.release()
    assert len(result.lrs) >= 3 and s.has_pending_changes and s.config.label_smoothing == 0.0
    after = s.state_dict()
    after["recording"] = after["recording"][:-1]  # find_lr is recorded (to_code replays it)
    after["pending"], before["pending"] = {}, {}
    assert_same_state(before, after)


def test_a_change_queued_after_a_run_is_overridden_by_a_later_one_not_the_reverse(data) -> None:
    """A setting queued during a run and then set again after it: the later value is the one that runs."""
    s = make(data)
    held = Held(s, "batch_end", lambda: s.fit(1))
    s.configure(lr=0.01)
    held.release()
    assert s.has_pending_changes
    s.configure(lr=0.02)  # idle now: applied at once, the queued 0.01 with it and under it
    assert not s.has_pending_changes and s.config.lr == 0.02
    assert s.step().batch_lrs[0] == pytest.approx(0.02)
