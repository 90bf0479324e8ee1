"""The session as code: executing `session.to_code()` in a fresh Python process rebuilds the run, and
on the CPU its weights and history are bit-identical to the session's.

Each path is driven the way a person would (freeze plans, settings, stop() from a callback, early
stopping), then the printed cell runs in a subprocess that saves its weights and history. Wall
times (epoch_time_s, samples_per_s) are the only fields left out. The subprocess uses the test's
number of CPU threads: float sums on the CPU may be grouped differently with another count.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench as wb
from helpers import assert_same_state

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("epoch_time_s", "samples_per_s")


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=20, valid=6, seed=1)


def start(data, freeze="head", **settings) -> wb.Session:
    model = wb.load_backbone("resnet18", data.num_classes, pretrained=False, image_size=16)
    return wb.Session(data, model, freeze=freeze, batch_size=32, seed=3, **settings)


def history(records) -> list[dict]:
    return [{k: v for k, v in (r if isinstance(r, dict) else r.to_dict()).items() if k not in TIMING} for r in records]


def replay(session: wb.Session, folder: Path) -> dict:
    """Run session.to_code() in a fresh interpreter; its session's weights, history, predictions."""
    code = session.to_code()
    assert "..." not in code, code  # nothing left to fill in: bundled data, a backbone by name
    save = (
        "\nimport torch\n"
        "torch.save({'model': session.model.module.state_dict(),\n"
        "            'history': [r.to_dict() for r in session.history],\n"
        "            'logits': torch.from_numpy(session.predictions.logits),\n"
        "            'recording': session.recording}, 'replayed.pt')\n"
    )
    prelude = f"import torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", prelude + code + save], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, f"the cell failed:\n{code}\n{out.stderr[-3000:]}"
    return torch.load(folder / "replayed.pt", weights_only=False)


def assert_replays(session: wb.Session, folder: Path) -> dict:
    got = replay(session, folder)
    assert_same_state(session.model.module.state_dict(), got["model"], "weights")
    assert history(session.history) == history(got["history"])
    assert torch.equal(torch.from_numpy(session.predictions.logits), got["logits"])
    assert got["recording"] == session.recording  # the replay records itself the same way
    return got


@pytest.mark.slow  # a fresh interpreter replays the cell: ~20-40 s
def test_head_then_last_two_with_a_schedule_change_between(data, tmp_path):
    s = start(data, "head", optimizer="adamw", lr=2e-3, epochs=4)
    s.fit(2)
    s.freeze(wb.last(2))
    s.configure(schedule="cosine", lr=5e-4, lr_decay=0.5)
    s.fit(2)
    assert [r.fast_path for r in s.history] == [True, True, False, False]
    code = s.to_code()
    assert "session.freeze(wb.last(2))" in code and "schedule='cosine'" in code
    assert_replays(s, tmp_path)


@pytest.mark.slow  # a fresh interpreter replays the cell: ~20-40 s
def test_progressive_unfreezing(data, tmp_path):
    s = start(data, wb.progressive(every=1), optimizer="sgd", lr=0.05, lr_decay=0.7)
    s.fit(3)
    assert [len(r.trainable) for r in s.history] == [1, 2, 3]
    assert "freeze=wb.progressive(every=1)" in s.to_code()
    assert_replays(s, tmp_path)


@pytest.mark.slow  # a fresh interpreter replays the cell: ~20-40 s
def test_a_stopped_epoch(data, tmp_path):
    """stop() from a callback after three batches of the second epoch: recorded where it took effect."""
    s = start(data, "full", optimizer="adam", lr=1e-3)
    s.fit(1)
    s.events.batch_interval_s = 0.0  # every batch_end reaches the callback (not at most 5 per second)
    seen = []

    def stop_after_three(event) -> None:
        seen.append(event)
        if len(seen) == 3:
            s.stop()

    s.on("batch_end", stop_after_three)
    s.fit(2)
    s.off("batch_end", stop_after_three)
    assert s.history[-1].stopped and s.history[-1].batches == 3 and s.epoch == 2
    s.fit(1)  # training goes on after the stop
    assert "stop_after=3" in s.to_code()
    assert_replays(s, tmp_path)


@pytest.mark.slow  # a fresh interpreter replays the cell: ~20-40 s
def test_early_stopping_restores_the_best_weights(data, tmp_path):
    s = start(data, "full", optimizer="adam", lr=3e-3, early_stopping=1)
    results = s.fit(6)
    assert len(results) < 6, "this run was meant to stop early (valid loss rising)"
    s.fit(1)  # on from the restored best weights
    assert_replays(s, tmp_path)


@pytest.mark.slow  # a fresh interpreter replays the cell: ~20-40 s
def test_changes_queued_mid_epoch_and_an_lr_test(data, tmp_path):
    """A setting changed while an epoch runs takes effect at the next one; find_lr restores the weights."""
    s = start(data, "head", optimizer="adamw")
    s.find_lr(steps=8)
    changed = []

    def change_once(event) -> None:
        if not changed:
            changed.append(s.configure(label_smoothing=0.1))
            s.freeze("full")

    s.on("batch_end", change_once)
    s.fit(3)
    s.off("batch_end", change_once)
    assert s.history[0].fast_path and not s.history[1].fast_path
    code = s.to_code()
    assert code.index("session.fit(1)") < code.index("label_smoothing=0.1") < code.index("session.fit(2)")
    assert "session.find_lr(" in code
    assert_replays(s, tmp_path)


def test_the_recording_travels_with_the_checkpoint(data, tmp_path):
    s = start(data, "head", optimizer="sgd", lr=0.05)
    s.fit(1)
    s.freeze(wb.last(1))
    s.fit(1)
    s.save(tmp_path / "run.wb")
    again = wb.Session.load(tmp_path / "run.wb", data=data)
    assert again.recording == s.recording and again.to_code() == s.to_code()
