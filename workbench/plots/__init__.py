"""Figures for reports, saved notebooks and the widgets' live views.

matplotlib `Figure` + `FigureCanvasAgg`, never pyplot: safe to build in a training thread, and
the same figure a widget shows is what a script saves. `png(fig)` gives the bytes a widget needs.
core.py: training curves, LR test, confusion matrix, top losses, attributions, the feature map;
compare.py: figures over several runs; dynamics.py: the data map of training dynamics; search.py:
ranked backbones and sweeps.
"""

from .compare import (
    PANELS,
    compare_confusion_figure,
    compare_curves_figure,
    compare_per_class_figure,
    compare_samples_figure,
)
from .core import (
    COLORS,
    PlotFigure,
    TrainingPlot,
    attribution_figure,
    class_palette,
    confusion_figure,
    embedding_figure,
    image_png,
    involved_classes,
    lr_finder_figure,
    min_text_px,
    overlay,
    png,
    rank_by_confusion,
    tokens_html,
    top_losses_figure,
    training_figure,
)
from .dynamics import data_map_figure
from .search import ranking_figure, sweep_figure

__all__ = [
    "COLORS",
    "PANELS",
    "PlotFigure",
    "TrainingPlot",
    "attribution_figure",
    "class_palette",
    "compare_confusion_figure",
    "compare_curves_figure",
    "compare_per_class_figure",
    "compare_samples_figure",
    "confusion_figure",
    "data_map_figure",
    "embedding_figure",
    "image_png",
    "involved_classes",
    "lr_finder_figure",
    "min_text_px",
    "overlay",
    "png",
    "rank_by_confusion",
    "ranking_figure",
    "tokens_html",
    "sweep_figure",
    "top_losses_figure",
    "training_figure",
]
