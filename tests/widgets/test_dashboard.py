"""TrainingDashboard driven from Python: each button and control does what the public method does."""

from __future__ import annotations

import threading

import pytest
import torch

import workbench as wb
from workbench.widgets import TrainingDashboard


def test_step_epoch_trains_one_epoch_and_updates_plot_table_progress(session) -> None:
    d = TrainingDashboard(session)
    first_plot = d.plot.value
    d.step_button.click()
    d.wait(60)
    assert len(session.history) == 1 and session.history[0].completed
    assert d.plot.value != first_plot and d.plot.value[:4] == b"\x89PNG"
    assert "valid acc" in d.table.value and "<td>1</td>" in d.table.value
    assert d.progress.bar.value == d.progress.bar.max
    assert not d.step_button.disabled and d.stop_button.disabled


def test_train_n_runs_n_epochs_in_the_background(session) -> None:
    d = TrainingDashboard(session)
    d.n_epochs.value = 3
    d.train_button.click()
    assert d.training and d.step_button.disabled and not d.stop_button.disabled
    d.wait(120)
    assert [r.epoch for r in session.history] == [1, 2, 3]


def test_stop_halts_training_within_a_batch(digits) -> None:
    model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)
    session = wb.Session(digits, model, batch_size=2, freeze="full")  # many small batches
    d = TrainingDashboard(session)
    started = threading.Event()
    session.on("batch_end", lambda b: started.set())
    session.events.batch_interval_s = 0.0
    d.train(50)
    assert started.wait(60)
    d.stop_button.click()
    d.wait(60)
    assert not d.training and len(session.history) == 1
    assert session.history[0].stopped.startswith("stopped by user")


def test_pause_and_resume_buttons(digits) -> None:
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    session = wb.Session(digits, model, batch_size=2, freeze="full")  # many small batches
    d = TrainingDashboard(session)
    started = threading.Event()
    session.on("batch_end", lambda b: started.set())
    session.events.batch_interval_s = 0.0
    d.train(50)
    assert started.wait(60)
    d.pause_button.value = True  # the toggle, as a click sets it
    assert session.paused and d.pause_button.description == "Resume"
    d.pause_button.value = False
    assert not session.paused and d.pause_button.description == "Pause"
    d.stop_button.click()
    d.wait(60)
    assert not d.training


@pytest.mark.parametrize(
    ("control", "value", "expected"),
    [
        ("optimizer", "sgd", lambda c: c.optimizer == "sgd"),
        ("lr", 1e-2, lambda c: c.lr == pytest.approx(1e-2)),
        ("schedule", "cosine", lambda c: c.schedule.name == "cosine"),
        ("epochs", 12, lambda c: c.epochs == 12),
        ("batch_size", 16, lambda c: c.batch_size == 16),
        ("weight_decay", 0.01, lambda c: c.weight_decay == 0.01),
        ("loss", "focal", lambda c: c.loss == "focal"),
        ("label_smoothing", 0.1, lambda c: c.label_smoothing == pytest.approx(0.1)),
        ("focal_gamma", 3.0, lambda c: c.focal_gamma == 3.0),
        ("class_weights", True, lambda c: c.class_weights == "balanced"),
        ("sampler", "balanced", lambda c: c.sampler == "balanced"),
        ("early_stopping", 3, lambda c: c.early_stopping == 3),
        ("head_dropout", 0.3, lambda c: c.head_dropout == pytest.approx(0.3)),
        ("flip", True, lambda c: c.augment.flip),
        ("crop", True, lambda c: c.augment.crop),
        ("rotation", 15, lambda c: c.augment.rotation == 15),
        ("color", 0.2, lambda c: c.augment.color == pytest.approx(0.2)),
    ],
)
def test_each_control_changes_the_session_setting(session, control, value, expected) -> None:
    d = TrainingDashboard(session)
    d.inputs[control].value = value
    assert expected(session.config), session.config
    assert d.message.text == ""


def test_head_dropout_control_reaches_the_model(session) -> None:
    d = TrainingDashboard(session)
    d.inputs["head_dropout"].value = 0.4
    assert session.model.head[0].p == pytest.approx(0.4)


def test_a_bad_setting_shows_in_the_widget_and_changes_nothing(session) -> None:
    d = TrainingDashboard(session)
    config = session.config
    d.set(lr=0)
    assert "lr must be > 0" in d.message.text
    assert session.config is config and d.inputs["lr"].value == pytest.approx(config.lr)


def test_settings_changed_while_training_apply_from_the_next_epoch(session) -> None:
    d = TrainingDashboard(session)
    gate = threading.Event()
    session.on("epoch_start", lambda e: gate.wait(30) if e.epoch == 1 else None)
    d.train(2)
    d.inputs["lr"].value = 0.01
    assert "from the next epoch" in d.message.text and session.config.lr == pytest.approx(0.05)
    gate.set()
    d.wait(60)
    assert session.config.lr == pytest.approx(0.01)
    assert session.history[1].lrs[session.model.block_names[-1]] == pytest.approx(0.01)


def test_a_training_fault_shows_in_the_dashboard_and_keeps_the_weights(session) -> None:
    session.freeze("full")
    session.step()
    d = TrainingDashboard(session)
    before = {k: v.clone() for k, v in session.model.module.state_dict().items()}
    forward = session.model.logits
    session.model.logits = lambda x: forward(x) * float("nan")
    d.step()
    d.wait(60)
    session.model.logits = forward
    assert "non-finite loss" in d.message.text and "Lower the learning rate" in d.message.text
    now = session.model.module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in before.items())
    assert not d.training and not d.step_button.disabled


def test_the_next_epoch_lr_shown_is_the_lr_that_runs(digits) -> None:
    """The issue: after a 5-epoch cosine, LR 1e-2 set in the Train tab read "next epoch: LR 1.00e-02" and
    the epoch ran at 0.0. The Train tab's note and the decisions line now show what summary() says, and
    the epoch runs at it."""
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    session = wb.Session(digits, model, optimizer="adamw", lr=1e-3, schedule="cosine", epochs=2, batch_size=8)
    session.fit(2)
    d = TrainingDashboard(session)
    d.inputs["lr"].text.value = 1e-2  # typed into the Train tab
    words = session.next_epoch_lr().words()
    assert words.startswith("LR 1.00e-02 → ") and "cosine, epoch 1 of 2" in words
    assert words in d.inputs["lr"].note.value and words in d.decisions.value and words in session.summary()
    d.step()
    d.wait(120)
    assert session.history[-1].batch_lrs[0] == pytest.approx(1e-2)


def test_a_code_cell_cannot_start_a_fit_while_the_dashboard_trains(digits) -> None:
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    session = wb.Session(digits, model, batch_size=2, freeze="full")
    d = TrainingDashboard(session)
    started, go = threading.Event(), threading.Event()
    session.events.batch_interval_s = 0.0
    session.on("batch_end", lambda b: (started.set(), go.wait(60)))
    d.train(2)
    assert started.wait(60)
    with pytest.raises(wb.ConfigError, match=r"busy training \(fit\(2\)\) in thread 'workbench-train'"):
        session.fit(1)
    session.configure(lr=1e-3)  # queued, the dashboard says so
    assert session.has_pending_changes and "changes queued for the next epoch" in d.decisions.value
    d.stop()
    go.set()
    d.wait(60)
    assert not d.training and len(session.history) == 1


def test_the_result_line_says_where_the_cached_features_came_from(digits) -> None:
    """Computed, then read from the disk cache by a second run, then computed again when one
    split's entry (either) no longer checks out: the words follow what happened to every split."""
    from workbench.train import disk_cache

    def first_epoch_words() -> str:
        torch.manual_seed(0)
        model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
        d = TrainingDashboard(wb.Session(digits, model, optimizer="sgd", lr=0.05, batch_size=32, seed=0))
        d.step_button.click()
        d.wait(60)
        return d.progress.text()

    assert "computing the cached features (once)" in first_epoch_words()
    assert "reading the cached features from disk (computed by an earlier run or kernel)" in first_epoch_words()
    entries = sorted(disk_cache.folder().glob("wbfeat-*.safetensors"))
    assert len(entries) == 2  # train and valid
    for path in entries:  # one split read from disk, the other rebuilt: in either order, "computing"
        path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
        words = first_epoch_words()
        assert "computing the cached features (once)" in words and "from disk" not in words, words
