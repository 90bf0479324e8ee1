"""Generated code is always a correct literal: to_code() and to_script() with hostile strings.

Class names, run names, folder names and recordings are drawn from a hostile alphabet (quotes,
triple quotes, line breaks, backslashes, keywords, `$`, HTML, NUL-like controls, characters whose
NFKC form differs). The code must parse, hold exactly the statements its recording names (nothing
else runs), and replay: the fast tests execute it against a recorder that stands in for
workbench (every call gets exactly the recorded values back), the slow ones train a tiny model
and compare the weights bit for bit.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import workbench as wb
from helpers import assert_same_state
from workbench.errors import CheckpointError, ConfigError
from workbench.train.recording import OPS, check_recording, to_code
from workbench.train.script import render_script

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["'", '"', '"""', "'''", "\n", "\r", "\\", "\\n", "None", "class", "import os", "$", "$x$", "<b>&amp;",
           "</script>", "ﬁ", "ℌ", "①", "ｆｕｌｌ", "\u2028", "\u202e", "\x0c", "#", "{", "}", "%s", "{0}", ")", "(", "=1+1",
           ";", "\t", "é", "e\u0301", "0", "01", " "]
hostile = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=3)), min_size=1, max_size=5).map("".join)
# a folder or file name: no '/' or NUL, not hidden
path_part = hostile.map(lambda s: s.replace("/", "_").replace("\x00", "_")).filter(lambda s: s.strip() and s[0] != ".")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def recording(folder: str, classes: list[str], name: str, stopped: str, blocks: list[str]) -> list[dict]:
    """A recording as a session makes it (one entry of every op), carrying the hostile strings."""
    return [
        {"op": "session", "data": [
            {"call": "wb.Data.from_folder", "args": [folder], "kwargs": {"valid_fraction": 0.25, "seed": 0}},
            {"call": "subset", "kwargs": {"train": {c: 2 for c in classes}, "valid": None, "seed": 1}},
            {"call": "with_label_noise", "kwargs": {"fraction": 0.1, "seed": 2}}],
         "data_name": name, "model": {"call": "wb.load_backbone", "args": ["resnet18", len(classes)],
                                      "kwargs": {"pretrained": False, "image_size": 16, "seed": 0}},
         "model_name": name, "freeze": blocks, "settings": {"lr": 0.01, "optimizer": "sgd", "batch_size": 8}},
        {"op": "configure", "settings": {"schedule": {"name": "cosine"}, "label_smoothing": 0.1}},
        {"op": "fit", "epochs": 2, "stop_after": 3, "closed": True, "stopped": stopped},
        {"op": "freeze", "spec": {"kind": "progressive", "n": 0, "every": 2, "start": 1}},
        {"op": "find_lr", "start": 1e-7, "end": 10.0, "steps": 20},
        {"op": "fit_head", "C": -0.5},
        {"op": "freeze", "spec": blocks},
        {"op": "relabel", "labels": [[3, classes[0]], [0, classes[-1]]]},
        {"op": "sweep", "name": name, "space": {"lr": {"low": 1e-4, "high": 1.0, "log": True, "int": False},
                                                "optimizer": {"choices": ["adamw", "sgd"]}},
         "trials": 4, "epochs": 2, "metric": "valid_accuracy", "pruner": "median", "sampler": "tpe", "seed": 0,
         "startup_trials": 2, "warmup_epochs": 1, "trial": 2, "state": stopped, "params": {"lr": 0.01, "optimizer": "sgd"},
         "steps": [{"op": "configure", "settings": {"lr": 0.01, "optimizer": "sgd"}}, {"op": "fit", "epochs": 2}]},
        {"op": "distil", "model": {"call": "wb.load_backbone", "args": ["resnet18", len(classes)],
                                   "kwargs": {"pretrained": False, "image_size": 16, "depth": 2}},
         "model_name": name, "temperature": 2.0, "alpha": 0.5, "epochs": 2, "freeze": "full", "name": name,
         "settings": {"lr": 0.001}, "stop_at": [2, 3], "stopped": stopped, "data_name": name,
         "data": [{"call": "wb.Data.from_folder", "args": [folder + "2"], "kwargs": {"valid_fraction": 0.5, "seed": 3}},
                  {"call": "subset", "kwargs": {"train": {c: 4 for c in classes}, "valid": None, "seed": 4}}]},
        {"op": "fit", "epochs": 1},
    ]


def statements(rec: list[dict]) -> int:
    """The import, data / model / session, one statement per entry (two for a sweep and its adoption,
    two for a distillation's student and its run, three with its own data)."""
    return 1 + 3 + sum(2 + ("data_name" in e) if e["op"] in ("sweep", "distil") else 1 for e in rec[1:])


class Recorder:
    """Stands in for `wb`, `data`, `model` and `session`: every call is noted with its arguments."""

    def __init__(self, calls: list, name: str = "wb") -> None:
        self._calls, self._name = calls, name

    def __getattr__(self, attr: str) -> Recorder:
        return Recorder(self._calls, f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs) -> Recorder:
        self._calls.append((self._name, args, kwargs))
        return Recorder(self._calls, {"wb.Session": "session", "wb.load_backbone": "model", "().adopt": "session"}.get(self._name, "()"))


def run_with_recorder(code: str) -> list:
    calls: list = []
    tree = ast.parse(code)
    assert isinstance(tree.body[0], ast.Import) and tree.body[0].names[0].name == "workbench"
    namespace = {"wb": Recorder(calls)}
    exec(compile(ast.Module(tree.body[1:], []), "<to_code>", "exec"), namespace)  # noqa: S102 - the code under test
    return calls


@FAST
@given(folder=path_part, classes=st.lists(hostile, min_size=2, max_size=3, unique=True), name=hostile, stopped=hostile,
       blocks=st.lists(hostile, min_size=1, max_size=2))
def test_to_code_writes_hostile_strings_as_literals_only(folder, classes, name, stopped, blocks) -> None:
    rec = recording(folder, classes, name, stopped, blocks)
    code = to_code(rec)
    tree = ast.parse(code)
    assert len(tree.body) == statements(rec)
    allowed = set().union(*(OPS[e["op"]].calls for e in rec))
    names = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert all(ast.unparse(f).split("(")[0] in allowed or isinstance(f, ast.Attribute) and f.attr in ("subset", "with_label_noise") for f in names)
    calls = run_with_recorder(code)  # "replay": every call receives exactly the recorded values
    assert calls[0] == ("wb.Data.from_folder", (folder,), {"valid_fraction": 0.25})
    assert calls[1] == ("().subset", (), {"train": {c: 2 for c in classes}, "seed": 1})
    assert calls[2] == ("().with_label_noise", (), {"fraction": 0.1, "seed": 2})
    assert calls[3][0] == "wb.load_backbone" and calls[3][1][0] == "resnet18"
    session = [c for c in calls if c[0] == "wb.Session"][0]
    assert session[2]["freeze"] == blocks and session[2]["lr"] == 0.01
    assert ("session.fit", (2,), {"stop_after": 3}) in calls and ("session.fit_head", (), {"C": -0.5}) in calls
    assert ("session.freeze", (blocks,), {}) in calls
    assert ("session.relabel", ({3: classes[0], 0: classes[-1]},), {}) in calls
    sweep = [c for c in calls if c[0] == "wb.sweep"][0]
    assert sweep[2]["name"] == name and sweep[2]["trials"] == 3 and sweep[2]["space"] == rec[-3]["space"]
    assert ("().adopt", (2,), {}) in calls
    student = [c for c in calls if c[0] == "wb.load_backbone"][1]
    assert student[1][0] == "resnet18" and student[2]["depth"] == 2
    distil = [c for c in calls if c[0] == "session.distil"][0]
    assert distil[2]["name"] == name and distil[2]["stop_at"] == (2, 3) and distil[2]["lr"] == 0.001
    assert "data" in distil[2]  # the transfer set, built just before it from its own recipe:
    assert ("wb.Data.from_folder", (folder + "2",), {"valid_fraction": 0.5, "seed": 3}) in calls
    assert ("().subset", (), {"train": {c: 4 for c in classes}, "seed": 4}) in calls
    assert ("wb.progressive", (), {"every": 2, "start": 1}) in calls


json_value = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_subnormal=False) | hostile,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile, inner, max_size=3), max_leaves=8)


@FAST
@given(index=st.integers(0, 10), key=st.one_of(hostile, st.sampled_from(["epochs", "op", "settings", "spec", "data"])),
       value=json_value)
def test_a_hostile_recording_is_refused_or_written_as_literals(index, key, value) -> None:
    """Any field of any entry replaced by any JSON value: a CheckpointError, or code as checked above."""
    rec = recording("/data", ["a", "b"], "run", "stopped", ["layer4"])
    rec[index] = {**rec[index], key: value}
    try:
        code = to_code(rec)
    except CheckpointError:
        return
    tree = ast.parse(code)
    assert len(tree.body) == statements(rec)
    run_with_recorder(code)


INJECTIONS = [
    (2, {"epochs": "1)\nprint('INJECTED')\n#"}, "epochs"),
    (2, {"epochs": 1.5}, "epochs"),
    (0, {"settings": {"lr": 0.1, "__import__('os')": 1}}, "not a setting"),
    (0, {"settings": {"lr": "0.1); import os; (1"}}, "refuses"),
    (1, {"settings": {"optimizer": "nope"}}, "refuses"),
    (4, {"op": "exec"}, "known ops"),
    (4, {"code": "print(1)"}, "unknown field"),
    (0, {"data": [{"call": "os.system", "args": ["echo"]}]}, "can only be a loader"),
    (0, {"data": [{"call": "wb.load_data", "args": ["digits"], "kwargs": {"evil": 1}}]}, "does not take"),
    (0, {"model": {"call": "exec", "args": ["print(1)", 2]}}, "load_backbone call"),
    (0, {"model": {"call": "wb.load_backbone", "args": ["resnet18", 2], "kwargs": {"trust_remote_code": True}}},
     "does not take"),
    (0, {"freeze": {"kind": "exec", "n": 1}}, "freeze"),
    (3, {"spec": {"kind": "last", "n": "2); import os; (1"}}, "whole number"),
    (5, {"C": float("nan")}, "finite"),
    (1, {"op": "session"}, "only starts"),
]


@pytest.mark.parametrize("index, change, message", INJECTIONS)
def test_hostile_recordings_in_a_checkpoint_are_refused(tmp_path, index, change, message) -> None:
    """Edited into session.json: Session.load / wb.compare / to_code never see it (CheckpointError)."""
    rec = recording("/data", ["a", "b"], "run", "stopped", ["layer4"])
    rec[index] = {**rec[index], **change}
    with pytest.raises(CheckpointError, match=message):
        check_recording(rec, "session.json")
    with pytest.raises(CheckpointError, match=message):
        to_code(rec)


def test_a_checkpoint_with_an_injected_recording_does_not_load(tmp_path) -> None:
    data = wb.load_data("digits").subset(train=4, valid=2, seed=0)
    s = wb.Session(data, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), seed=0)
    s.save(tmp_path / "run.wb")
    meta_file = tmp_path / "run.wb" / "session.json"
    meta = json.loads(meta_file.read_text())
    meta["recording"].append({"op": "fit", "epochs": "1)\nprint('INJECTED')\n#"})
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"session\.json was edited or is damaged.*epochs"):
        wb.Session.load(tmp_path / "run.wb")
    with pytest.raises(CheckpointError, match=r"session\.json"):
        wb.compare(str(tmp_path / "run.wb"))


def test_numpy_values_become_plain_literals_and_save(tmp_path) -> None:
    """numpy ints and floats in settings, subsets and backbone options: plain Python numbers in the
    recording, in session.json and in the code (no `np.int64(...)`, which would not run)."""
    data = wb.load_data("digits").subset(train={"0": np.int64(2), **{str(c): 2 for c in range(1, 10)}},
                                         valid=np.int32(2), seed=np.int64(1))
    model = wb.load_backbone("resnet18", np.int64(10), pretrained=False, image_size=np.int64(16))
    s = wb.Session(data, model, batch_size=np.int64(8), lr=np.float32(0.01), seed=np.int64(0))
    s.configure(label_smoothing=np.float64(0.1))
    s.freeze(wb.last(np.int64(1)))
    s.freeze([np.str_(b) for b in s.trainable])
    code = s.to_code()
    assert "np." not in code and "int64" not in code
    ast.parse(code)
    s.save(tmp_path / "np.wb")
    again = wb.Session.load(tmp_path / "np.wb")
    assert again.to_code() == code


# ----------------------------------------------------------------------------------- to_script
TEMPLATE_CALLS = ["argparse.ArgumentParser", *["parser.add_argument"] * 6, "parser.parse_args", "run_recipe"]


@FAST
@given(title=hostile, name=st.one_of(st.none(), hostile), file=path_part, out=path_part,
       recipe=st.dictionaries(hostile, json_value.filter(lambda v: "nan" not in repr(v) and "inf" not in repr(v)),
                              max_size=4))
def test_to_script_writes_hostile_strings_as_literals_or_comments(title, name, file, out, recipe, tmp_path_factory) -> None:
    text = render_script(title, name, file + ".py", out, 16, recipe)
    tree = ast.parse(text)
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert sorted(calls) == sorted(TEMPLATE_CALLS)
    assert [type(s).__name__ for s in tree.body] == ["Expr", "Import", "ImportFrom", "Assign", "Assign", "Assign", "If"]
    namespace: dict = {"__name__": "not_main"}
    exec(compile(tree, "<script>", "exec"), namespace)  # noqa: S102 - imports and the three literals only
    assert namespace["TITLE"] == title and namespace["OUT"] == out and namespace["RECIPE"] == recipe
    assert all(line.startswith("#") for line in text.split('"""')[0].splitlines())  # the header: comments only


def test_to_script_refuses_a_value_that_is_not_a_literal() -> None:
    with pytest.raises(ConfigError, match="finite numbers"):
        render_script("t", "n", "t.py", "runs/t", 16, {"lr": float("nan")})


@pytest.fixture(scope="module")
def text_model():
    return wb.load_backbone("minilm-l6", 2, pretrained=False, max_length=8)


@pytest.mark.slow  # builds minilm-l6 (random init) once: ~15 s
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=st.lists(hostile, min_size=4, max_size=8), name=hostile, stem=path_part)
def test_in_memory_texts_and_labels_round_trip_through_the_script_csv(tmp_path_factory, text_model, texts, name,
                                                                      stem) -> None:
    """Labels "01" / "02" stay strings, and so does every text (quotes, line breaks, numbers)."""
    from workbench.train.launch import build_data

    labels = ["01", "02"] * (len(texts) // 2) + ["01"] * (len(texts) % 2)
    data = wb.Data.from_texts(texts, labels, valid=(texts[:2], labels[:2]), name=name)
    s = wb.Session(data, text_model, seed=0)
    folder = tmp_path_factory.mktemp("script")
    path = s.to_script(folder / f"{stem}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    recipe = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "RECIPE"))
    back = build_data(recipe, folder)
    assert back.classes == data.classes == ["01", "02"] and back.name == name
    for split in ("train", "valid"):
        assert getattr(back, split).texts == getattr(data, split).texts
        assert list(getattr(back, split).labels) == list(getattr(data, split).labels)


def test_to_script_never_overwrites_a_file_it_did_not_write(tmp_path) -> None:
    data = wb.load_data("digits").subset(train=4, valid=2, seed=0)
    s = wb.Session(data, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), seed=0)
    mine = tmp_path / "train.py"
    mine.write_text("print('my own script')\n")
    with pytest.raises(ConfigError, match="not a script workbench wrote"):
        s.to_script(mine)
    assert mine.read_text() == "print('my own script')\n"
    ours = s.to_script(tmp_path / "ours.py")
    assert s.to_script(ours) == ours  # its own script it replaces
    (tmp_path / "w_weights.safetensors").write_text("mine")
    with pytest.raises(ConfigError, match="w_weights.safetensors.*never overwrites"):
        s.to_script(tmp_path / "w.py", weights="current")
    assert (tmp_path / "w_weights.safetensors").read_text() == "mine"


# ------------------------------------------------------------------------- replays, bit for bit
def image_folder(root: Path, classes: list[str]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def run_cell(code: str, cwd: Path) -> dict:
    save = ("\nimport torch\ntorch.save({'model': session.model.module.state_dict(), "
            "'history': [r.to_dict() for r in session.history], 'recording': session.recording}, 'replayed.pt')\n")
    prelude = f"import torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
    out = subprocess.run([sys.executable, "-c", prelude + code + save], cwd=cwd, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "INJECTED" not in out.stdout, f"{code}\n{out.stderr[-3000:]}"
    return torch.load(cwd / "replayed.pt", weights_only=False)


@pytest.mark.slow  # fresh interpreters train the cell and the script: ~40 s an example
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(folder=path_part, classes=st.lists(path_part, min_size=2, max_size=2, unique=True), name=hostile,
       launch=st.just(False))
@example(folder='x"""\n\\ None $', classes=["class", "ﬁsh <b>&amp;"], name='"""\nprint("INJECTED")\n"""', launch=True)
def test_hostile_names_replay_bit_for_bit(tmp_path_factory, folder, classes, name, launch) -> None:
    """A folder and class names from the hostile alphabet, a subset keyed by class name, a run name:
    the cell rebuilds the data from the folder and the weights and history come out identical; the
    script runs the same epochs."""
    tmp = tmp_path_factory.mktemp("replay")
    try:
        data = wb.Data.from_folder(image_folder(tmp / folder, classes))
    except wb.DataError:
        assume(False)  # names the folder reader refuses (e.g. two that are one name in NFC)
    data = data.subset(train={c: 3 for c in data.classes}, seed=1)
    s = wb.Session(data, wb.load_backbone("resnet18", 2, pretrained=False, image_size=16), batch_size=4, seed=0,
                   optimizer="sgd", lr=0.05, name=name)
    s.fit(1, progress=False)
    s.freeze([b for b in s.trainable])
    s.fit(1, progress=False)
    code = s.to_code()
    assert "..." not in code
    got = run_cell(code, tmp)
    assert_same_state(s.model.module.state_dict(), got["model"], "weights")
    timing = ("epoch_time_s", "samples_per_s")
    assert [{k: v for k, v in r.to_dict().items() if k not in timing} for r in s.history] == \
        [{k: v for k, v in r.items() if k not in timing} for r in got["history"]]
    script = s.to_script(tmp / f"{folder}.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    for args in (["--help"], ["--out", str(tmp / "run")])[:2 if launch else 1]:  # one example trains it too
        done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, cwd=tmp,
                              env=env)
        assert done.returncode == 0 and "INJECTED" not in done.stdout + done.stderr, done.stderr[-3000:]
    if launch:
        lines = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
        assert [e["valid_loss"] for e in lines if e["type"] == "epoch"] == [r.valid_loss for r in s.history]
