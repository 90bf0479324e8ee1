"""wb.compare: settings that differ, curves, per-class scores, confusion matrices, disagreements.

Runs are tiny random-init ResNet-18s on 8x8 digits (a fraction of a second an epoch).
"""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from helpers import tiny_cnn
from workbench import plots
from workbench.analysis.compare import Comparison, Run
from workbench.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return wb.load_data("digits").subset(train=30, valid=10, seed=0)


def run(data, epochs: int = 2, **settings):
    s = wb.Session(data, tiny_cnn(), freeze="full", batch_size=32, seed=0, **settings)
    s.fit(epochs, progress=False)
    return s


@pytest.fixture(scope="module")
def pair(digits):
    """Two runs that differ in the optimizer alone."""
    return run(digits, optimizer="sgd", lr=0.05, name="A"), run(digits, optimizer="adamw", lr=0.05, name="B")


def test_optimizer_difference_is_exactly_the_settings_table(pair):
    a, b = pair
    c = wb.compare(a, b)
    assert list(c.settings.index) == ["optimizer"]
    assert c.settings.loc["optimizer"].tolist() == ["sgd", "adamw"]
    assert c.diff() == {"optimizer": ("sgd", "adamw")} == a.config.diff(b.config)
    assert c.names == ["A", "B"] and c.labels == ["optimizer=sgd", "optimizer=adamw"]


def test_right_in_a_wrong_in_b_is_the_brute_force_filter(pair):
    a, b = pair
    c = wb.compare(a, b)
    pa, pb = a.predictions, b.predictions
    right_a = {int(i) for i, y, z in zip(pa.ids, pa.labels, pa.predicted) if y == z}
    wrong_b = {int(i) for i, y, z in zip(pb.ids, pb.labels, pb.predicted) if y != z}
    got = c.right_wrong(0, 1)
    assert len(got) == len(set(got.tolist())) and set(got.tolist()) == right_a & wrong_b
    losses = dict(zip(map(int, pb.ids), pb.losses))
    assert [losses[int(i)] for i in got] == sorted((losses[int(i)] for i in got), reverse=True)  # worst under B first
    right_b = {int(i) for i, y, z in zip(pb.ids, pb.labels, pb.predicted) if y == z}
    wrong_a = {int(i) for i, y, z in zip(pa.ids, pa.labels, pa.predicted) if y != z}
    assert set(c.right_wrong("B", "A").tolist()) == right_b & wrong_a
    counts = c.agreement()
    assert counts["only A"] == len(right_a & wrong_b) and counts["only B"] == len(right_b & wrong_a)
    assert counts.sum() == len(pa)


def test_per_class_and_confusion_come_from_each_run(pair):
    a, b = pair
    c = wb.compare(a, b)
    ea, eb = wb.ErrorAnalysis.from_session(a), wb.ErrorAnalysis.from_session(b)
    table = c.per_class()
    assert list(table.columns) == ["A", "B", "change"]
    np.testing.assert_allclose(table["A"], ea.per_class()["f1"])
    np.testing.assert_allclose(table["change"], eb.per_class()["f1"] - ea.per_class()["f1"])
    assert list(c.per_class("recall").columns) == ["A", "B", "change"]
    ma, mb = c.confusion_matrices()
    assert np.array_equal(ma, ea.confusion_matrix) and np.array_equal(mb, eb.confusion_matrix)
    h = c.history
    assert list(h.run.unique()) == ["A", "B"] and len(h) == 4
    np.testing.assert_allclose(h[h.run == "B"].valid_loss, [r.valid_loss for r in b.history])
    assert c.summary().loc["B", "epochs"] == 2


def test_saved_checkpoints_compare_like_their_sessions(pair, tmp_path):
    a, b = pair
    a.save(tmp_path / "a.wb")
    b.save(tmp_path / "b.wb")
    live = wb.compare(a, b)
    saved = wb.compare(tmp_path / "a.wb", str(tmp_path / "b.wb"))
    assert saved.names == ["a.wb", "b.wb"] and saved.labels == live.labels
    assert saved.settings.values.tolist() == live.settings.values.tolist()
    assert np.array_equal(saved.right_wrong(), live.right_wrong())
    assert saved.data(0) is not None  # digits is bundled: reloaded to show the samples
    mixed = wb.compare(a, tmp_path / "b.wb", names=["live", "saved"])
    assert mixed.names == ["live", "saved"] and np.array_equal(mixed.right_wrong(), live.right_wrong())


def test_several_runs_and_what_differs(digits, pair):
    a, b = pair
    c3 = run(digits, epochs=1, optimizer="sgd", lr=0.01, momentum=0.0, name="C")
    c = wb.compare([a, b, c3])
    assert list(c.settings.index) == ["optimizer", "lr", "momentum"]
    assert c.labels[2] == "optimizer=sgd, lr=0.01, momentum=0"
    assert list(c.per_class().columns) == ["A", "B", "C", "change B", "change C"]
    same = wb.compare(a, a)
    assert same.settings.empty and same.names == ["A", "A #2"] and same.labels == same.names
    assert same.right_wrong().size == 0


def test_runs_on_other_samples_compare_curves_but_not_samples(digits, pair):
    other = run(digits.subset(train=20, valid=8, seed=1), epochs=1, optimizer="sgd", lr=0.05)
    c = wb.compare(pair[0], other)
    assert c.settings.loc["data"].tolist() == ["digits (300 train / 100 valid)", "digits (200 train / 80 valid)"]
    assert len(c.history) == 3
    with pytest.raises(ConfigError, match="different valid samples"):
        c.right_wrong()


def test_refusals_name_the_fix(digits, pair):
    with pytest.raises(ConfigError, match="two or more runs"):
        wb.compare(pair[0])
    with pytest.raises(ConfigError, match="Sessions or checkpoint folders"):
        wb.compare(pair[0], 3)
    with pytest.raises(ConfigError, match="one non-empty string per run"):
        wb.compare(*pair, names=["x"])
    c = wb.compare(*pair)
    with pytest.raises(ConfigError, match="No run named 'Z'"):
        c.right_wrong("Z", "A")
    with pytest.raises(ConfigError, match="metric='auc'"):
        c.per_class("auc")
    fresh = wb.Session(digits, tiny_cnn(), seed=0, name="fresh")
    c = wb.compare(pair[0], fresh)
    assert "fresh" in c.names and len(c.history) == 2  # curves and settings work before any epoch
    with pytest.raises(ConfigError, match="train an epoch first"):
        c.per_class()


def test_values_that_read_alike_are_shown_exactly(digits):
    a = wb.Session(digits, tiny_cnn(), lr=0.1, name="a")
    b = wb.Session(digits, tiny_cnn(), lr=0.09999999999999995, name="b")
    c = wb.compare(a, b)
    assert c.settings.loc["lr"].tolist() == ["0.1", "0.09999999999999995"]
    assert c.labels == ["lr=0.1", "lr=0.09999999999999995"]


def test_untrusted_names_are_escaped_in_html(pair):
    c = wb.compare(*pair, names=["<script>alert(1)</script>", "B"])
    html = c._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_figures_render(pair):
    c = wb.compare(*pair)
    for fig in (plots.compare_curves_figure(c, panels=("loss", "accuracy", "f1", "batch_loss", "time")),
                plots.compare_per_class_figure(c, highlight=["3"]), plots.compare_confusion_figure(c, normalize=True),
                plots.compare_samples_figure(c, 1, 0)):  # fmt: skip
        assert plots.png(fig)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="Unknown panels"):
        plots.compare_curves_figure(c, panels=("nope",))


def test_run_records_are_plain(pair):
    r = Run.from_session(pair[0])
    assert r.name == "A" and r.freeze == "full" and r.settings()["schedule.name"] == "auto"
    assert isinstance(wb.compare(*pair), Comparison)


def _run_with(config: dict, name: str) -> Run:
    return Run(name=name, config=wb.TrainConfig().replace(**config).to_dict(), history=[], predictions=None,
               classes=["a", "b"], backbone="tiny", data_name="d (1 train / 1 valid)", freeze="head")


def test_settings_a_run_does_not_use_are_never_a_difference():
    """A constant schedule's step_epochs, Adam's momentum, a plain loss's focal gamma: idle settings
    that differ are not listed; where one run uses a setting the others leave idle, it shows "(unused)"."""
    same = Comparison([_run_with({"schedule": wb.Schedule("constant", step_epochs=3)}, "A"),
                       _run_with({"schedule": wb.Schedule("constant", step_epochs=1), "momentum": 0.5,
                                  "focal_gamma": 3.0, "epochs": 9}, "B")])
    assert list(same.settings.index) == [] and same.diff() == {} and same.labels == ["A", "B"]
    step = Comparison([_run_with({"schedule": wb.Schedule("step", step_epochs=2)}, "A"),
                       _run_with({"schedule": wb.Schedule("constant", step_epochs=5)}, "B")])
    assert list(step.settings.index) == ["schedule.name"] and step.diff() == {"schedule.name": ("step", "constant")}
    three = Comparison([_run_with({"optimizer": "sgd", "momentum": 0.9}, "A"),
                        _run_with({"optimizer": "sgd", "momentum": 0.5}, "B"),
                        _run_with({"optimizer": "adamw", "momentum": 0.1}, "C")])
    assert list(three.settings.index) == ["optimizer", "momentum"]
    assert three.settings.loc["momentum"].tolist() == ["0.9", "0.5", "(unused)"]
    assert three.labels == ["optimizer=sgd, momentum=0.9", "optimizer=sgd, momentum=0.5", "optimizer=adamw"]


def test_the_automatic_lr_reads_auto_not_none(digits):
    """lr=None is the LR workbench picks: the settings table and the labels say "auto"."""
    auto = run(digits, epochs=1, name="auto")
    fixed = run(digits, epochs=1, lr=0.05, name="fixed")
    c = wb.compare(auto, fixed)
    assert c.settings.loc["lr"].tolist() == ["auto", "0.05"]
    assert c.labels == ["lr=auto", "lr=0.05"]
