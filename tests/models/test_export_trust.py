"""Trust in exported folders: wb.load_exported runs no code from a folder and loads only what workbench
wrote, checked; session.export never deletes a file workbench did not write.

A crafted folder is made the way an attacker would: an export, edited, with workbench.json's list of
files re-hashed to match the edits (the list is not a signature). Every refusal must be a
ConfigError naming the file, before any planted code ran or any absurd size was allocated.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench as wb
from models.tiny_text import write_tiny
from workbench.errors import ConfigError
from workbench.owned import manifest

PLANTED = """
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("planted code ran")
from transformers import GPT2Model as Evil, GPT2Config as EvilConfig, GPT2Tokenizer as EvilTokenizer
"""


def tampered(good: Path, to: Path, edit, rehash: bool = True) -> Path:
    """A copy of the export `good` changed by `edit(folder)`; workbench.json's file list re-hashed
    to match (as a determined attacker would) unless rehash=False."""
    shutil.copytree(good, to)
    edit(to)
    if rehash:
        meta = json.loads((to / "workbench.json").read_text())
        meta["files"] = manifest(to, leave_out=["workbench.json"])
        (to / "workbench.json").write_text(json.dumps(meta))
    return to


def edit_json(name: str, change):
    def edit(folder: Path) -> None:
        cfg = json.loads((folder / name).read_text())
        change(cfg)
        (folder / name).write_text(json.dumps(cfg))
    return edit


@pytest.fixture(scope="module")
def pooled_export(tmp_path_factory) -> Path:
    """A GPT-2-like tiny text model: exported with modeling_workbench.py and an auto_map."""
    tmp = tmp_path_factory.mktemp("pooled")
    texts = ["the film was good", "dull and long", "i left early", "a great movie", "bad plot", "hello there",
             "good text", "long dull film", "my friend left", "a b c"]
    y = np.arange(10) % 2
    data = wb.Data.from_texts(texts[:6], y[:6], ["no", "yes"], valid=(texts[6:], y[6:]))
    s = wb.Session(data, wb.load_backbone(f"hf:{write_tiny(tmp / 'gpt2', 'gpt2', weights=True)}", 2), seed=0)
    out = s.export(tmp / "out")
    assert json.loads((out / "config.json").read_text())["auto_map"]  # the pooled class, named for transformers
    return out


@pytest.fixture(scope="module")
def image_export(tmp_path_factory) -> tuple[Path, wb.Session]:
    data = wb.load_data("digits").subset(train=6, valid=3, seed=0)
    s = wb.Session(data, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), seed=0)
    return s.export(tmp_path_factory.mktemp("img") / "out"), s


def _plant(folder: Path) -> None:
    (folder / "evil.py").write_text(PLANTED)


CODE_CASES = {
    "encoder kwargs ask for remote code": lambda f: (_plant(f), edit_json("config.json", lambda c: (
        c.update(workbench_encoder_kwargs={"trust_remote_code": True}),
        c["auto_map"].update(AutoModel="evil.Evil", AutoConfig="evil.EvilConfig")))(f)),
    "trust_remote_code at the top": lambda f: (_plant(f), edit_json("config.json", lambda c: c.update(
        trust_remote_code=True, auto_map={"AutoModelForSequenceClassification": "evil.Evil"}))(f)),
    "another auto_map": lambda f: (_plant(f), edit_json("config.json", lambda c: c.update(
        auto_map={"AutoModelForSequenceClassification": "evil.Evil"}))(f)),
    "a tokenizer from remote code": lambda f: (_plant(f), edit_json("tokenizer_config.json", lambda c: c.update(
        auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]}, tokenizer_class="EvilTokenizer"))(f)),
    "an unknown model type": lambda f: (_plant(f), edit_json("config.json", lambda c: c.update(model_type="evil"))(f)),
}


@pytest.mark.slow  # the module's first pooled export (a tiny GPT-2, checked three ways): ~15 s
@pytest.mark.parametrize("case", list(CODE_CASES))
def test_a_crafted_folder_never_runs_its_code(pooled_export, tmp_path, case) -> None:
    folder = tampered(pooled_export, tmp_path / "crafted", CODE_CASES[case])
    with pytest.raises(ConfigError, match=r"(config|tokenizer_config)\.json"):
        wb.load_exported(folder)
    assert not (folder / "RAN").exists() and "evil" not in sys.modules


@pytest.mark.slow  # shares the pooled export
@pytest.mark.parametrize("name", ["evil.py", "pytorch_model.bin", "sub/helper.pkl"])
def test_code_or_pickles_workbench_did_not_write_are_refused(pooled_export, tmp_path, name) -> None:
    def plant(folder: Path) -> None:
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(PLANTED)

    folder = tampered(pooled_export, tmp_path / "crafted", plant, rehash=False)
    with pytest.raises(ConfigError, match=rf"{name}.*not a file workbench wrote.*code"):
        wb.load_exported(folder)
    (folder / name).unlink()
    assert wb.load_exported(folder).classes == ["no", "yes"]  # the untouched folder loads


@pytest.mark.slow  # shares the pooled export
def test_the_untouched_pooled_export_loads_with_workbench_own_code(pooled_export, tmp_path) -> None:
    folder = tampered(pooled_export, tmp_path / "copy", lambda f: (f / "notes.txt").write_text("mine"), rehash=False)
    (folder / "modeling_workbench.py").write_text(PLANTED)  # never imported by load_exported: refused as changed
    with pytest.raises(ConfigError, match="modeling_workbench.py: changed since workbench wrote it"):
        wb.load_exported(folder)
    shutil.copyfile(pooled_export / "modeling_workbench.py", folder / "modeling_workbench.py")
    back = wb.load_exported(folder)  # notes.txt is never read, and does not stop the load
    assert back.predict(["a great movie"]).labels[0] in ("no", "yes") and not (folder / "RAN").exists()


def test_tampered_weights_files_and_metadata_get_clear_errors(image_export, tmp_path) -> None:
    good, _ = image_export
    pickle = tampered(good, tmp_path / "pickle", lambda f: torch.save({"w": torch.zeros(2)}, f / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"model\.safetensors: not a safetensors file"):
        wb.load_exported(pickle)
    swapped = tampered(good, tmp_path / "swapped", lambda f: torch.save({}, f / "model.safetensors"), rehash=False)
    with pytest.raises(ConfigError, match=r"model\.safetensors: changed since workbench wrote it.*export it again"):
        wb.load_exported(swapped)
    missing = tampered(good, tmp_path / "missing", lambda f: (f / "config.json").unlink(), rehash=False)
    with pytest.raises(ConfigError, match=r"config\.json: missing"):
        wb.load_exported(missing)
    corrupt = tampered(good, tmp_path / "corrupt", lambda f: (f / "workbench.json").write_text("{not json"), rehash=False)
    with pytest.raises(ConfigError, match=r"workbench\.json: not readable JSON"):
        wb.load_exported(corrupt)
    for change, message in ((lambda m: m.update(classes=["a", "a"]), "classes"),
                            (lambda m: m["preprocess"].update(size=10**6), "size from 1 to"),
                            (lambda m: m.update(format=1), "format 1"),
                            (lambda m: m.pop("files"), "format|files")):
        folder = tampered(good, tmp_path / f"meta{len(list(tmp_path.iterdir()))}", edit_json("workbench.json", change),
                          rehash=False)
        with pytest.raises(ConfigError, match=message):
            wb.load_exported(folder)


ABSURD = {
    "a layer of 2**20 x 2**20": edit_json("config.json", lambda c: c.update(replace=[{"path": "fc", "spec": {
        "type": "Linear", "in": 2**20, "out": 2**20, "bias": True}}])),
    "a layer far beyond any": edit_json("config.json", lambda c: c.update(replace=[{"path": "fc", "spec": {
        "type": "Linear", "in": 10**12, "out": 10**12, "bias": True}}])),
    "an image size beyond any": edit_json("config.json", lambda c: c.update(model_args={"image_size": 10**9})),
    "an argument workbench never writes": edit_json("config.json", lambda c: c.update(model_args={"num_classes": 10**9})),
    "another architecture": edit_json("config.json", lambda c: c.update(architecture="vit_h_14")),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_sizes_are_refused_before_anything_is_allocated(image_export, tmp_path, case) -> None:
    folder = tampered(image_export[0], tmp_path / "absurd", ABSURD[case])
    with pytest.raises(ConfigError, match=r"(config\.json|model\.safetensors): .*export it again"):
        wb.load_exported(folder)


@pytest.mark.slow  # shares the pooled export
def test_an_absurd_transformers_config_is_refused_on_the_meta_device(pooled_export, tmp_path) -> None:
    """A config asking for ~10^12 parameters: built on the meta device, compared with the weights' header."""
    folder = tampered(pooled_export, tmp_path / "huge", edit_json("config.json", lambda c: c.update(
        n_embd=65536, n_layer=200, vocab_size=2**20, workbench_feature_size=65536)))
    with pytest.raises(ConfigError, match=r"model\.safetensors: it does not fit the transformers model"):
        wb.load_exported(folder)


# --------------------------------------------------------------- export never deletes your files
def test_export_replaces_only_what_it_wrote(image_export, tmp_path) -> None:
    _, s = image_export
    out = s.export(tmp_path / "out")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"notes\.txt \(not written by workbench\).*never deletes"):
        s.export(out)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "model.safetensors").is_file()
    (out / "notes.txt").unlink()
    (out / "README.md").write_text("my own notes on this model")
    with pytest.raises(ConfigError, match=r"README\.md \(changed since workbench wrote it\)"):
        s.export(out)
    assert (out / "README.md").read_text() == "my own notes on this model"
    (out / "README.md").unlink()
    assert s.export(out) == out  # an untouched earlier export (less a file) is replaced
    assert wb.load_exported(out).classes == s.data.classes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_a_folder_that_only_claims_to_be_an_export_is_not_deleted(image_export, tmp_path) -> None:
    _, s = image_export
    victim = tmp_path / "victim.txt"
    victim.write_text("outside")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "workbench.json").write_text(json.dumps({"format": 2, "files": {"../victim.txt": "0" * 64}}))
    s.export(fake)  # only workbench.json was there, and it is replaced
    assert victim.read_text() == "outside" and wb.load_exported(fake).classes == s.data.classes
    for meta in ({"format": 1}, "not json"):
        old = tmp_path / f"old{len(list(tmp_path.iterdir()))}"
        old.mkdir()
        (old / "workbench.json").write_text(json.dumps(meta) if isinstance(meta, dict) else meta)
        (old / "data.csv").write_text("mine")
        with pytest.raises(ConfigError, match="does not list the files workbench wrote"):
            s.export(old)
        assert (old / "data.csv").read_text() == "mine"
