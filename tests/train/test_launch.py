"""Scale out: session.to_script() run by `accelerate launch` with 2 CPU processes (gloo).

The script from a session (head only, then last(2), a small subset) finishes, writes JSON lines
and a checkpoint that Session.load opens; its valid accuracy is within 0.05 of the same script in
one process (BatchNorm statistics are per process on CPU: SyncBatchNorm needs CUDA); the two
processes trained on disjoint shards that cover each epoch; a run killed after its first
checkpoint resumes and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import workbench as wb

from helpers import assert_same_state

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 0.05  # valid accuracy, 2 processes vs 1


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WORKBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


def accelerate(script: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no"]
    cmd += ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--num_processes", "1"]
    return subprocess.run([*cmd, str(script), "--out", str(out), *extra], cwd=script.parent, capture_output=True,
                          text=True, timeout=600, env={**env(), "ACCELERATE_USE_CPU": "1"})


def epochs(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["type"] == "epoch"]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> tuple[Path, wb.Session]:
    folder = tmp_path_factory.mktemp("launch")
    data = wb.load_data("digits").subset(train=20, valid=10, seed=0)
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    s = wb.Session(data, model, batch_size=16, name="tiny")
    s.fit(1, progress=False)
    s.freeze(wb.last(2))
    s.fit(2, progress=False)
    return s.to_script(folder / "train_tiny.py"), s


def test_two_cpu_processes_match_one_and_see_disjoint_shards(script) -> None:
    path, session = script
    one, two = path.parent / "runs" / "one", path.parent / "runs" / "two"
    r1 = accelerate(path, one, 1)
    r2 = accelerate(path, two, 2, "--log-shards")
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert r2.returncode == 0, r2.stderr[-3000:]
    e1, e2 = epochs(one), epochs(two)
    assert [e["epoch"] for e in e1] == [e["epoch"] for e in e2] == [1, 2, 3]
    # one process replays the notebook's run exactly
    assert [e["valid_accuracy"] for e in e1] == [r.valid_accuracy for r in session.history]
    assert abs(e1[-1]["valid_accuracy"] - e2[-1]["valid_accuracy"]) <= TOLERANCE
    assert e1[0]["train_loss"] == pytest.approx(e2[0]["train_loss"], rel=1e-5)  # the head has no BatchNorm
    run = json.loads((two / "run.json").read_text())
    assert run["processes"] == 2 and run["global_batch_size"] == 16 and run["per_process_batch_size"] == 8
    shards = [[json.loads(line) for line in (two / f"shards-rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    for a, b in zip(*shards):
        assert a["epoch"] == b["epoch"] and not set(a["positions"]) & set(b["positions"])
        assert len(a["positions"]) + len(b["positions"]) == len(session.data.train)
    loaded = wb.Session.load(two)
    assert loaded.epoch == 3 and loaded.name == "tiny" and loaded.predictions is not None
    assert [r.valid_accuracy for r in loaded.history] == [e["valid_accuracy"] for e in e2]


def test_a_killed_run_resumes_from_its_last_checkpoint(script) -> None:
    path, _ = script
    straight, killed = path.parent / "runs" / "straight", path.parent / "runs" / "killed"
    assert accelerate(path, straight, 1).returncode == 0
    proc = subprocess.Popen([sys.executable, str(path), "--out", str(killed)], cwd=path.parent, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not ((killed / "checkpoint" / "session.json").is_file()
                                          and len(epochs(killed)) >= 1):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-run: after the first checkpoint
    proc.wait()
    done = len(epochs(killed))
    assert 1 <= done
    resumed = subprocess.run([sys.executable, str(path), "--out", str(killed), "--resume"], cwd=path.parent, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = wb.Session.load(straight), wb.Session.load(killed)
    assert b.epoch == a.epoch == 3
    assert_same_state(a.state_dict()["model"], b.state_dict()["model"])
    assert [r.valid_accuracy for r in a.history] == [r.valid_accuracy for r in b.history]


def test_to_script_refuses_what_it_cannot_write(script, tmp_path) -> None:
    _, session = script
    with pytest.raises(wb.ConfigError, match="ending in .py"):
        session.to_script(tmp_path / "train.txt")
    with pytest.raises(wb.ConfigError, match="weights='later' is not understood"):
        session.to_script(tmp_path / "t.py", weights="later")
    with pytest.raises(wb.ConfigError, match="classes"):
        session.to_script(tmp_path / "t.py", data=wb.load_data("sms-spam"))


def test_in_memory_texts_travel_with_the_script(tmp_path) -> None:
    data = wb.Data.from_texts(["good film", "bad film", "fine", "awful", "=cmd()", "great"] * 4,
                              ["pos", "neg", "pos", "neg", "neg", "pos"] * 4, valid_fraction=0.25)
    model = wb.load_backbone("minilm-l6", 2, pretrained=False, max_length=16)
    s = wb.Session(data, model, batch_size=4)
    path = s.to_script(tmp_path / "texts.py", weights="current", epochs=1)
    assert (tmp_path / "texts_data.csv").is_file() and (tmp_path / "texts_weights.safetensors").is_file()
    done = subprocess.run([sys.executable, str(path), "--out", str(tmp_path / "run")], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    back = wb.Session.load(tmp_path / "run", data=data)
    assert back.epoch == 1 and back.data.classes == data.classes


def test_run_launch_turns_cpu_processes_into_gloo() -> None:
    out = subprocess.run([str(REPO / "run"), "launch", "--cpu", "--num_processes", "2", "train.py", "--out", "x"],
                         capture_output=True, text=True, env={**os.environ, "WB_LAUNCH_DRY_RUN": "1"})
    assert out.stdout.strip() == "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train.py --out x"


def test_follow_updates_as_lines_are_appended(tmp_path) -> None:
    """wb.follow on a folder being written: new lines (even a half-written one) redraw the plots."""
    from workbench.widgets.follow import Follow

    (tmp_path / "run.json").write_text(json.dumps({"processes": 2, "global_batch_size": 16}))
    metrics = tmp_path / "metrics.jsonl"
    f = Follow(tmp_path, interval_s=60)  # refreshed by hand below
    f.stop()
    blank = f.plot.value
    record = {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "valid_loss": 0.9, "valid_accuracy": 0.6,
              "valid_macro_f1": 0.55, "lrs": {"head": 0.05}, "trainable": ["head"], "fast_path": True,
              "path_reason": "x", "epoch_time_s": 1.0, "samples_per_s": 100.0, "batches": 2, "num_batches": 2,
              "stopped": None, "batch_losses": [1.1, 0.9], "batch_lrs": [0.05, 0.05]}
    with metrics.open("a") as fh:
        fh.write(json.dumps({"type": "batch", "epoch": 1, "batch": 1, "num_batches": 2, "loss": 1.1, "lrs": [0.05],
                             "samples_per_s": 10.0, "eta_s": 1.0, "time": 0.1}) + "\n")
    assert f.refresh() and "batch 1/2" in f.status.value and f.plot.value != blank
    with metrics.open("a") as fh:
        line = json.dumps({"type": "epoch", **record, "time": 0.2}) + "\n"
        fh.write(line[:20])  # half a line: nothing yet
    assert not f.refresh() and f.run.history == []
    with metrics.open("a") as fh:
        fh.write(line[20:] + json.dumps({"type": "end", "epochs": 1}) + "\n")
    assert f.refresh() and len(f.run.history) == 1 and f.run.finished and "<td>0.600</td>" in f.table.value
    assert "finished" in f.status.value and "<td>1</td>" in f.table.value


def test_batch_size_too_small_to_split_is_refused() -> None:
    from workbench.train.distributed import Distributed

    class FakeAccelerator:
        process_index, num_processes, device = 0, 4, torch.device("cpu")

    s = wb.Session(wb.load_data("digits").subset(train=5, valid=2), wb.load_backbone(
        "timm:test_resnet", 10, pretrained=False, image_size=16), batch_size=4)
    with pytest.raises(wb.ConfigError, match="cannot be split across 4 processes"):
        Distributed(FakeAccelerator()).check(s)


def _epoch_record(epoch: int, **changes) -> dict:
    return {"type": "epoch", "epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5, "valid_loss": 0.9,
            "valid_accuracy": 0.6, "valid_macro_f1": 0.55, "lrs": {"head": 0.05}, "trainable": ["head"],
            "fast_path": True, "path_reason": "x", "epoch_time_s": 1.0, "samples_per_s": 100.0, "batches": 2,
            "num_batches": 2, "stopped": None, "batch_losses": [1.1, 0.9], "batch_lrs": [0.05, 0.05], "time": 0.2,
            **changes}


def test_a_run_log_skips_and_reports_what_is_not_a_record(tmp_path) -> None:
    """A half line followed by the resumed run's line, junk, records of the wrong shape and a corrupt
    run.json: each is skipped and named in `problems`; the records around them are kept."""
    from workbench.train.runlog import RunLog

    (tmp_path / "run.json").write_text("{not json")
    killed = json.dumps(_epoch_record(2))[:37]  # the run was killed while writing epoch 2
    lines = [json.dumps(_epoch_record(1)), killed + json.dumps(_epoch_record(2, train_loss=0.4)),  # resumed: epoch 2
             "garbage", "[1, 2]", json.dumps({"type": "batch", "epoch": "3", "batch": 1, "num_batches": 2, "loss": 1}),
             json.dumps(_epoch_record(3, lrs="fast")), json.dumps({"type": "mystery"}), b"\xff\xfe not utf-8",
             json.dumps(_epoch_record(3))]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    log = RunLog(tmp_path)
    assert log.description == {} and log.poll()
    assert [r.epoch for r in log.history] == [1, 2, 3] and log.history[1].train_loss == 0.4
    problems = "\n".join(log.problems)
    assert "run.json cannot be read" in problems and "line 2: a half-written line" in problems
    for n in (3, 4, 5, 6, 7, 8):
        assert f"line {n}: not a metrics record" in problems, problems
    # a resumed run writes the epochs after its checkpoint again: they replace the ones read before
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps(_epoch_record(2, train_loss=0.3)) + "\n")
    assert log.poll() and [r.epoch for r in log.history] == [1, 2] and log.history[1].train_loss == 0.3


def test_follow_keeps_watching_through_bad_lines(tmp_path) -> None:
    """Bad lines while following: reported on the status line, the watcher thread lives on and picks up
    the next good line and the run's end ("running" while it follows, "finished" at the end)."""
    import time

    from workbench.widgets.follow import Follow

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps(_epoch_record(1)) + "\n")
    f = Follow(tmp_path, interval_s=0.02)
    try:
        with metrics.open("a") as fh:
            fh.write("{broken\n" + json.dumps(_epoch_record(2, lrs=[1])) + "\n")
        (tmp_path / "run.json").write_text("[1, 2")
        deadline = time.monotonic() + 20
        while len(f.run.problems) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert f.following and "running" in f.status.value and "problem(s) reading the folder" in f.status.value
        with metrics.open("a") as fh:
            fh.write(json.dumps(_epoch_record(2)) + "\n" + json.dumps({"type": "end", "epochs": 2}) + "\n")
        f.wait(20)
        assert not f.following and f.run.finished and [r.epoch for r in f.run.history] == [1, 2]
        assert "finished" in f.status.value
    finally:
        f.stop()


def test_an_out_folder_with_files_workbench_did_not_write_is_refused(tmp_path) -> None:
    """--out holding someone's run.json or metrics.jsonl: refused before anything runs, the files
    untouched; a folder of a previous workbench run (resume) and an empty one are fine."""
    from workbench.train.launch import check_out_folder, run_recipe

    check_out_folder(tmp_path / "new")  # not there yet
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "run.json").write_text(json.dumps({"recipe": {}, "processes": 1}))
    (ours / "metrics.jsonl").write_text(json.dumps(_epoch_record(1)) + "\n")
    check_out_folder(ours)
    for name, text in [("run.json", '{"my": "notes"}'), ("run.json", "not json"), ("metrics.jsonl", "a,b\n1,2\n")]:
        theirs = tmp_path / f"theirs-{len(list(tmp_path.iterdir()))}"
        theirs.mkdir()
        (theirs / name).write_text(text)
        with pytest.raises(wb.ConfigError, match=rf"{name} was not written by a workbench run.*another --out"):
            run_recipe({"settings": {}}, tmp_path, theirs)
        assert (theirs / name).read_text() == text and [p.name for p in theirs.iterdir()] == [name]
