"""The head-only feature cache on disk (train/disk_cache.py): a new kernel reads what an earlier one
computed; any change to the body, the inputs or the data misses; a corrupt, tampered or foreign
entry is ignored and rebuilt, never used; the size cap evicts the least recently used entries; and
nothing workbench did not write is ever deleted. The suite's conftest points the folder at a
temporary one for every test."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import workbench as wb
from helpers import tiny_cnn
from workbench.train import disk_cache


@pytest.fixture(scope="module")
def digits():
    """40 train / 20 valid digits: the features of a tiny CNN take a moment."""
    return wb.load_data("digits").subset(train=4, valid=2, seed=0)


def _session(data, model=None, **settings):
    torch.manual_seed(0)
    return wb.Session(data, model or tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=32, seed=0, **settings)


def _tasks(session) -> list[str]:
    seen: list[str] = []
    session.on("progress", lambda p: seen.append(p.task) if p.done == 0 else None)
    return seen


def _twin(session):
    """A fresh Session on a model with the same weights, as a restarted kernel would build."""
    model = tiny_cnn()
    model.module.load_state_dict(session.model.module.state_dict())
    return _session(session.data, model)


def test_a_new_session_reads_the_features_an_earlier_one_computed(digits) -> None:
    first = _session(digits)
    seen = _tasks(first)
    r1 = first.step(progress=False)
    assert "features (train)" in seen and "features (valid)" in seen
    info = wb.feature_cache_info()
    assert info.entries == 2 and info.bytes > 0 and info.folder == disk_cache.folder()
    assert str(info.folder).startswith(os.environ["WORKBENCH_CACHE_DIR"])

    second = _session(digits)  # the same seeded model as the first started from: a restarted kernel
    seen = _tasks(second)
    r2 = second.step(progress=False)
    assert "features (train)" not in seen and "features (valid)" not in seen
    assert seen.count("disk cache (train)") == 1 and seen.count("disk cache (valid)") == 1
    assert torch.equal(second.features("train"), first.features("train"))
    # the same epoch, bit for bit: read features are the computed ones
    assert (r2.train_loss, r2.valid_loss, r2.valid_accuracy) == (r1.train_loss, r1.valid_loss, r1.valid_accuracy)


def test_any_change_below_the_head_or_in_the_inputs_misses(digits) -> None:
    base = _session(digits)
    base.features("valid")
    assert wb.feature_cache_info().entries == 1

    other_head = _twin(base)
    with torch.no_grad():
        for p in other_head.model.head.parameters():
            p.zero_()
    seen = _tasks(other_head)
    other_head.features("valid")
    assert "features (valid)" not in seen  # the head is not part of the key

    changed_body = _twin(base)
    with torch.no_grad():
        next(changed_body.model.module.parameters()).add_(1e-3)
    seen = _tasks(changed_body)
    changed_body.features("valid")
    assert "features (valid)" in seen

    bigger = _session(digits, wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=24))
    seen = _tasks(bigger)
    bigger.features("valid")
    assert "features (valid)" in seen

    other_data = _twin(base)
    other_data = _session(wb.load_data("digits").subset(train=4, valid=2, seed=1), other_data.model)
    seen = _tasks(other_data)
    other_data.features("valid")
    assert "features (valid)" in seen
    assert wb.feature_cache_info().entries == 4


def test_a_body_that_trains_writes_nothing(digits) -> None:
    s = _session(digits, freeze="full")
    s.features("valid")
    assert wb.feature_cache_info().entries == 0


def test_the_switch_turns_it_off(digits, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_FEATURE_CACHE", "0")
    s = _session(digits)
    s.features("valid")
    info = wb.feature_cache_info()
    assert info.entries == 0 and not info.enabled and "off" in repr(info)


def _only_entry():
    entries = sorted(disk_cache.folder().glob("wbfeat-*.safetensors"))
    assert len(entries) == 1
    return entries[0]


def test_a_tampered_entry_is_ignored_and_rebuilt(digits) -> None:
    base = _session(digits)
    truth = base.features("valid").clone()
    path = _only_entry()
    tensors, meta = load_file(path), None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors["features"][0, 0] += 1.0  # one number changed, the digest left as it was
    save_file(tensors, path, metadata=meta)

    again = _twin(base)
    seen = _tasks(again)
    assert torch.equal(again.features("valid"), truth)
    assert "features (valid)" in seen  # recomputed, not read
    assert torch.equal(load_file(path)["features"], truth)  # and the entry rebuilt


def test_an_entry_under_another_key_is_not_used(digits) -> None:
    base = _session(digits)
    base.features("valid")
    path = _only_entry()
    key = path.name[len("wbfeat-"):-len(".safetensors")]
    other = "0" * 64
    os.replace(path, disk_cache._entry(disk_cache.folder(), other))  # renamed: its metadata names its own key
    assert disk_cache.load(other, len(digits.valid)) is None
    assert disk_cache.load(key, len(digits.valid)) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), junk=st.binary(max_size=256))
def test_hostile_bytes_never_load_and_never_raise(tmp_path_factory, monkeypatch, cut, junk) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("hostile")))
    features = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    path = disk_cache.store("a" * 64, features)
    assert torch.equal(disk_cache.load("a" * 64, 10), features)
    good = path.read_bytes()
    path.write_bytes(good[:cut] + junk)
    assert disk_cache.load("a" * 64, 10) is None or good[:cut] + junk == good


def test_a_secret_others_can_read_disables_it(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("loose")))
    features = torch.ones(3, 2)
    assert disk_cache.store("b" * 64, features) is not None
    os.chmod(disk_cache.folder() / disk_cache.SECRET, 0o644)
    assert disk_cache.load("b" * 64, 3) is None
    assert disk_cache.store("c" * 64, features) is None


def test_the_cap_evicts_least_recently_used_and_nothing_else(monkeypatch, tmp_path) -> None:
    folder = disk_cache.folder()
    folder.mkdir(parents=True, exist_ok=True)
    foreign = [folder / "notes.txt", folder / "wbfeat-short.safetensors", folder / ("wbfeat-" + "d" * 64 + ".bin")]
    for f in foreign:
        f.write_bytes(b"x" * 5000)
    outside = tmp_path / "precious.safetensors"
    outside.write_bytes(b"y" * 5000)
    link = folder / ("wbfeat-" + "e" * 64 + ".safetensors")
    link.symlink_to(outside)

    one = torch.zeros(100, 10)  # 4,000 bytes of numbers, a little more on disk
    monkeypatch.setenv("WORKBENCH_CACHE_MAX_GB", str(10_000 / 1024**3))  # room for two entries
    first = disk_cache.store("1" * 64, one)
    second = disk_cache.store("2" * 64, one)
    os.utime(first, (1, 1)), os.utime(second, (2, 2))
    assert disk_cache.load("1" * 64, 100) is not None  # read: now the most recently used
    third = disk_cache.store("3" * 64, one)
    assert first.exists() and third.exists() and not second.exists()
    assert disk_cache.store("4" * 64, torch.zeros(1000, 10)) is None  # bigger than the cap: not written

    assert wb.clear_feature_cache() == 2
    assert wb.feature_cache_info().entries == 0
    assert all(f.exists() for f in foreign) and link.is_symlink() and outside.read_bytes() == b"y" * 5000
