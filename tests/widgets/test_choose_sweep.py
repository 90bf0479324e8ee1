"""The Choose view (Model tab) and the Sweep view, driven from Python."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.train import runs
from workbench.widgets import Workbench
from workbench.widgets.choose import ChooseView
from workbench.widgets.compare import CompareView
from workbench.widgets.sweep import SweepView

SMALL = [wb.Candidate("resnet18", pretrained=False, image_size=16),
         wb.Candidate("resnet18", pretrained=False, image_size=24, label="resnet18 <b>24</b> px")]


@pytest.mark.slow
def test_choose_ranks_shows_progress_and_adopts(digits) -> None:
    view = ChooseView(digits, SMALL)
    adopted = []
    view.on_adopt(adopted.append)
    view.adopt()
    assert "Rank the candidates first" in view.message.text and not adopted
    stages = []
    original = view._on_progress
    view._on_progress = lambda p: (stages.append(p.stage), original(p))
    view.rank()
    assert view.rank_button.disabled and view.progress.layout.display == ""  # says at once that it works
    view.wait(600)
    assert view.ranking is not None and len(view.ranking) == 2
    assert {"building", "features (train)", "fitting the head", "done"} <= set(stages)
    assert "ranked 2 of 2" in view.progress.text() and not view.rank_button.disabled
    assert view.table.value.count("<tr>") == 3 and "&lt;b&gt;24&lt;/b&gt;" in view.table.value  # escaped
    assert "<b>24</b>" not in view.table.value
    assert view.figure.layout.display == "" and view.figure.value[:4] == b"\x89PNG"
    best = view.ranking.best.name
    assert view.choice.value == best and not view.adopt_button.disabled
    session = view.adopt()
    assert adopted == [session] and session is view.ranking.adopt(best) and session.epoch == 1
    # ranking again reuses the sessions: no features computed a second time
    builds = session.cache.builds
    view.rank()
    view.wait(600)
    assert view.ranking.adopt(best) is session and session.cache.builds == builds


@pytest.mark.slow
def test_choose_reports_a_candidate_that_cannot_load(digits, monkeypatch) -> None:
    from workbench.analysis import choose

    def offline(self, num_classes, seed):
        raise wb.HubUnavailableError("resnet18's pretrained weights need a download; untick pretrained.")

    view = ChooseView(digits, [SMALL[0], wb.Candidate("resnet18", image_size=16)])
    monkeypatch.setattr(choose.Candidate, "build", lambda self, k, seed: offline(self, k, seed) if self.pretrained
                        else wb.load_backbone(self.backbone, k, pretrained=False, image_size=self.image_size))
    view.rank()
    view.wait(600)
    assert "resnet18 · 16 px could not be measured" in view.table.value and "need a download" in view.table.value
    assert view.ranking.results[-1].error and view.table.value.count("<tr>") == 2  # header and the measured one
    view.adopt("resnet18 · 16 px")
    assert "could not be measured" in view.message.text


def test_choose_refuses_bad_candidates_in_the_cell(digits) -> None:
    with pytest.raises(wb.ConfigError, match="text backbone"):
        ChooseView(digits, ["minilm-l6"])


@pytest.mark.slow
def test_the_model_tab_chooses_and_the_workbench_attaches_the_choice(digits) -> None:
    w = Workbench(digits)
    assert w.tabs.children[0] is w.model_tab and w.model_tab.titles == ("Pick", "Choose")
    w.choose.pick.value = ("efficientnet_lite0 · 32 px",)  # the bundled backbone: no download
    w.choose.rank()
    w.choose.wait(600)
    session = w.choose.adopt()
    assert w.session is session and w.dashboard.session is session and w.tabs.selected_index == 0
    assert session.history[-1].path_reason.startswith("exact head fit")


@pytest.fixture
def base(digits):
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
    return wb.Session(digits, model, batch_size=32, seed=0, name="sweep base")


@pytest.mark.slow
def test_sweep_view_runs_lists_plots_and_adopts(base) -> None:
    view = SweepView(base, {"lr": (1e-3, 1.0), "optimizer": ["adamw", "sgd"]}, trials=4, epochs=2, name="view <i>sweep</i>")
    assert "press Run" in view.progress.text() and view.adopt_button.disabled
    adopted = []
    view.on_adopt(adopted.append)
    view.start()
    assert view.run_button.disabled and not view.stop_button.disabled
    view.wait(600)
    s = view.sweep
    assert len(s.trials) == 4 and view.table.value.count("<tr>") == 5
    assert "&lt;i&gt;sweep&lt;/i&gt;" not in view.table.value  # the name is not in the table; the trials are
    assert view.figure.value[:4] == b"\x89PNG" and view.painter.paints >= 2
    assert "4 of 4 trials run" in view.progress.text() and not view.adopt_button.disabled
    assert view.choice.value == s.best.number
    session = view.adopt()
    assert adopted == [session] and session is s.best.session
    compare = CompareView()
    labels = dict((v, k) for k, v in compare.run_list.options)
    for t in s.trials:
        assert f"view <i>sweep</i> · trial {t.number}" in labels
        assert labels[f"view <i>sweep</i> · trial {t.number}"].endswith(runs.status(t.session))
    view.start()
    assert "Every planned trial has run" in view.message.text


@pytest.mark.slow
def test_sweep_view_stops_and_refuses_bad_spaces(base) -> None:
    with pytest.raises(wb.ConfigError, match="session refuses"):
        SweepView(base, {"optimizer": ["nosuch"]})
    view = SweepView(base, {"lr": (1e-3, 1.0)}, trials=6, epochs=3)
    view.sweep.on(lambda e: view.stop() if e.kind == "epoch" else None)  # Stop as soon as an epoch ends
    view.start()
    view.wait(600)
    assert len(view.sweep.trials) == 1 and view.sweep.trials[0].state == "stopped"
    assert "1 of 6 trials run" in view.progress.text()
    assert not view.run_button.disabled and view.stop_button.disabled


@pytest.mark.parametrize("pruner,says", [(None, "no pruning"),
                                         ("median", "pruning trials below the median of the others at the same "
                                                    "epoch (from epoch 2, after 2 finished trials)"),
                                         ("quartile", "pruning trials below the lower quartile of the others at "
                                                      "the same epoch (from epoch 1, after 2 finished trials)")])
def test_sweep_view_says_which_pruner_runs(base, pruner, says) -> None:
    options = {} if pruner == "quartile" else {"pruner": pruner}  # the quartile is the default
    view = SweepView(base, {"lr": (1e-3, 1.0)}, trials=4, epochs=6, **options)
    assert says in view.children[1].value
