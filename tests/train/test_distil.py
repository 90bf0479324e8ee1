"""Knowledge distillation: the loss against a hand computation, what the teacher sees, the student
as a Session, the report's numbers, bad inputs refused before anything changes, and to_code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from helpers import assert_same_state, weights
from workbench.models import ImagePreprocess
from workbench.train import runs
from workbench.train.distil import distillation_loss, pixel_converter, soft_kl, split_logits


@pytest.fixture(scope="module")
def data():
    return wb.load_data("digits").subset(train=12, valid=6, seed=1)


def tiny(data, name: str = "timm:test_efficientnet", size: int = 16, seed: int = 0):
    return wb.load_backbone(name, data.num_classes, pretrained=False, image_size=size, seed=seed)


@pytest.fixture(scope="module")
def teacher(data):
    t = wb.Session(data, tiny(data, "timm:test_resnet"), freeze="full", batch_size=32, seed=3, name="teacher")
    t.fit(1, progress=False)
    return t


# ---- the loss -----------------------------------------------------------------------------------
def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_loss_matches_a_hand_computation() -> None:
    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = np.array([[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]])
    y = np.array([0, 2])
    T, alpha = 3.0, 0.25
    ps, pt = _softmax(s / T), _softmax(t / T)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(axis=1)
    ce = -np.log(_softmax(s)[np.arange(2), y])
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    # the ends: alpha=0 is the plain loss, alpha=1 the soft term alone; equal logits cost no KL
    np.testing.assert_allclose(distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, 0.0).numpy(), ce,
                               rtol=1e-5)
    np.testing.assert_allclose(distillation_loss(torch.tensor(s), torch.tensor(s), torch.tensor(y), T, 1.0).numpy(),
                               [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(soft_kl(t, s, T), kl, rtol=1e-9)


def test_loss_uses_the_students_own_criterion() -> None:
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    hard = lambda logits, labels: torch.full((len(labels),), 2.0)  # noqa: E731
    expected = 0.5 * torch.from_numpy(soft_kl(t.numpy(), s.numpy())).float() + 0.5 * 2.0
    torch.testing.assert_close(distillation_loss(s, t, y, 1.0, 0.5, hard), expected, rtol=1e-5, atol=1e-5)


def test_pixels_reach_the_teacher_as_it_prepares_them() -> None:
    src = ImagePreprocess(size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    dst = ImagePreprocess(size=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pixels = torch.randint(0, 256, (2, 3, 8, 8)).float()
    x = (pixels - 0.5 * 255) / (0.25 * 255)
    assert pixel_converter(src, src)(x) is x
    resized = torch.nn.functional.interpolate(pixels, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(dst.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(dst.std).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(pixel_converter(src, dst)(x), (resized - mean) / std, rtol=1e-5, atol=1e-4)


# ---- the run ------------------------------------------------------------------------------------
def test_alpha_zero_is_plain_training_and_the_teacher_is_untouched(data, teacher) -> None:
    before = weights(teacher.model.module)
    modes = [m.training for m in teacher.model.module.modules()]
    history = [r.to_dict() for r in teacher.history]
    d = teacher.distil(tiny(data), alpha=0.0, epochs=1, progress=False)
    plain = wb.Session(data, tiny(data), freeze="full", batch_size=32, seed=3, epochs=1)
    plain.fit(1, progress=False)
    assert_same_state(weights(d.student.model.module), weights(plain.model.module))
    assert_same_state(weights(teacher.model.module), before)
    assert [m.training for m in teacher.model.module.modules()] == modes
    assert [r.to_dict() for r in teacher.history] == history and not teacher.running


def test_alpha_zero_with_augmentation_draws_the_same_crops(data, teacher) -> None:
    """The teacher reading every augmented batch consumes no random numbers: alpha=0 is plain training."""
    aug = dict(rotation=10.0, crop=True)
    d = teacher.distil(tiny(data, size=8), alpha=0.0, epochs=1, progress=False, augment=aug)
    plain = wb.Session(data, tiny(data, size=8), freeze="full", batch_size=32, seed=3, epochs=1, augment=aug)
    plain.fit(1, progress=False)
    assert_same_state(weights(d.student.model.module), weights(plain.model.module))


def test_the_teacher_changes_what_the_student_learns(data, teacher) -> None:
    a = teacher.distil(tiny(data), alpha=0.0, epochs=1, progress=False)
    b = teacher.distil(tiny(data), alpha=0.9, temperature=2.0, epochs=1, progress=False)
    assert not torch.equal(next(a.student.model.module.parameters()), next(b.student.model.module.parameters()))
    assert a.student.history[-1].train_loss != b.student.history[-1].train_loss


def test_report_numbers_agree_with_the_logits(data, teacher) -> None:
    d = teacher.distil(tiny(data, size=8), epochs=1, progress=False, augment=dict(rotation=10.0))
    r = d.report
    t = split_logits(teacher, "valid").numpy()
    s = split_logits(d.student, "valid").numpy()
    np.testing.assert_allclose(r.teacher_logits, t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.student_logits, s, rtol=1e-5, atol=1e-5)
    y = data.valid.labels
    assert d.student_accuracy == pytest.approx(float((s.argmax(1) == y).mean()))
    assert d.teacher_accuracy == pytest.approx(float((t.argmax(1) == y).mean()))
    assert d.agreement == pytest.approx(float((s.argmax(1) == t.argmax(1)).mean()))
    assert d.kl == pytest.approx(float(soft_kl(t, s).mean()), rel=1e-6) and d.kl >= 0
    assert d.student_params == sum(p.numel() for p in d.student.model.module.parameters())
    assert d.teacher_latency_ms > 0 and d.student_latency_ms > 0
    kinds = [set(d.disagreements(k).tolist()) for k in ("teacher_right", "student_right", "both_wrong")]
    assert set().union(*kinds) == set(d.disagreements().tolist())
    assert sum(len(k) for k in kinds) == len(d.disagreements())
    assert len(d.disagreements()) == round((1 - d.agreement) * len(y))
    table = d.table()
    assert list(table.index) == ["teacher", "student"] and table.loc["student", "accuracy"] == d.student_accuracy


def test_student_is_a_run_of_its_own(data, teacher) -> None:
    d = teacher.distil(tiny(data), epochs=1, progress=False, name="small one")
    assert d.student in runs.runs() and d.student.name == "small one"
    assert len(d.student.history) == 1 and d.student.predictions is not None
    c = wb.compare(teacher, d.student)
    assert c.names == ["teacher", "small one"]
    d.student.fit(1, progress=False)  # afterwards it trains on its own labels, as any session
    assert d.student.recording[-1] == {"op": "fit", "epochs": 1}


def test_stop_at_stops_the_student_there(data, teacher) -> None:
    d = teacher.distil(tiny(data), epochs=2, progress=False, batch_size=4, stop_at=(2, 1))
    assert len(d.student.history) == 2 and d.student.history[-1].batches == 1
    entry = d.student.recording[-1]
    assert entry["op"] == "distil" and entry["stop_at"] == [2, 1] and entry["epochs"] == 2


# ---- a transfer set: the student's own data ----------------------------------------------------------
def test_a_student_trains_and_is_measured_on_its_own_data(data, teacher) -> None:
    """distil(data=more): the teacher's logits on `more`'s samples (prepared its own way: 16 px here,
    the student reads 8 px), the student's run on `more`, and the report on `more`'s valid split."""
    more = wb.load_data("digits").subset(train=30, valid=9, seed=2)
    before = teacher.state_dict()
    d = teacher.distil(tiny(more, size=8), data=more, alpha=1.0, temperature=2.0, epochs=1, progress=False)
    assert d.student.data is more and len(d.student.history) == 1
    teacher_on_more = wb.Session(more, teacher.model, freeze="full", batch_size=32)  # the teacher's model, other data
    expected = split_logits(teacher_on_more, "valid").numpy()
    np.testing.assert_allclose(d.report.teacher_logits, expected, rtol=1e-5, atol=1e-5)
    assert d.report.teacher_logits.shape[0] == len(more.valid) != len(data.valid)
    np.testing.assert_array_equal(d.report.labels, more.valid.labels)
    train_logits = split_logits(teacher_on_more, "train")  # what the student learnt from, sample by sample
    signal_rows = d.student.recording[-1]
    assert signal_rows["data_name"] == more.name and signal_rows["data"] == more.recipe
    assert train_logits.shape == (len(more.train), data.num_classes)
    assert_same_state(teacher.state_dict(), before)  # the teacher is untouched


def test_alpha_one_never_reads_the_transfer_sets_labels(data, teacher) -> None:
    """With alpha=1 the loss is the soft term alone: relabelling every train sample changes nothing."""
    more = wb.load_data("digits").subset(train=20, valid=6, seed=4)
    shuffled = more.with_label_noise(1.0, seed=0)
    assert (shuffled.train.labels != more.train.labels).any()
    a = teacher.distil(tiny(more, size=8), data=more, alpha=1.0, epochs=1, progress=False, seed=5)
    b = teacher.distil(tiny(shuffled, size=8), data=shuffled, alpha=1.0, epochs=1, progress=False, seed=5)
    assert_same_state(a.student.model.module.state_dict(), b.student.model.module.state_dict())


def test_transfer_data_of_another_kind_or_classes_is_refused(data, teacher) -> None:
    before, listed = teacher.state_dict(), list(runs.runs())
    texts = wb.load_data("sms-spam").subset(train=5, valid=5, seed=0)
    mnist = wb.load_data("mnist-5k").subset(train=2, valid=2, seed=0)
    three = wb.Data.from_arrays(np.zeros((12, 8, 8), np.uint8), [0, 1, 2] * 4, classes=["a", "b", "c"], valid_fraction=0.5)
    for bad, words in [(texts, "holds texts but the teacher"), (three, "classes"), ("digits", "must be a wb.Data")]:
        with pytest.raises(wb.ConfigError, match=words):
            teacher.distil(tiny(data), data=bad, progress=False)
    if list(mnist.classes) != list(data.classes):
        with pytest.raises(wb.ConfigError, match="classes"):
            teacher.distil(tiny(data), data=mnist, progress=False)
    assert_same_state(teacher.state_dict(), before)
    assert len(runs.runs()) == len(listed)


# ---- bad inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(temperature="4"), "temperature"), (dict(alpha=1.5), "alpha"), (dict(alpha=-0.1), "alpha"),
    (dict(epochs=0), "epochs"), (dict(epochs=2.5), "epochs"), (dict(lr=-1.0), "lr"),
    (dict(optimizer="adamm"), "optimizer"), (dict(freeze="heads"), "heads"), (dict(name=3), "name"),
    (dict(stop_at=(5, 0)), "stop_at"),
])  # fmt: skip
def test_bad_settings_are_refused_before_anything_changes(data, teacher, kwargs, words) -> None:
    before, listed = teacher.state_dict(), list(runs.runs())  # held: a collected run cannot leave the list meanwhile
    with pytest.raises(wb.ConfigError, match=words):
        teacher.distil(tiny(data), progress=False, **kwargs)
    assert_same_state(teacher.state_dict(), before)
    assert not teacher.running and len(runs.runs()) == len(listed)


def test_bad_students_are_refused(data, teacher, tmp_path) -> None:
    before = teacher.state_dict()
    other = wb.load_backbone("timm:test_efficientnet", 3, pretrained=False, image_size=16)
    with pytest.raises(wb.ConfigError, match="3 outputs.*10 classes"):
        teacher.distil(other, progress=False)
    with pytest.raises(wb.ConfigError, match="teacher's own model"):
        teacher.distil(teacher.model, progress=False)
    with pytest.raises(wb.ConfigError, match="backbone name .* or a wb.Model"):
        teacher.distil(torch.nn.Linear(3, 3), progress=False)
    with pytest.raises(wb.ConfigError, match="Unknown backbone"):
        teacher.distil("resnet-18", progress=False)
    assert_same_state(teacher.state_dict(), before)


def test_a_text_student_for_an_image_teacher_is_refused(teacher) -> None:
    from workbench.models import Model

    class Fake(Model):
        def __init__(self) -> None:  # only what the check reads
            self.kind, self.num_classes, self.name, self.module = "text", 10, "a text model", torch.nn.Linear(2, 2)

    with pytest.raises(wb.ConfigError, match="text model but the teacher .* image model"):
        teacher.distil(Fake(), progress=False)


def test_an_untrained_or_busy_teacher_is_refused(data) -> None:
    t = wb.Session(data, tiny(data), batch_size=32)
    with pytest.raises(wb.ConfigError, match="not been trained"):
        t.distil(tiny(data), progress=False)
    t.fit(1, progress=False)
    t.control.acquire("training")
    try:
        with pytest.raises(wb.ConfigError, match="busy"):
            t.distil(tiny(data), progress=False)
    finally:
        t.control.release()


@settings(max_examples=25, deadline=None)
@given(temperature=st.one_of(st.floats(allow_nan=True, allow_subnormal=False), st.integers(-3, 0), st.text(max_size=3), st.none()),
       alpha=st.one_of(st.floats(allow_nan=True, allow_subnormal=False), st.integers(-2, 3), st.booleans()))
def test_hostile_numbers_raise_config_errors(teacher, temperature, alpha) -> None:
    ok_t = isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and math.isfinite(temperature) \
        and temperature > 0
    ok_a = isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and math.isfinite(alpha) and 0 <= alpha <= 1
    if ok_t and ok_a:
        return
    from workbench.train.distil import Distillation

    with pytest.raises(wb.ConfigError):
        Distillation.prepare(teacher, "timm:test_efficientnet", temperature=temperature, alpha=alpha)


# ---- to_code -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_to_code_replays_a_distillation_bit_for_bit(data, tmp_path) -> None:
    from train.test_to_code import history, replay

    t = wb.Session(data, tiny(data, "timm:test_resnet"), freeze="full", batch_size=32, seed=3)
    t.fit(1, progress=False)
    student = t.distil(tiny(data, size=8), epochs=2, temperature=2.5, alpha=0.6, progress=False, batch_size=8,
                       augment=dict(rotation=10.0), stop_at=(2, 3), name="it's small").student
    student.configure(lr=1e-3)
    student.fit(1, progress=False)
    code = student.to_code()
    assert "session = session.distil(student_model, temperature=2.5, alpha=0.6, epochs=2" in code
    assert "stop_at=(2, 3)" in code and "name=\"it's small\"" in code
    got = replay(student, tmp_path)
    assert_same_state(got["model"], student.model.module.state_dict())
    assert history(got["history"]) == history(student.history)
    assert got["recording"] == student.recording


@pytest.mark.slow
def test_to_code_replays_a_distillation_onto_a_transfer_set(data, tmp_path) -> None:
    from train.test_to_code import history, replay

    t = wb.Session(data, tiny(data, "timm:test_resnet"), freeze="full", batch_size=32, seed=3)
    t.fit(1, progress=False)
    more = wb.load_data("digits").subset(train=20, valid=8, seed=7)
    student = t.distil(tiny(more, size=8), data=more, epochs=1, alpha=1.0, progress=False, batch_size=8).student
    code = student.to_code()
    assert "data = wb.load_data('digits').subset(train=20, valid=8, seed=7)" in code.replace('"', "'")
    assert "session = session.distil(student_model, temperature=" in code and "data=data" in code
    got = replay(student, tmp_path)
    assert_same_state(got["model"], student.model.module.state_dict())
    assert history(got["history"]) == history(student.history)
    assert got["recording"] == student.recording
