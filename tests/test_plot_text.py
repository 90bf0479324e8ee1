"""User strings in figures stay text: class names, run names, block names and dataset texts drawn from
a hostile alphabet ("$", backslashes, braces, carets, a leading "_", newlines) render in every figure
of workbench.plots, and each shows its string literally (a class "$x^{$" raised matplotlib's
ParseException in the Compare view, and "$5 to $10" drew a formula)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.cbook import is_math_text
from matplotlib.text import Text

import workbench as wb
from workbench import plots
from workbench.analysis import ErrorAnalysis
from workbench.analysis.attribution import Attribution
from workbench.analysis.compare import Comparison, Run
from workbench.analysis.embedding import Embedding
from workbench.errors import WorkbenchError
from workbench.train.records import EpochResult, Predictions

HOSTILE = st.text(alphabet="$\\^_{}%#&~ab1 \n\t()[]|", min_size=1, max_size=10)
SEEDS = ["$x^{$", "$5 to $10", r"\frac{", "_hidden", "$$", "a$b$c$", r"$\alpha$", "\\$"]
NAMES = st.one_of(st.sampled_from(SEEDS), HOSTILE)
K, N = 3, 12


def history(blocks: list[str]) -> list[EpochResult]:
    return [EpochResult(epoch=e, train_loss=1.0 / e, train_accuracy=0.5, valid_loss=1.2 / e, valid_accuracy=0.4 + e / 10,
                        valid_macro_f1=0.4, lrs={b: 1e-3 * e for b in blocks}, trainable=tuple(blocks), fast_path=True,
                        path_reason="", epoch_time_s=1.0, samples_per_s=10.0, batches=2, num_batches=2,
                        batch_losses=(1.0, 0.9), batch_lrs=(1e-3, 1e-3)) for e in (1, 2)]


def rendered(fig) -> list[str]:
    """Render the figure (drawing is where mathtext is parsed) and return every text it shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph DejaVu lacks is a warning, not our concern here
        assert plots.png(fig)[:4] == b"\x89PNG"
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible()]


def shows_literally(texts: list[str], name: str) -> bool:
    """Somewhere in the figure, `name` (or its shortened start) is shown as written, not as a formula."""
    head = " ".join(name.split())[:8]  # wrapping and tick labels may break lines and expand tabs
    return any(head in " ".join(t.replace("\\$", "$").split()) and not is_math_text(t) for t in texts)


@pytest.mark.slow  # nine figures rendered per example: ~30 s
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classes=st.lists(NAMES, min_size=K, max_size=K, unique=True), runs=st.lists(NAMES, min_size=2, max_size=2,
                                                                                  unique=True), text=NAMES)
def test_every_figure_renders_hostile_strings_as_text(classes, runs, text) -> None:
    texts = [f"{text} {i}" for i in range(N)]
    labels = [classes[i % K] for i in range(N)]
    try:
        data = wb.Data.from_texts(texts, labels, classes=classes, valid=(texts, labels))
    except WorkbenchError:  # e.g. names that are one name as a person reads them: refused by Data, fine here
        return
    rng = np.random.default_rng(0)
    y = np.array([data.classes.index(lab) for lab in labels])
    logits = rng.normal(size=(N, K)).astype(np.float32)
    errors = ErrorAnalysis.from_predictions(y, logits, data.classes)
    runs_ = [Run(name=r, config={"lr": 0.1 * (j + 1)}, history=history([data.classes[0], "head"]),
                 predictions=Predictions(logits + j, y, np.ones(N, np.float32), np.arange(N), 2),
                 classes=list(data.classes), backbone="b", data_name="d", freeze="head", data=data)
             for j, r in enumerate(runs)]
    comparison = Comparison(runs_)
    emb = Embedding(coords=rng.normal(size=(N, 2)).astype(np.float32), ids=np.arange(N), labels=y,
                    predicted=logits.argmax(1), classes=tuple(data.classes))
    attribution = Attribution(index=0, kind="text", target=0, classes=tuple(data.classes), true=0, predicted=1,
                              probabilities=np.full(K, 1 / K), tokens=(text, "ok"), scores=np.array([0.5, -0.5]),
                              special=np.zeros(2, bool))
    figures = {
        "training": (plots.training_figure(history([data.classes[0], "head"])), [data.classes[0]]),
        "confusion": (plots.confusion_figure(errors), data.classes),
        "top losses": (plots.top_losses_figure(errors, data, k=3), [text]),
        "map": (plots.embedding_figure(emb), data.classes),
        "attribution": (plots.attribution_figure([attribution]), [data.classes[0], text]),
        "compare curves": (plots.compare_curves_figure(comparison, legend="names"), comparison.names),
        "compare per class": (plots.compare_per_class_figure(comparison, legend="names"), data.classes),
        "compare confusion": (plots.compare_confusion_figure(comparison, legend="names"), comparison.names),
        "compare samples": (plots.compare_samples_figure(comparison, 0, 1, legend="names"), []),
    }
    for what, (fig, names) in figures.items():
        shown = rendered(fig)
        for name in names:
            assert shows_literally(shown, name), (what, name, shown)


@pytest.mark.parametrize("name", SEEDS)
def test_a_legend_shows_a_name_that_starts_with_an_underscore_or_a_dollar(name) -> None:
    fig = plots.training_figure(history([name]))
    legend = fig.axes[2].get_legend()
    assert legend is not None and any(name in t.get_text().replace("\\$", "$") for t in legend.get_texts())
    rendered(fig)
