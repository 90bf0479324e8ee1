"""Faults anywhere in an epoch keep one invariant (searched with Hypothesis, not only examples).

After any exception leaves step()/fit(), the weights (BatchNorm statistics included), optimizer
state, history, global_step and predictions agree: either the epoch is recorded as stopped with
the steps it took, or everything is exactly as before it. Faults are injected by forward hooks
(so BatchNorm layers before the fault have already updated their statistics) at a drawn batch of
the train pass, of the valid pass, or of the feature-cache build: out of memory, the notebook's
Interrupt (KeyboardInterrupt) and a data error. A fault-free twin gives the weights after every
step to compare with.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import workbench as wb
from workbench.errors import DataError, TrainingError

from helpers import assert_same_state

BATCH = 32
FAULTS = {
    "oom": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "interrupt": KeyboardInterrupt,
    "data": lambda: DataError("image file 'cats/7.jpg' could not be read (OSError: image file is truncated)."),
}


PLANS = {"full": "full", "head": "head", "progressive": wb.progressive(every=1)}  # progressive: epoch 2 unfreezes layer4


def make(data, freeze: str) -> wb.Session:
    model = wb.load_backbone("timm:test_resnet", 10, pretrained=False, image_size=16)
    return wb.Session(data, model, optimizer="adam", batch_size=BATCH, freeze=PLANS[freeze], seed=1)


def params_and_buffers(s: wb.Session) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in s.model.module.state_dict().items()}


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=20, valid=6, seed=0)  # 200 train (7 batches), 60 valid


@pytest.fixture(scope="module")
def reference(data):
    """For each freeze plan: the state before epoch 2 and the weights after each step of epoch 2."""
    out = {}
    for freeze in PLANS:
        s = make(data, freeze)
        s.step()
        before = s.state_dict()
        steps: list[dict[str, torch.Tensor]] = []
        original = s.optimizer.step
        s.optimizer.step = lambda *a, **k: (original(*a, **k), steps.append(params_and_buffers(s)))[0]
        s.step()
        out[freeze] = (before, steps, params_and_buffers(s))
    return out


class Inject:
    """A forward hook that raises `fault` on the `at`-th call in the matching mode (train or eval;
    in eval mode the feature-cache build and the valid pass both count)."""

    def __init__(self, module: torch.nn.Module, fault, at: int, training: bool) -> None:
        self.fault, self.at, self.training, self.calls = fault, at, training, 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        if module.training == self.training:
            self.calls += 1
            if self.calls == self.at:
                raise self.fault()


def resumed(data, freeze: str, state) -> wb.Session:
    s = make(data, freeze)
    s.load_state_dict(state)
    return s


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(FAULTS)), freeze=st.sampled_from(sorted(PLANS)),
       phase=st.sampled_from(["train", "valid", "cache"]), at=st.integers(1, 7))
def test_any_fault_keeps_the_invariant(data, reference, kind, freeze, phase, at) -> None:
    before, steps, _ = reference[freeze]
    s = resumed(data, freeze, before)
    if phase == "cache":
        if freeze != "head":
            return  # only the head-only plan builds a feature cache
        target, training = s.model.module.get_submodule("layer4"), False  # the body, in eval mode
    else:
        target = s.model.head if freeze != "full" else s.model.module.get_submodule("layer3")
        training = phase == "train"
    at = min(at, 2) if phase != "train" else at  # the valid pass has 1 batch of 60; the cache 4 and 1
    inject = Inject(target, FAULTS[kind], at, training)
    error: BaseException | None = None
    try:
        s.step()
    except wb.WorkbenchError as exc:
        error = exc
    inject.handle.remove()
    after = s.state_dict()
    if inject.calls < at:  # the drawn call never came (e.g. a valid pass of one batch)
        assert error is None and s.history[-1].completed
        return
    if kind == "interrupt":
        assert error is None  # Interrupt is a stop, not an error
    else:
        assert isinstance(error, DataError if kind == "data" else TrainingError), error
        if kind == "oom":
            assert "out of memory" in str(error) and ("batch_size=16" in str(error) or "eval_batch_size=" in str(error))
    assert s.global_step == sum(r.batches for r in s.history)
    if len(s.history) == len(before["history"]):  # no step taken: everything as before
        assert_same_state(before, after)
        return
    r = s.history[-1]
    assert r.stopped and r.epoch == len(before["history"]) + 1
    expected = steps[r.batches - 1]  # the weights after the last step the epoch took
    assert_same_state(expected, params_and_buffers(s))
    if r.valid_loss is None:  # not evaluated: the predictions are those of before
        assert_same_state(before["predictions"], after["predictions"])
    assert r.batches == len(r.batch_losses) == len(r.batch_lrs)


def test_out_of_memory_deep_in_a_full_forward_restores_batchnorm(data, reference) -> None:
    before, steps, _ = reference["full"]
    s = resumed(data, "full", before)
    Inject(s.model.module.get_submodule("layer3"), FAULTS["oom"], 3, True)
    with pytest.raises(TrainingError, match=r"out of memory at batch 3/7 of epoch 2.*batch_size=16"):
        s.step()
    r = s.history[-1]
    assert r.batches == 2 and r.stopped.startswith("out of memory at batch 3/")
    assert_same_state(steps[1], params_and_buffers(s))  # BatchNorm statistics of batch 3 given back


def test_out_of_memory_in_the_valid_pass_keeps_the_trained_epoch(data, reference) -> None:
    before, steps, trained = reference["full"]
    s = resumed(data, "full", before)
    Inject(s.model.head, FAULTS["oom"], 1, False)
    with pytest.raises(TrainingError, match=r"out of memory in the validation pass.*eval_batch_size="):
        s.step()
    r = s.history[-1]
    assert r.batches == r.num_batches and r.valid_loss is None and "validation pass" in r.stopped
    assert_same_state(trained, params_and_buffers(s))
    assert s.predictions.epoch == 1  # still the last evaluated epoch's
    assert s.step().completed  # and the next epoch runs


def test_a_fault_in_the_cache_build_changes_nothing(data, reference) -> None:
    before, _, _ = reference["head"]
    s = resumed(data, "head", before)
    Inject(s.model.module.get_submodule("layer2"), FAULTS["oom"], 1, False)
    with pytest.raises(TrainingError, match=r"feature-cache build.*Nothing was trained.*eval_batch_size=16"):
        s.step()
    assert_same_state(before, s.state_dict())


def test_keyboard_interrupt_at_batch_3_stops_like_stop(data, reference) -> None:
    before, steps, _ = reference["full"]
    s = resumed(data, "full", before)
    Inject(s.model.module.get_submodule("layer3"), FAULTS["interrupt"], 3, True)
    results = s.fit(3)
    assert len(results) == 1 and results[0].batches == 2 and "interrupted" in results[0].stopped
    assert_same_state(steps[1], params_and_buffers(s))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_the_interrupt_button_stops_after_the_current_batch(data, reference) -> None:
    """SIGINT (what Jupyter's Interrupt button sends) while fit runs in the main thread: the
    loop finishes its batch and stops, recording the steps; the SIGINT handler is put back."""
    before, steps, _ = reference["full"]
    s = resumed(data, "full", before)
    previous = signal.getsignal(signal.SIGINT)
    s.on("batch_end", lambda b: os.kill(os.getpid(), signal.SIGINT) if b.batch == 2 else None)
    s.events.batch_interval_s = 0.0
    results = s.fit(2)
    assert len(results) == 1 and results[0].stopped.startswith("interrupted (Interrupt button")
    assert 2 <= results[0].batches < results[0].num_batches
    assert_same_state(steps[results[0].batches - 1], params_and_buffers(s))
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_file_truncated_after_the_folder_check_is_named(tmp_path) -> None:
    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.new("RGB", (24, 24), (40 * i, 100 if c == "cats" else 200, 0)).save(tmp_path / c / f"{i}.jpg")
    data = wb.Data.from_folder(tmp_path, valid_fraction=0.25)
    whole = (tmp_path / "dogs" / "3.jpg").read_bytes()  # the file breaks after the folder was read
    (tmp_path / "dogs" / "3.jpg").write_bytes(whole[: len(whole) // 2])
    model = wb.load_backbone("timm:test_resnet", 2, pretrained=False, image_size=16)
    s = wb.Session(data, model, batch_size=4)
    before = s.state_dict()
    with pytest.raises(DataError, match=r"dogs/3\.jpg"):
        s.step()
    assert_same_state(before, s.state_dict())


@pytest.mark.parametrize("fault", [
    lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    lambda: MemoryError(),  # Python's own, e.g. numpy on the host
    lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried "
                         "to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)"),
], ids=["cuda", "MemoryError", "cpu allocator"])
def test_running_out_of_memory_while_caching_features_says_what_to_change(data, reference, fault) -> None:
    """GPU or host memory: the message says memory, and names the three changes that need less of it."""
    before, _, _ = reference["head"]
    s = resumed(data, "head", before)
    errors = []
    s.on("error", errors.append)
    hook = Inject(s.model.module.get_submodule("layer2"), fault, 1, False)
    with pytest.raises(TrainingError) as info:
        s.step()
    message = str(info.value)
    assert message.startswith("Ran out of memory (out of memory in the feature-cache build of epoch 2)")
    for change in ("session.configure(eval_batch_size=16)", "image_size=", "data.subset(train=..., valid=...)",
                   "Nothing was trained or changed"):
        assert change in message, message
    assert errors and errors[0].message == message  # what the widget shows
    assert_same_state(before, s.state_dict())
    hook.handle.remove()
    assert s.step().completed


@pytest.mark.parametrize("freeze", ["head", "full"])
def test_a_truncated_jpeg_is_named_at_load_or_at_the_first_fit(tmp_path, freeze) -> None:
    """A JPEG cut in its header is refused when the folder is read; one cut in its image data passes
    PIL's header check, and the first fit names the file and the fix with nothing trained (the cache
    build, or the batch that holds it)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.jpg")
    whole = (tmp_path / "dogs" / "3.jpg").read_bytes()
    (tmp_path / "dogs" / "3.jpg").write_bytes(whole[:200])  # inside the header
    with pytest.raises(DataError, match=r"'dogs/3\.jpg' \(.*\)\. Delete or replace the bad file"):
        wb.Data.from_folder(tmp_path, valid_fraction=0.25)
    (tmp_path / "dogs" / "3.jpg").write_bytes(whole[: len(whole) * 3 // 4])  # inside the image data
    data = wb.Data.from_folder(tmp_path, valid_fraction=0.25)
    s = wb.Session(data, wb.load_backbone("timm:test_resnet", 2, pretrained=False, image_size=16), batch_size=16,
                   freeze=freeze)
    before = s.state_dict()
    with pytest.raises(DataError) as info:
        s.step()
    message = str(info.value)
    assert "dogs/3.jpg" in message and "truncated" in message and "Replace or delete the file" in message
    assert ".." not in message.replace("...", "")
    assert_same_state(before, s.state_dict())  # one batch of 16 holds every train sample: no step was taken
