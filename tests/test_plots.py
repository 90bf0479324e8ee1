"""Static figures render headless (reports, saved notebooks) from real session records."""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import plots
from workbench.analysis import ErrorAnalysis


@pytest.fixture(scope="module")
def trained():
    data = wb.load_data("digits").subset(train=15, valid=6)
    s = wb.Session(data, wb.load_backbone("resnet18", 10, pretrained=False, image_size=16), batch_size=32,
                   freeze=wb.progressive(every=1))
    s.fit(2)
    return s


def is_png(blob: bytes) -> bool:
    return blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 2000


def test_training_figure_has_loss_metric_and_lr_panels(trained) -> None:
    fig = plots.training_figure(trained.history, live=(3, 10, [(1, 2.0), (4, 1.5)]))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss (light: every batch)", "accuracy and macro-F1 (valid)", "learning rate per block"]
    lr_lines = fig.axes[2].get_lines()
    assert {line.get_label() for line in lr_lines} >= {"head", "layer4"}  # one line per group that trained
    assert is_png(plots.png(fig))
    assert is_png(plots.png(plots.training_figure([])))  # before any epoch: an empty, labelled figure


def test_confusion_and_top_losses_figures(trained) -> None:
    a = ErrorAnalysis.from_session(trained)
    fig = plots.confusion_figure(a, normalize=True)
    assert "row shares" in fig.axes[0].get_title()
    assert is_png(plots.png(fig)) and is_png(plots.png(plots.top_losses_figure(a, trained.data, k=6)))


def test_lr_finder_figure(trained) -> None:
    result = trained.find_lr(start=1e-5, end=1.0, steps=12)
    assert is_png(plots.png(plots.lr_finder_figure(result)))


def test_large_confusion_keeps_the_most_confused_classes() -> None:
    cm = np.eye(40, dtype=int) * 5
    cm[3, 17] = cm[17, 3] = cm[25, 3] = 4
    assert plots.rank_by_confusion(cm)[:3] == [3, 17, 25]
    assert plots.involved_classes(cm, 3) == [3, 17, 25]


def test_figures_display_as_png_in_a_notebook(trained) -> None:
    fig = plots.training_figure(trained.history)
    assert isinstance(fig, plots.PlotFigure) and is_png(fig._repr_png_())
