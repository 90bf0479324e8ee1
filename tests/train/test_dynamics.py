"""Training dynamics: what the Session records per train sample and epoch, within its cap, in checkpoints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import CheckpointError
from workbench.train.dynamics import NOT_SEEN, TrainingDynamics

from helpers import assert_same_state, tiny_cnn


@pytest.fixture(scope="module")
def small():
    """80 train / 40 valid digits: full fine-tuning epochs of a few batches."""
    return wb.load_data("digits").subset(train=8, valid=4, seed=0)


def head_session(digits, **kw) -> wb.Session:
    torch.manual_seed(0)
    settings = dict(optimizer="sgd", lr=0.1, batch_size=32, seed=0)
    settings.update(kw)
    return wb.Session(digits, tiny_cnn(), **settings)


def test_head_only_records_the_forward_the_epoch_made(digits) -> None:
    """One batch per epoch: epoch 2's record is the head of epoch 1's end applied to the cached features."""
    s = head_session(digits, batch_size=512)
    s.fit(1)
    head = {k: v.clone() for k, v in s.model.head.state_dict().items()}
    s.fit(1)
    assert s.history[-1].fast_path and s.dynamics.epochs == [1, 2]
    x, y = s.features("train"), torch.as_tensor(digits.train.labels)
    probe = torch.nn.Linear(x.shape[1], 10)
    probe.load_state_dict({k.split(".")[-1]: v for k, v in head.items()})
    with torch.no_grad():
        z = probe(x)
    sig = s.dynamics.signals()
    p = torch.softmax(z, 1)[torch.arange(len(y)), y].numpy()
    others = z.clone()
    others[torch.arange(len(y)), y] = -torch.inf
    margin = (z[torch.arange(len(y)), y] - others.max(1).values).numpy()
    np.testing.assert_allclose(sig["p_true"][1], p, atol=2e-3, rtol=2e-3)  # float16
    np.testing.assert_allclose(sig["margin"][1], margin, atol=2e-2, rtol=2e-3)
    assert np.array_equal(sig["correct"][1], (z.argmax(1) == y).numpy().astype(np.int8))


def test_full_fine_tuning_correctness_is_the_epochs_train_accuracy(small) -> None:
    """Full path: the record comes from the training forward passes, the same argmax as train accuracy."""
    s = head_session(small, freeze="full", batch_size=16)
    s.fit(2)
    sig = s.dynamics.signals()
    assert not s.history[0].fast_path and sig["p_true"].shape == (2, len(small.train))
    for row, record in zip(sig["correct"], s.history):
        seen = row >= 0
        assert seen.all()  # 80 samples in five batches of 16: every one trained on
        assert row[seen].mean() == pytest.approx(record.train_accuracy, abs=1e-9)
    assert np.all((sig["p_true"] >= 0) & (sig["p_true"] <= 1))
    assert np.array_equal(sig["margin"] > 0, sig["correct"] == 1)  # the label's logit wins exactly when right


def test_a_stopped_epoch_marks_the_samples_it_did_not_reach(small) -> None:
    s = head_session(small, freeze="full", batch_size=16)
    s.fit(1, stop_after=3)
    assert s.history[-1].stopped and s.history[-1].batches == 3
    sig = s.dynamics.signals()
    seen = sig["correct"][0] >= 0
    assert seen.sum() == 48  # three batches of 16
    assert np.isnan(sig["p_true"][0][~seen]).all() and not np.isnan(sig["p_true"][0][seen]).any()
    assert s.dynamics.train.view("correct")[0][~seen].tolist() == [NOT_SEEN] * int((~seen).sum())
    s.fit(1, stop_after=0)  # no step: nothing recorded, the history unchanged
    assert s.dynamics.epochs == [1] and s.epoch == 1


def test_balanced_sampling_and_progressive_unfreezing_are_recorded(small) -> None:
    s = head_session(small, sampler="balanced", freeze=wb.progressive(every=1), batch_size=16)
    s.fit(3)
    sig = s.dynamics.signals()
    assert sig["epochs"].tolist() == [1, 2, 3]
    assert [r.fast_path for r in s.history] == [True, False, False]
    unseen = (sig["correct"] == -1).sum(axis=1)
    assert (unseen > 0).all()  # drawing with replacement leaves some samples out of every epoch
    assert np.isnan(sig["p_true"][sig["correct"] == -1]).all()


def test_fit_head_records_every_sample(digits) -> None:
    s = head_session(digits)
    s.fit_head(C=1.0)
    sig = s.dynamics.signals()
    assert sig["epochs"].tolist() == [1] and (sig["correct"] >= 0).all()
    assert (sig["correct"][0] == 1).mean() == pytest.approx(s.history[0].train_accuracy)


def test_valid_predictions_are_kept_per_epoch(digits) -> None:
    s = head_session(digits)
    s.fit(2)
    first = s.previous_predictions
    kept = s.dynamics.valid_epoch(1)
    assert np.array_equal(kept["predicted"], first.predicted)
    np.testing.assert_allclose(kept["p_true"], first.probabilities[np.arange(len(first)), first.labels], atol=1e-3)
    np.testing.assert_allclose(kept["loss"], first.losses, rtol=1e-3, atol=1e-3)
    with pytest.raises(wb.ConfigError, match="were not kept"):
        s.dynamics.valid_epoch(7)


def test_arrays_grow_by_doubling_and_stop_at_the_cap_with_a_message(digits) -> None:
    s = head_session(digits)
    n_train, n_valid = len(digits.train), len(digits.valid)
    row = 5 * n_train + 8 * n_valid  # bytes of one train row and one valid row
    s.dynamics.max_bytes = 6 * row
    s.fit(4)
    assert s.dynamics.train.capacity == s.dynamics.valid.capacity == 4 and s.dynamics.stopped is None
    with pytest.warns(RuntimeWarning, match=r"stopped recording at epoch 7.*cap of 13\.\d kB.*session.dynamics.max_bytes"):
        s.fit(3)
    assert s.dynamics.train.capacity == 6  # doubling would pass the cap: it grew to what fits
    assert s.dynamics.epochs == [1, 2, 3, 4, 5, 6] and s.dynamics.valid_epochs == [1, 2, 3, 4, 5, 6]
    assert s.dynamics.nbytes <= s.dynamics.max_bytes
    assert s.epoch == 7  # training went on
    assert "stopped recording" in repr(s.dynamics)


def test_turned_off_it_records_nothing_and_training_is_the_same(small) -> None:
    on, off = head_session(small, freeze="full", batch_size=16), head_session(small, freeze="full", batch_size=16)
    off.dynamics.enabled = False
    on.fit(2)
    off.fit(2)
    assert off.dynamics.epochs == [] and on.dynamics.epochs == [1, 2]
    a, b = on.model.module.state_dict(), off.model.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # recording reads logits; it never changes training


def test_dynamics_and_the_verify_queue_travel_with_checkpoints(digits, tmp_path) -> None:
    s = head_session(digits)
    s.fit(2)
    s.relabel({3: 1})
    s.flag([5, 6], note="=HYPERLINK(x)")
    s.save(tmp_path / "run.wb")
    state = torch.load(tmp_path / "run.wb" / "state.pt", weights_only=True)  # no pickle needed
    assert state["dynamics"]["train_p_true"].dtype == torch.float16
    again = wb.Session.load(tmp_path / "run.wb", data=digits)
    assert_same_state(s.dynamics.state_dict(), again.dynamics.state_dict())
    assert again.review.state_dict() == s.review.state_dict() and again.train_labels[3] == 1
    again.fit(1)
    assert again.dynamics.epochs == [1, 2, 3]


def test_a_checkpoint_without_dynamics_still_loads(digits, tmp_path) -> None:
    s = head_session(digits)
    s.fit(1)
    sd = s.state_dict()
    del sd["dynamics"], sd["review"]  # what a checkpoint from before training dynamics holds
    other = head_session(digits)
    other.load_state_dict(sd)
    assert other.epoch == 1 and other.dynamics.epochs == [] and len(other.review) == 0
    other.fit(1)
    assert other.dynamics.epochs == [2]


def test_dynamics_of_other_data_are_refused_and_nothing_changes(digits) -> None:
    s = head_session(digits)
    s.fit(1)
    sd = s.state_dict()
    sd["dynamics"]["train_p_true"] = sd["dynamics"]["train_p_true"][:, :10]
    other = head_session(digits)
    other.fit(2)
    before = other.state_dict()
    with pytest.raises(CheckpointError, match="belongs to other data"):
        other.load_state_dict(sd)
    assert_same_state(before, other.state_dict())
    sd = s.state_dict()
    sd["review"]["overrides"] = [[99999, 1, 2]]
    with pytest.raises(CheckpointError, match="review of training labels"):
        other.load_state_dict(sd)
    assert_same_state(before, other.state_dict())


def test_a_state_round_trip_of_an_empty_record() -> None:
    d = TrainingDynamics(7, 3, 4)
    again = TrainingDynamics.from_state(d.state_dict(), 7, 3, 4)
    assert again.epochs == [] and again.valid_epochs == [] and again.max_bytes == d.max_bytes
    with pytest.raises(CheckpointError, match="not understood"):
        TrainingDynamics.from_state({"format": 99}, 7, 3, 4)


def test_pinned_samples_record_their_explanation_at_each_epoch_end(small) -> None:
    s = head_session(small, freeze="full", batch_size=16)
    s.fit(1)
    assert s.pin(4) == [4]
    assert set(s.pin_frames[4]) == {1}  # explained at once, from the current weights
    s.fit(2)
    assert set(s.pin_frames[4]) == {1, 2, 3}
    true, pred = s.pinned_explanation(4, 2)
    assert true.kind == "image" and true.heatmap.shape == true.image.shape[:2]
    assert 0 <= true.heatmap.min() and true.heatmap.max() <= 1
    assert true.target == small.valid.labels[4] and pred.target == pred.predicted
    assert s.pinned_explanation(4, 9) is None
    for i in (1, 2, 3):
        s.pin(i)
    with pytest.raises(wb.ConfigError, match="pinned already"):
        s.pin(5)
    with pytest.raises(wb.DataError, match="not a valid sample"):
        s.pin(10_000)
    s.unpin(4)
    assert 4 not in s.pinned and 4 not in s.pin_frames


def test_recording_never_faults_an_epoch(digits) -> None:
    """A recorder that cannot record stops recording with a message; the epoch is kept."""
    s = head_session(digits)
    s.fit(1)
    recorder = s.dynamics.start_epoch  # a recorder that fails on its first chunk

    def broken(epoch, batches, labels):
        r = recorder(epoch, batches, labels)
        r.labels = r.labels[:0]  # indexing by the batch's positions now fails
        return r

    s.dynamics.start_epoch = broken
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.fit(1)
    assert s.epoch == 2 and s.history[-1].completed
    assert s.dynamics.epochs == [1] and "recording failed at epoch 2" in s.dynamics.stopped
    assert any("recording failed" in str(w.message) for w in caught)
