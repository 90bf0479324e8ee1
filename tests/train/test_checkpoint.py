"""Checkpoints: bit-identical resume, no pickle, corrupt files and mismatches rejected safely."""

from __future__ import annotations

import json
import os

import pytest
import torch

import workbench as wb
from workbench.errors import CheckpointError

from helpers import assert_same_state, tiny_cnn, weights


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
    assert meta["backbone"]["name"] == "resnet18" and len(meta["history"]) == 1


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
    from workbench.train.checkpoint import load

    other = wb.Session(digits, wb.load_backbone("mobilenet_v3_small", 10, pretrained=False, image_size=32))
    other.save(tmp_path / "other.wb")
    s = make(digits)
    s.step()
    before = s.state_dict()
    with pytest.raises(CheckpointError, match=r"from backbone 'mobilenet_v3_small'.*trains 'resnet18'"):
        s.load_state_dict(load(tmp_path / "other.wb"))
    assert_same_state(before, s.state_dict())


def test_a_save_that_fails_part_way_leaves_the_previous_checkpoint(digits, tmp_path, monkeypatch) -> None:
    """Disk full while the second file is written: the folder still holds the earlier save,
    which loads as it was (not new weights with old history)."""
    from workbench.train import checkpoint

    s = make(digits)
    s.step()
    s.save(tmp_path / "run.wb")
    first = wb.Session.load(tmp_path / "run.wb", data=digits).state_dict()
    s.step()
    real = checkpoint.torch.save

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*earlier checkpoint there is unchanged"):
        s.save(tmp_path / "run.wb")
    monkeypatch.setattr(checkpoint.torch, "save", real)
    assert_same_state(first, wb.Session.load(tmp_path / "run.wb", data=digits).state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.wb"]  # no temporary folder left behind


def test_an_interrupted_save_leaves_the_previous_checkpoint(digits, tmp_path, monkeypatch) -> None:
    from workbench.train import checkpoint

    s = make(digits)
    s.save(tmp_path / "run.wb")
    before = (tmp_path / "run.wb" / "model.safetensors").read_bytes()
    s.step()
    monkeypatch.setattr(checkpoint.torch, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        s.save(tmp_path / "run.wb")
    assert (tmp_path / "run.wb" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.wb"]


def test_unwritable_or_odd_paths_get_a_clear_error(digits, tmp_path) -> None:
    s = make(digits)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CheckpointError, match="Cannot create the folder"):
        s.save(tmp_path / "a_file" / "run.wb")
    with pytest.raises(CheckpointError, match="exists and is a file"):
        s.save(tmp_path / "a_file")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root can write anywhere: nothing to test then
            with pytest.raises(CheckpointError, match="Could not write the checkpoint"):
                s.save(locked / "run.wb")
    finally:
        locked.chmod(0o700)


def test_a_damaged_session_json_is_refused_before_anything_is_built(digits, tmp_path) -> None:
    s = make(digits)
    s.step()
    s.save(tmp_path / "c.wb")
    meta_file = tmp_path / "c.wb" / "session.json"
    meta = json.loads(meta_file.read_text())
    for broken, message in ((dict((k, v) for k, v in meta.items() if k != "history"), "lacks history"),
                            (dict(meta, format=1), "format 1"),
                            (dict(meta, optimizer_groups=meta["optimizer_groups"] + ["stem"]), "parameter groups"),
                            (dict(meta, trainable=["nope"]), "trainable blocks cannot be read"),
                            ([1, 2], "format None")):
        meta_file.write_text(json.dumps(broken))
        with pytest.raises(CheckpointError, match=message):
            wb.Session.load(tmp_path / "c.wb", data=digits)
        target = make(digits)
        before = target.state_dict()
        if isinstance(broken, dict) and broken.get("format") == 2:
            from workbench.train.checkpoint import load

            with pytest.raises(CheckpointError, match=message):
                target.load_state_dict(load(tmp_path / "c.wb"))
            assert_same_state(before, target.state_dict())


def test_a_module_that_cannot_be_rebuilt_needs_model(digits, tmp_path) -> None:
    s = make(digits)
    s.save(tmp_path / "own.wb")
    meta_file = tmp_path / "own.wb" / "session.json"
    meta = json.loads(meta_file.read_text())
    meta["backbone"]["rebuildable"] = False
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"cannot be rebuilt by name.*model="):
        wb.Session.load(tmp_path / "own.wb", data=digits)
    back = wb.Session.load(tmp_path / "own.wb", data=digits, model=tiny_cnn())
    assert back.epoch == 0


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
