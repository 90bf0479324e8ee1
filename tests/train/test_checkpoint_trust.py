"""Checkpoints: a save never deletes a file workbench did not write, and an edited or mismatched
checkpoint is refused with a CheckpointError that names the file, the mismatch and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import workbench as wb
from helpers import assert_same_state, tiny_cnn
from workbench.errors import CheckpointError
from workbench.train.checkpoint import load


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, wb.Session]:
    data = wb.load_data("digits").subset(train=6, valid=3, seed=2)
    s = wb.Session(data, tiny_cnn(), optimizer="sgd", lr=0.05, batch_size=16, seed=0)
    s.fit(1, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "run.wb"
    s.save(path)
    return path, s


def edited(saved_path: Path, to: Path, change) -> Path:
    shutil.copytree(saved_path, to)
    meta = json.loads((to / "session.json").read_text())
    change(meta)
    (to / "session.json").write_text(json.dumps(meta))
    return to


def test_a_save_never_deletes_files_workbench_did_not_write(saved, tmp_path) -> None:
    _, s = saved
    mine = tmp_path / "notebooks"
    mine.mkdir()
    (mine / "lesson.ipynb").write_text("{}")
    with pytest.raises(CheckpointError, match=r"lesson\.ipynb \(not written by workbench\).*never deletes"):
        s.save(mine)
    assert (mine / "lesson.ipynb").read_text() == "{}"
    s.save(tmp_path / "run.wb")
    (tmp_path / "run.wb" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"notes\.txt"):
        s.save(tmp_path / "run.wb")
    assert (tmp_path / "run.wb" / "notes.txt").read_text() == "mine"
    (tmp_path / "run.wb" / "notes.txt").unlink()
    s.save(tmp_path / "run.wb")  # its own checkpoint it replaces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks", "run.wb"]  # nothing temporary left
    assert sorted(p.name for p in (tmp_path / "run.wb").iterdir()) == ["model.safetensors", "session.json", "state.pt"]


def test_an_older_checkpoint_without_a_file_list_is_replaced_and_loads(saved, tmp_path) -> None:
    path, s = saved
    old = edited(path, tmp_path / "old.wb", lambda m: m.pop("files"))
    assert wb.Session.load(old).epoch == 1
    s.save(old)
    assert "files" in json.loads((old / "session.json").read_text())


def test_a_replaced_weights_file_is_refused_by_name(saved, tmp_path) -> None:
    path, s = saved
    other = tmp_path / "other.wb"
    wb.Session(s.data, tiny_cnn(), seed=5).save(other)
    swapped = tmp_path / "swapped.wb"
    shutil.copytree(path, swapped)
    shutil.copyfile(other / "model.safetensors", swapped / "model.safetensors")  # a valid file, not this one
    with pytest.raises(CheckpointError, match=r"swapped\.wb/model\.safetensors is not the file saved with this checkpoint"):
        wb.Session.load(swapped)


EDITS = {
    "another backbone": (lambda m: m["backbone"].update(name="resnet34"),
                         r"do not fit this model, 'resnet34'.*was session\.json edited"),
    "an option load_backbone does not take": (lambda m: m["backbone"]["options"].update(trust_remote_code=True),
                                              r"session\.json: the backbone option 'trust_remote_code' is not one"),
    "an absurd image size": (lambda m: m["backbone"]["options"].update(image_size=10**7),
                             r"session\.json: the backbone option image_size=10000000 is not a size"),
    "absurd classes": (lambda m: m["backbone"].update(num_classes=10**9), r"session\.json: the backbone's num_classes"),
    "a data recipe calling something else": (lambda m: m["data"].update(recipe=[{"call": "os.system", "args": ["x"]}]),
                                             r"session\.json: the data recipe, step 0, calls 'os.system'"),
    "a missing key": (lambda m: m.pop("history"), r"session\.json lacks history"),
    "a recording with an unknown op": (lambda m: m["recording"].append({"op": "exec", "code": "print(1)"}),
                                       r"session\.json was edited or is damaged.*op 'exec'"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_session_json_is_refused_naming_the_file(saved, tmp_path, case) -> None:
    change, message = EDITS[case]
    folder = edited(saved[0], tmp_path / "edited.wb", change)
    with pytest.raises(CheckpointError, match=message) as info:
        wb.Session.load(folder)
    assert str(folder) in str(info.value)


def test_a_checkpoint_into_another_backbone_names_the_file_and_the_fix(saved) -> None:
    path, s = saved
    other = wb.load_backbone("mobilenet_v3_small", 10, pretrained=False, image_size=32)
    with pytest.raises(CheckpointError, match=rf"{path}.*from backbone 'resnet18'.*trains 'mobilenet_v3_small'.*"
                                              r"wb\.Session\.load\(path\)"):
        wb.Session.load(path, model=other)
    target = wb.Session(s.data, wb.load_backbone("mobilenet_v3_small", 10, pretrained=False, image_size=32))
    before = target.state_dict()
    with pytest.raises(CheckpointError, match=rf"{path}.*from backbone 'resnet18'"):
        target.load_state_dict(load(path))
    assert_same_state(before, target.state_dict())


def test_a_bundled_subset_loads_without_data_or_says_what_to_pass(saved, tmp_path) -> None:
    path, s = saved
    again = wb.Session.load(path)  # its recipe: wb.load_data("digits").subset(...)
    assert (len(again.data.train), len(again.data.valid)) == (len(s.data.train), len(s.data.valid))
    no_recipe = edited(path, tmp_path / "norecipe.wb", lambda m: m["data"].update(recipe=None))
    with pytest.raises(CheckpointError, match=rf"{no_recipe}.*'digits' with 60 train / 30 valid.*1437 / 360.*data="):
        wb.Session.load(no_recipe)
    assert wb.Session.load(no_recipe, data=s.data).epoch == 1
    gone = edited(path, tmp_path / "gone.wb", lambda m: m["data"].update(
        recipe=[{"call": "wb.Data.from_folder", "args": [str(tmp_path / "deleted")], "kwargs": {}}]))
    with pytest.raises(CheckpointError, match=rf"{gone}.*cannot be made again here.*data="):
        wb.Session.load(gone)
