"""Image folders that stream: decoded by DataLoader workers ahead of the model, bit-identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import workbench as wb
from workbench.data import transforms

from helpers import assert_same_state


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (root / c).mkdir()
        for i in range(60):
            pixels = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
            pixels[:, :, "abc".index(c)] = 255  # a colour per class: learnable
            Image.fromarray(pixels).save(root / c / f"{i}.jpg", quality=90)
    return root


def run(folder, stream: bool, monkeypatch, workers: str = "2", **settings):
    monkeypatch.setattr(transforms, "FILE_PRELOAD_LIMIT_BYTES", 0 if stream else 2**40)
    monkeypatch.setenv("WORKBENCH_DECODE_WORKERS", workers)
    data = wb.Data.from_folder(folder, valid_fraction=0.25)
    model = wb.load_backbone("timm:test_resnet", 3, pretrained=False, image_size=24)
    s = wb.Session(data, model, batch_size=16, optimizer="sgd", lr=0.05, **settings)
    batcher = s.pipeline.batcher("train")
    assert batcher.streams == stream
    s.step()  # head only, on cached features built from the (streamed) files
    s.freeze("full")
    s.fit(2)
    return s.state_dict()


def test_streamed_files_train_bit_identically_to_preloaded_ones(folder, monkeypatch) -> None:
    augment = {"augment": {"flip": True, "rotation": 10}}
    preloaded = run(folder, False, monkeypatch, **augment)
    streamed = run(folder, True, monkeypatch, **augment)
    in_thread = run(folder, True, monkeypatch, workers="0", **augment)
    for sd in (streamed, in_thread):
        assert_same_state(preloaded["model"], sd["model"])
        strip = lambda h: [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in h]  # noqa: E731
        assert strip(preloaded["history"]) == strip(sd["history"])


def test_a_broken_file_in_a_streamed_split_is_named(folder, monkeypatch, tmp_path) -> None:
    import shutil

    copy = tmp_path / "photos"
    shutil.copytree(folder, copy)
    monkeypatch.setattr(transforms, "FILE_PRELOAD_LIMIT_BYTES", 0)
    monkeypatch.setenv("WORKBENCH_DECODE_WORKERS", "2")
    data = wb.Data.from_folder(copy, valid_fraction=0.25)
    broken = copy / data.train.sample_id(5)
    broken.write_bytes(broken.read_bytes()[:200])
    model = wb.load_backbone("timm:test_resnet", 3, pretrained=False, image_size=24)
    s = wb.Session(data, model, batch_size=16, freeze="full")
    before = s.state_dict()
    with pytest.raises(wb.DataError, match=data.train.sample_id(5)):
        s.step()
    assert s.global_step == sum(r.batches for r in s.history)
    if not s.history:
        assert_same_state(before, s.state_dict())


def test_preloading_reports_its_progress(folder, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_DECODE_WORKERS", "2")
    data = wb.Data.from_folder(folder, valid_fraction=0.25)
    s = wb.Session(data, wb.load_backbone("timm:test_resnet", 3, pretrained=False, image_size=24), batch_size=16)
    seen = []
    s.on("progress", seen.append)
    s.step()
    tasks = {p.task for p in seen}
    assert {"decoding images (train)", "decoding images (valid)", "features (train)", "features (valid)",
            "validation"} <= tasks
    for task in tasks:
        last = [p for p in seen if p.task == task][-1]
        assert last.done == last.total > 0
    assert torch.equal(s.pipeline.batcher("train").pixels[0], s.pipeline.batcher("train").raw(torch.tensor([0]))[0])
