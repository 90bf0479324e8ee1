"""Checkpoints: bit-identical resume, no pickle, corrupt files and mismatches rejected safely."""

from __future__ import annotations

import json

import pytest
import torch

import workbench as wb
from workbench.errors import CheckpointError

from helpers import tiny_cnn, weights


def make(digits, **kw):
    torch.manual_seed(0)
    settings = dict(optimizer="adam", lr=1e-3, batch_size=32, seed=3, lr_decay=0.5, freeze=wb.progressive(every=1))
    settings.update(kw)
    return wb.Session(digits, tiny_cnn(), **settings)


def test_resume_after_epoch_k_is_bit_identical_to_an_uninterrupted_run(digits, tmp_path) -> None:
    straight = make(digits)
    straight.fit(4)

    first = make(digits)
    first.fit(2)
    first.save(tmp_path / "run.wb")
    resumed = wb.Session.load(tmp_path / "run.wb", data=digits)
    assert resumed.epoch == 2 and resumed.trainable == first.trainable
    resumed.fit(2)

    a, b = weights(straight.model.module), weights(resumed.model.module)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k not in ("epoch_time_s", "samples_per_s")}  # noqa: E731
    assert [strip(r) for r in straight.history] == [strip(r) for r in resumed.history]


def test_checkpoint_files_load_without_pickle(digits, tmp_path) -> None:
    s = make(digits)
    s.step()
    path = s.save(tmp_path / "c.wb") or tmp_path / "c.wb"
    state = torch.load(path / "state.pt", weights_only=True)
    assert "optimizer" in state and state["predictions"]["logits"].shape[1] == 10
    meta = json.loads((path / "session.json").read_text())
    assert meta["backbone"] == "resnet18" and len(meta["history"]) == 1


def test_bundled_data_is_reloaded_by_name(tmp_path) -> None:
    data = wb.load_data("digits")
    s = wb.Session(data, tiny_cnn(), batch_size=64)
    s.save(tmp_path / "d.wb")
    again = wb.Session.load(tmp_path / "d.wb")
    assert again.data.name == "digits" and len(again.data.valid) == len(data.valid)


def test_corrupt_checkpoint_is_rejected_with_a_clear_message(digits, tmp_path) -> None:
    s = make(digits)
    s.step()
    s.save(tmp_path / "c.wb")
    (tmp_path / "c.wb" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="is corrupt"):
        wb.Session.load(tmp_path / "c.wb", data=digits)
    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        wb.Session.load(tmp_path / "missing.wb", data=digits)


def test_checkpoint_from_another_backbone_leaves_the_session_untouched(digits, tmp_path) -> None:
    from workbench.train.checkpoint import restore

    other = wb.Session(digits, wb.load_backbone("mobilenet_v3_small", 10, pretrained=False, image_size=32))
    other.save(tmp_path / "other.wb")
    s = make(digits)
    s.step()
    before, history = weights(s.model.module), list(s.history)
    with pytest.raises(CheckpointError, match=r"from backbone 'mobilenet_v3_small'.*trains 'resnet18'"):
        restore(s, tmp_path / "other.wb")
    assert all(torch.equal(v, s.model.module.state_dict()[k]) for k, v in before.items()) and s.history == history


def test_lr_finder_restores_weights_and_optimizer_state(digits) -> None:
    s = make(digits, freeze="full", optimizer="sgd", lr=0.01)
    s.step()
    before = weights(s.model.module)
    opt_before = {k: v["momentum_buffer"].clone() for k, v in
                  ((i, s.optimizer.state[p]) for i, p in enumerate(s.optimizer.param_groups[0]["params"]))}
    step = s.global_step
    result = s.find_lr(start=1e-5, end=10, steps=30)
    assert 5 <= len(result.lrs) <= 30 and len(result.losses) == len(result.lrs)
    assert result.lrs[0] < result.suggestion < result.lrs[-1]
    now = s.model.module.state_dict()
    assert all(torch.equal(now[k], v) for k, v in before.items()) and s.global_step == step
    for i, p in enumerate(s.optimizer.param_groups[0]["params"]):
        assert torch.equal(s.optimizer.state[p]["momentum_buffer"], opt_before[i])
    s.step()  # still trains normally afterwards
