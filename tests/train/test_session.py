"""Session: events, history, freezing during training, fast path, stop/pause, early stopping."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import ConfigError
from workbench.train import loop
from workbench.train import epoch as epoch_module

from helpers import assert_same_state, tiny_cnn, weights


def test_two_epoch_fit_emits_events_in_order(session) -> None:
    seen: list[str] = []
    for name in ("fit_start", "epoch_start", "batch_end", "eval_end", "epoch_end", "fit_end"):
        session.on(name, lambda payload, name=name: seen.append(name))
    session.fit(2)
    compact = [n for i, n in enumerate(seen) if i == 0 or n != seen[i - 1]]  # collapse batch_end runs
    assert compact == ["fit_start"] + ["epoch_start", "batch_end", "eval_end", "epoch_end"] * 2 + ["fit_end"]


def test_history_records_what_a_person_compares(session) -> None:
    session.freeze(wb.last(1))
    r = session.step()
    assert r.epoch == 1 and r.completed and r.batches == r.num_batches == len(r.batch_losses)
    assert np.isfinite([r.train_loss, r.valid_loss]).all()
    assert 0 <= r.valid_accuracy <= 1 and 0 <= r.valid_macro_f1 <= 1 and 0 <= r.train_accuracy <= 1
    head, below = session.model.blocks[-1].name, session.model.blocks[-2].name
    assert set(r.lrs) == {head, below} and r.trainable == (below, head)
    assert r.fast_path is False and "below the head" in r.path_reason
    assert r.epoch_time_s > 0 and r.samples_per_s > 0
    frame = session.history_frame()
    assert list(frame.index) == [1] and frame.loc[1, "valid_accuracy"] == r.valid_accuracy
    p = session.predictions
    assert p.logits.shape == (len(session.data.valid), 10) and p.epoch == 1
    assert np.array_equal(p.labels, session.data.valid.labels)
    assert p.losses.mean() == pytest.approx(r.valid_loss, rel=1e-5)


@pytest.mark.parametrize("stop_after", [None, 40])
def test_train_accuracy_counts_each_batch_at_its_own_step(digits, monkeypatch, stop_after) -> None:
    """Predictions are taken in chunks of batches (loop.ARGMAX_CHUNK); the accuracy must still be
    that of each batch's logits when it trained, over the completed batches only."""
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.5, batch_size=4, seed=0)
    plans, predicted = [], []
    real_train_epoch = epoch_module.train_epoch
    monkeypatch.setattr(epoch_module, "train_epoch", lambda plan, *a: plans.append(plan) or real_train_epoch(plan, *a))

    def record(module, inputs, output) -> None:
        if not module.training:  # the feature cache and the valid pass run the head too
            return
        predicted.append(output.detach().argmax(1))
        if len(predicted) == stop_after:
            s.stop()  # after this batch's step

    s.model.head.register_forward_hook(record)
    r = s.step() if stop_after is None else s.fit(1)[0]
    done = r.batches
    assert done == (stop_after or r.num_batches) and r.num_batches > 2 * loop.ARGMAX_CHUNK
    seen = torch.cat(plans[0].batches[:done])
    expected = (torch.cat(predicted[:done]) == plans[0].labels[seen]).double().mean().item()
    assert r.train_accuracy == pytest.approx(expected, abs=1e-12) and 0 < expected < 1


def test_head_only_leaves_every_frozen_weight_and_bn_buffer_bit_identical(session) -> None:
    session.freeze("head")
    session.configure(fast_path=False)  # the slow path runs the frozen backbone forward each batch
    before = weights(session.model.module)
    session.step()
    head = set(session.model.blocks[-1].parameter_names)
    after = session.model.module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= head, f"frozen tensors changed: {sorted(changed - head)[:5]}"


def test_fast_path_gives_the_same_head_update_as_the_slow_path(digits) -> None:
    results = {}
    for fast in (True, False):
        torch.manual_seed(0)
        s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=32, seed=0, fast_path=fast,
                       schedule="constant")  # "auto" would anneal the cached path only
        s.fit(2)
        results[fast] = (s.history[-1], weights(s.model.head))
    (fast_r, fast_w), (slow_r, slow_w) = results[True], results[False]
    assert fast_r.fast_path and not slow_r.fast_path
    for k in fast_w:
        torch.testing.assert_close(fast_w[k], slow_w[k], rtol=1e-4, atol=1e-5)
    assert fast_r.valid_loss == pytest.approx(slow_r.valid_loss, rel=1e-4)


def test_feature_cache_is_built_once_and_invalidated_when_the_body_changes(session) -> None:
    session.fit(2)
    assert session.cache.builds == 2  # train + valid features, once
    session.freeze(wb.last(1))
    session.step()  # slow path trains the last stage: the body's weights change
    session.freeze("head")
    session.step()
    assert session.cache.builds == 4 and session.history[-1].fast_path


def test_progressive_unfreezing_adds_groups_and_keeps_existing_state(digits) -> None:
    torch.manual_seed(0)
    s = wb.Session(digits, tiny_cnn(), optimizer="adam", lr=1e-3, batch_size=32, lr_decay=0.5,
                   freeze=wb.progressive(every=1))
    s.step()
    head = s.model.blocks[-1].name
    head_params = s.model.parameters_of(head)
    state_before = {k: v.clone() for k, v in s.optimizer.state[head_params[0]].items()}
    s.step()  # epoch 2: one more block joins as a new param group at half the LR
    names = [g["name"] for g in s.optimizer.param_groups]
    assert names[0] == head and len(names) == 2
    assert s.optimizer.param_groups[1]["base_lr"] == pytest.approx(0.5e-3)
    assert s.history[0].trainable == (head,) and len(s.history[1].trainable) == 2
    assert int(s.optimizer.state[head_params[0]]["step"]) > int(state_before["step"])  # kept and continued


def test_stop_from_another_thread_halts_within_a_batch(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=4, seed=0, fast_path=False,
                   freeze="full")
    noticed = []
    s.on("batch_end", lambda b: noticed.append(b.batch))
    s.events.batch_interval_s = 0.0
    timer = threading.Timer(0.3, s.stop)
    timer.start()
    results = s.fit(5)
    timer.join()
    assert len(results) == 1 and results[0].stopped.startswith("stopped by user")
    assert results[0].batches < results[0].num_batches and results[0].valid_loss is None
    assert not s.running


def test_pause_holds_training_until_resume(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=8, fast_path=False, freeze="full")
    s.events.batch_interval_s = 0.0
    batches: list[float] = []
    first = threading.Event()
    s.on("batch_end", lambda b: (batches.append(time.perf_counter()), s.pause() if b.batch == 1 else None, first.set()))
    worker = threading.Thread(target=s.step)
    worker.start()
    assert first.wait(60)
    time.sleep(0.4)
    assert len(batches) == 1 and s.running and s.paused
    s.resume()
    worker.join(timeout=60)
    assert len(batches) == s.history[0].num_batches and not s.paused


def test_a_pause_is_not_training_time(digits) -> None:
    """A 1.5 s pause inside an epoch leaves the epoch's time, its speed and the batch ETA as they would be
    without it (a 30 s pause made a 24 s epoch read 54 s, in the history and in Compare)."""
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=8, freeze="head")
    s.events.batch_interval_s = 0.0
    rates = []

    def pause_once(b) -> None:
        rates.append(b.samples_per_s)
        if b.batch == 1:
            s.pause()
            threading.Timer(1.5, s.resume).start()

    s.on("batch_end", pause_once)
    started = time.perf_counter()
    r = s.step()
    wall = time.perf_counter() - started
    assert wall >= 1.5 and r.epoch_time_s <= wall - 1.4, (wall, r.epoch_time_s)
    trained_for = r.batches * 8 / r.samples_per_s  # the speed's own clock: training time only
    assert trained_for <= r.epoch_time_s and min(rates[1:]) >= 8 / (r.epoch_time_s + 0.1)


def test_pause_with_nothing_running_does_not_hold_the_next_fit(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=32, freeze="full")
    s.pause()
    assert not s.paused
    done = []
    worker = threading.Thread(target=lambda: done.append(s.step()))
    worker.start()
    worker.join(timeout=60)
    assert done and done[0].completed


def test_early_stopping_restores_the_best_weights(digits) -> None:
    torch.manual_seed(0)
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=32, freeze="full", early_stopping=2)
    scripted = iter([1.0, 0.5, 0.7, 0.6, 0.9, 0.1])  # best at epoch 2; patience 2 runs out after epoch 4
    real = s._evaluate
    s._evaluate = lambda *a: (next(scripted),) + real(*a)[1:]
    at_epoch_end: dict[int, dict[str, torch.Tensor]] = {}
    s.on("epoch_end", lambda r: at_epoch_end.__setitem__(r.epoch, weights(s.model.module)))
    results = s.fit(6)
    assert [r.epoch for r in results] == [1, 2, 3, 4]
    now = s.model.module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in at_epoch_end[2].items())
    assert not all(torch.equal(now[k], v) for k, v in at_epoch_end[4].items())
    assert s.predictions.epoch == 2


def test_a_step_that_makes_the_weights_non_finite_keeps_the_steps_before_it(digits) -> None:
    """Step 3 of each epoch leaves inf in a weight while its loss was finite: the epoch stops there, the
    model keeps the weights and optimizer state of step 2 (as a run stopped after batch 2 has them), the
    history records those two steps, and the message says so."""
    def make():
        torch.manual_seed(0)
        return wb.Session(digits, tiny_cnn(), optimizer="adamw", lr=1e-3, batch_size=8, freeze=wb.last(1),
                          fast_path=False)

    s = make()
    original, calls = s.optimizer.step, []

    def poison(*a, **k):
        out = original(*a, **k)
        calls.append(1)
        if len(calls) % 3 == 0:  # the third step of a run of the epoch (the first, and the re-run)
            with torch.no_grad():
                s.model.head[-1].weight[0, 0] = float("inf")
        return out

    s.optimizer.step = poison
    errors = []
    s.on("error", errors.append)
    with pytest.raises(wb.TrainingError, match=r"weights became non-finite at batch 3/\d+ of epoch 1.*last good step"):
        s.fit(2)
    r = s.history[-1]
    assert len(s.history) == 1 and r.batches == 2 and r.stopped.startswith("weights became non-finite at batch 3")
    assert errors and "last good step" in errors[0].message
    reference = make()
    reference.fit(1, stop_after=2)
    assert_same_state(reference.model.module.state_dict(), s.model.module.state_dict(), "weights")
    assert_same_state(reference.optimizer.state_dict()["state"], s.optimizer.state_dict()["state"], "optimizer")
    s.optimizer.step = original
    assert s.step().completed  # training goes on from there


@pytest.mark.parametrize("fast", [True, False])
def test_a_huge_lr_that_overflows_the_first_step_changes_nothing(digits, fast) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=1e300, batch_size=16, freeze="head" if fast else wb.last(1),
                   fast_path=fast)
    before, state = s.state_dict(), weights(s.model.module)
    with pytest.raises(wb.TrainingError, match=r"weights became non-finite at batch 1/\d+ of epoch 1.*Lower the learning"):
        s.fit(1)
    assert s.history == [] and s.optimizer.state_dict()["state"] == before["optimizer"]["state"]
    assert_same_state(state, weights(s.model.module))


def remember_steps(s) -> list[dict[str, torch.Tensor]]:
    """Record the weights after every optimizer step of session `s`."""
    snapshots: list[dict[str, torch.Tensor]] = []
    original = s.optimizer.step

    def step_and_remember(*a, **k):
        out = original(*a, **k)
        snapshots.append(weights(s.model.module))
        return out

    s.optimizer.step = step_and_remember
    return snapshots


def test_injected_nan_stops_the_epoch_at_that_batch_and_keeps_the_last_good_step(digits) -> None:
    # eager reads (the CPU's mode): the bad batch is refused before its step (CUDA: tests/cuda)
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=16, freeze="full", fast_path=False,
                   device="cpu")
    snapshots = remember_steps(s)
    forward, calls = s.model.logits, []

    def nan_at_batch_3(x):
        calls.append(1)
        out = forward(x)  # the forward runs (BN statistics update), then its loss is NaN
        return out * float("nan") if len(calls) == 3 else out

    s.model.logits = nan_at_batch_3
    errors = []
    s.on("error", errors.append)
    with pytest.raises(wb.TrainingError, match=r"non-finite loss at batch 3/\d+ of epoch 1.*lr=0.005"):
        s.fit(3)
    r = s.history[-1]
    assert r.stopped.startswith("non-finite loss at batch 3") and r.batches == 2 == len(snapshots)
    now = s.model.module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in snapshots[-1].items())  # BN statistics included
    assert errors and "non-finite" in errors[0].message and len(s.history) == 1


def test_a_huge_learning_rate_stops_with_finite_weights_from_a_good_step(digits) -> None:
    def make():
        torch.manual_seed(0)
        return wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=1e6, batch_size=16, freeze="full", fast_path=False)

    s = make()
    start = weights(s.model.module)
    with pytest.raises(wb.TrainingError, match="non-finite.*Lower the learning rate"):
        s.fit(3)
    now = s.model.module.state_dict()
    assert all(torch.isfinite(v.float()).all() for v in now.values())
    # the loss went non-finite first, or a step's update or BatchNorm statistics overflowed: either way
    # the model keeps the last good step, recorded as a stopped epoch (nothing when the first step broke)
    assert s.global_step == sum(r.batches for r in s.history)
    if s.history:
        reference = make()
        reference.fit(1, stop_after=s.history[-1].batches)
        assert_same_state(reference.model.module.state_dict(), now, "weights")
    else:
        assert_same_state(start, weights(s.model.module))


def test_simulated_out_of_memory_keeps_weights_and_suggests_a_batch_size(session) -> None:
    session.freeze("full")
    session.step()
    before, history = weights(session.model.module), list(session.history)
    forward = session.model.logits

    def boom(x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    session.model.logits = boom
    try:
        with pytest.raises(wb.TrainingError, match=r"out of memory.*batch_size=16"):
            session.step()
    finally:
        session.model.logits = forward
    now = session.model.module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in before.items())
    assert session.history == history  # it failed at its first batch: no step, nothing recorded
    session.step()  # and training goes on afterwards
    assert session.history[-1].completed


def test_a_failing_sample_is_named(session) -> None:
    session.freeze("full")
    batcher = session.pipeline.batcher("train")
    batcher.pixels = None  # force per-item loading, then break one item
    split = session.data.train
    original = split.item

    def broken(i):
        if i == 3:
            raise OSError("truncated file")
        return original(i)

    split.item = broken
    try:
        with pytest.raises(wb.DataError, match="sample 3"):
            session.step()
    finally:
        split.item = original


def test_subscriber_errors_do_not_stop_training(session) -> None:
    errors = []
    session.on("batch_end", lambda b: 1 / 0)
    session.on("error", errors.append)
    session.step()
    assert session.history[-1].completed and errors and "ZeroDivisionError" in errors[0].message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"optimizer": "adamm"}, r"Unknown optimizer 'adamm'.*'adam'"),
        ({"schedule": "cosin"}, r"Unknown schedule 'cosin'.*'cosine'"),
        ({"loss": "focall"}, r"Unknown loss 'focall'.*'focal'"),
        ({"lr": 0}, r"lr must be > 0"),
        ({"lr": -1e-3}, r"lr must be > 0"),
        ({"batch_size": 0}, r"batch_size must be >= 2"),
        ({"batch_size": 1}, r"batch_size must be >= 2.*cannot train BatchNorm"),
        ({"epochs": 0}, r"epochs must be >= 1"),
        ({"focal_gamma": -1, "loss": "focal"}, r"focal_gamma must be >= 0"),
        ({"sampler": "even"}, r"Unknown sampler 'even'"),
        ({"learning_rate": 1e-3}, r"Unknown setting 'learning_rate'"),
        ({"bn_policy": "freeze"}, r"Unknown bn_policy 'freeze'.*'frozen'"),
    ],
)
def test_bad_config_is_rejected_before_anything_is_built(digits, settings, message) -> None:
    model = tiny_cnn()
    before = weights(model.module)
    with pytest.raises(ConfigError, match=message):
        wb.Session(digits, model, **settings)
    assert all(torch.equal(v, model.module.state_dict()[k]) for k, v in before.items())


def test_bad_changes_leave_a_running_session_untouched(session) -> None:
    session.step()
    config, history = session.config, list(session.history)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        session.configure(lr=0)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        session.fit(0)
    assert session.config is config and session.history == history


def test_data_and_model_must_agree(digits) -> None:
    with pytest.raises(ConfigError, match=r"10 classes but the model's head has 3 outputs"):
        wb.Session(digits, tiny_cnn(num_classes=3))
    text = wb.load_data("sms-spam").subset(train=20, valid=5)
    with pytest.raises(ConfigError, match=r"holds texts but 'resnet18' is an image backbone"):
        wb.Session(text, tiny_cnn(num_classes=2))


def test_macro_f1_equals_sklearn() -> None:
    from sklearn.metrics import f1_score

    from workbench.train.records import macro_f1

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 6, 300), rng.integers(0, 5, 300)  # class 5 is never predicted
    expected = f1_score(y, p, labels=list(range(7)), average="macro", zero_division=0)  # class 6 absent
    assert macro_f1(y, p, 7) == pytest.approx(expected)
