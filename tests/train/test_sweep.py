"""wb.sweep: pruning decisions on a constructed objective, the search space, trials as runs,
adoption, and to_code() replaying a sweep."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch
from helpers import tiny_cnn

import workbench as wb
from workbench.train import runs
from workbench.train.records import EpochResult
from workbench.train.session import Session
from workbench.train.space import canonical_space
from workbench.train.sweep import Sweep


class CurveSession(Session):
    """A Session whose epochs return a constructed metric: `curve[epoch - 1]` (nothing trains)."""

    def __init__(self, curve: list[float]) -> None:  # noqa: D107 - no data, no model: only what a sweep reads
        self.curve, self.history, self.name, self.recording = curve, [], "curve", []
        self.stopped = False

    def step(self, progress=None):
        e = len(self.history) + 1
        result = EpochResult(epoch=e, train_loss=0.0, train_accuracy=0.0, valid_loss=1 - self.curve[e - 1],
                             valid_accuracy=self.curve[e - 1], valid_macro_f1=self.curve[e - 1], lrs={}, trainable=(),
                             fast_path=True, path_reason="", epoch_time_s=0.0, samples_per_s=0.0, batches=1,
                             num_batches=1, batch_losses=(0.0,), batch_lrs=(0.0,))
        self.history.append(result)
        return result

    def on(self, event, fn):
        return fn

    def off(self, event, fn):
        pass

    def stop(self):
        self.stopped = True


def curve_for(quality: float, slope: float, epochs: int) -> list[float]:
    """A learning curve: starts at quality * 0.5 and rises by `slope` an epoch."""
    return [quality * 0.5 + slope * e for e in range(epochs)]


def expected_prune_epoch(curve: list[float], earlier: list[list[float]], completed: int, startup: int, warmup: int,
                         epochs: int, percentile: float):
    """The rule by hand: from epoch `warmup` on (not the last), once `startup` trials have
    completed, stop at the first epoch whose best value so far is below the percentile (25: lower
    quartile, 50: median) of every earlier trial's value at that epoch (`earlier`: the values each
    trial reported, pruned ones included, so the bar is not only the survivors')."""
    if completed < max(startup, 1):
        return None
    for e in range(max(warmup, 1), epochs):
        at_e = [c[e - 1] for c in earlier if len(c) >= e]
        if at_e and max(curve[:e]) < np.percentile(at_e, percentile):
            return e
    return None


@pytest.mark.parametrize("pruner,percentile", [("quartile", 25), ("median", 50)])
@pytest.mark.parametrize("startup,warmup", [(2, 1), (3, 2), (1, 0)])
def test_pruning_decisions_on_a_constructed_objective(pruner: str, percentile: float, startup: int, warmup: int) -> None:
    epochs = 5
    space = {"quality": [0.2, 0.4, 0.5, 0.6, 0.8, 0.9], "slope": [0.0, 0.05, 0.1]}
    s = Sweep(lambda p: CurveSession(curve_for(p["quality"], p["slope"], epochs)), space, trials=14, epochs=epochs,
              pruner=pruner, sampler="random", seed=3, startup_trials=startup, warmup_epochs=warmup)
    s.run()
    earlier: list[list[float]] = []
    completed = pruned = 0
    for t in s.trials:
        curve = curve_for(t.params["quality"], t.params["slope"], epochs)
        expected = expected_prune_epoch(curve, earlier, completed, startup, warmup, epochs, percentile)
        if expected is None:
            assert t.state == "complete" and t.values == curve, (t, earlier)
            completed += 1
        else:
            pruned += 1
            assert t.state == "pruned" and t.epochs == expected and t.values == curve[:expected], (t, expected)
        earlier.append(t.values)
    assert pruned >= 3  # the constructed objective does prune
    assert s.epochs_run == sum(t.epochs for t in s.trials) < 14 * epochs
    assert s.best.value == max(t.value for t in s.trials if t.state == "complete")


def test_pruned_trials_count_in_the_median_so_the_bar_is_not_only_the_survivors() -> None:
    """Two good trials complete, three poor ones are pruned at epoch 1; a slow starter that ends
    best is above the median of all five at epoch 1 (0.30: kept) but below the median of the two
    survivors (0.71: the bar of Optuna's MedianPruner, which would have pruned the winner)."""
    curves = {"good1": [0.70, 0.80, 0.82], "good2": [0.72, 0.81, 0.83], "poor1": [0.2] * 3, "poor2": [0.25] * 3,
              "poor3": [0.3] * 3, "late": [0.60, 0.82, 0.90]}
    s = Sweep(lambda p: CurveSession(curves[p["c"]]), {"c": list(curves)}, trials=1, epochs=3, sampler="random",
              pruner="median", startup_trials=2, warmup_epochs=1)
    order = ["good1", "good2", "poor1", "poor2", "poor3", "late"]
    for name in order:  # the trials in this order: each asks with its choice fixed
        s.study.enqueue_trial({"c": name})
        s.run(1)
    states = {t.params["c"]: t.state for t in s.trials}
    assert states == {"good1": "complete", "good2": "complete", "poor1": "pruned", "poor2": "pruned",
                      "poor3": "pruned", "late": "complete"}, states
    assert s.best.params["c"] == "late" and s.best.value == 0.90


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_bar_is_that_percentile_of_the_other_trials_at_the_epoch(direction: str) -> None:
    """Five finished trials at 0.1 .. 0.5: the lower quartile is 0.2, the median 0.3 (losses mirrored)."""
    import optuna

    from workbench.train.pruning import EveryTrialPercentilePruner

    sign = 1 if direction == "maximize" else -1
    for percentile, value, pruned in [(25, 0.19, True), (25, 0.21, False), (50, 0.29, True), (50, 0.31, False)]:
        pruner = EveryTrialPercentilePruner(startup_trials=1, warmup_epochs=1, percentile=percentile)
        study = optuna.create_study(direction=direction, pruner=pruner)
        for v in (0.1, 0.2, 0.3, 0.4, 0.5):
            t = study.ask()
            t.report(sign * v, 1)
            study.tell(t, sign * v)
        t = study.ask()
        t.report(sign * value, 1)
        assert t.should_prune() is pruned, (percentile, value)


def test_warmup_defaults_to_epoch_1_for_the_quartile_and_a_third_of_the_epochs_for_the_median() -> None:
    def make(p):
        return CurveSession([0.5] * 9)

    assert Sweep(make, {"q": [1]}).pruner == "quartile"
    assert [Sweep(make, {"q": [1]}, epochs=e).warmup_epochs for e in (1, 3, 6, 9)] == [1, 1, 1, 1]
    assert [Sweep(make, {"q": [1]}, epochs=e, pruner="median").warmup_epochs for e in (1, 3, 6, 9)] == [1, 1, 2, 3]
    assert Sweep(make, {"q": [1]}, epochs=6, warmup_epochs=0).warmup_epochs == 0


def test_without_a_pruner_every_trial_runs_every_epoch() -> None:
    s = Sweep(lambda p: CurveSession(curve_for(p["q"], 0.0, 3)), {"q": [0.1, 0.9, 0.5]}, trials=6, epochs=3,
              pruner=None, sampler="random", seed=0).run()
    assert all(t.state == "complete" and t.epochs == 3 for t in s.trials) and s.epochs_run == 18


def test_a_trial_with_a_non_finite_metric_fails_and_the_sweep_goes_on() -> None:
    s = Sweep(lambda p: CurveSession([p["q"]] * 2), {"q": [float("nan"), 0.5]}, trials=4, epochs=2,
              sampler="random", seed=1).run()
    states = {t.params["q"] == 0.5: t.state for t in s.trials}
    assert states.get(False) == "failed" and states.get(True) == "complete"
    assert "valid_accuracy is nan" in next(t.error for t in s.trials if t.state == "failed")


def test_space_forms_are_checked_and_made_explicit() -> None:
    space = canonical_space({"lr": (1e-4, 1e-1), "label_smoothing": (0.0, 0.2), "batch_size": (16, 128),
                             "optimizer": ["adamw", "sgd"]})
    assert space["lr"] == {"low": 1e-4, "high": 1e-1, "log": True, "int": False}
    assert space["label_smoothing"]["log"] is False and space["batch_size"]["int"] is True
    assert space["optimizer"] == {"choices": ["adamw", "sgd"]}
    for bad, words in [({}, "non-empty"), ({"lr": (1e-1, 1e-4)}, "below high"), ({"lr": (0.1,)}, "range"),
                       ({"lr": {"low": 0, "high": 1, "log": True}}, "low > 0"), ({"lr": []}, "at least one"),
                       ({"lr": {"low": 1, "hi": 2}}, "a range is"), ({"lr": (float("nan"), 1.0)}, "finite"),
                       ({"lr": [object()]}, "plain values"), ({"x y": [1]}, "setting name"), ({"o": ["a", "a"]}, "twice")]:
        with pytest.raises(wb.ConfigError, match=words):
            canonical_space(bad)


@pytest.fixture(scope="module")
def base():
    data = wb.load_data("digits").subset(train=12, valid=6, seed=0)
    return wb.Session(data, tiny_cnn(data.num_classes), batch_size=32, seed=0, name="sweep base")


def test_space_values_the_session_refuses_are_refused_before_any_trial(base) -> None:
    with pytest.raises(wb.ConfigError, match="Unknown setting 'learning_rate'"):
        Sweep(base, {"learning_rate": (1e-4, 1e-1)})
    with pytest.raises(wb.ConfigError, match="session refuses"):
        Sweep(base, {"optimizer": ["adamw", "nosuch"]})
    with pytest.raises(wb.ConfigError, match="metric"):
        Sweep(base, {"lr": (1e-3, 1e-1)}, metric="accuracy")
    with pytest.raises(wb.ConfigError, match=r"pruner='quartlie' is unknown\. Did you mean: 'quartile'\?.*'median' or "
                                              r"None"):
        Sweep(base, {"lr": (1e-3, 1e-1)}, pruner="quartlie")
    with pytest.raises(wb.ConfigError, match="Session"):
        Sweep(42, {"lr": (1e-3, 1e-1)})
    assert len(base.history) == 0


@pytest.mark.slow
def test_a_sweep_from_a_session_lists_its_trials_adopts_and_replays(base, tmp_path) -> None:
    events: list[str] = []
    s = Sweep(base, {"lr": (1e-4, 1.0), "optimizer": ["adamw", "sgd"]}, trials=5, epochs=3, seed=0, name="lr search")
    s.on(lambda e: events.append(e.kind))
    s.run()
    assert len(base.history) == 0 and base.cache.builds == 2  # the base only computed the shared features
    names = {x.name: runs.status(x) for x in runs.runs()}
    for t in s.trials:
        assert names[f"lr search · trial {t.number}"] == ("complete" if t.state == "complete" else f"pruned after epoch {t.epochs}")
        assert t.session.cache.builds == 0  # its features came from the base
        assert t.session.config.epochs == 3  # the schedule's horizon is the trial's length
    assert events.count("trial_start") == 5 and events.count("trial_end") == 5 and events[-1] == "sweep_end"
    assert events.count("epoch") == s.epochs_run
    best = s.adopt()
    assert best is s.best.session and best.history[-1].valid_accuracy == s.best.value
    code = best.to_code()
    tree = ast.parse(code)
    assert sum(isinstance(n, ast.Expr) and "sweep" in ast.unparse(n) for n in tree.body) == 0  # assignments only
    assert f"sweep.adopt({s.best.number})" in code and f"trials={s.best.number + 1}" in code
    namespace: dict = {}
    exec(compile(tree, "<to_code>", "exec"), namespace)
    replayed = namespace["session"]
    assert [r.valid_accuracy for r in replayed.history] == [r.valid_accuracy for r in best.history]
    for a, b in zip(replayed.model.module.state_dict().values(), best.model.module.state_dict().values()):
        assert torch.equal(a, b)
    # to_script takes the adopted trial's own steps: its settings, then its epochs
    tree = ast.parse(best.to_script(tmp_path / "trial.py").read_text())
    recipe = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "RECIPE"))
    ops = [step["op"] for step in recipe["steps"]]
    assert "sweep" not in ops and ops[0] == "configure" and ops.count("fit") >= 1
    assert recipe["steps"][0]["settings"]["lr"] == s.best.params["lr"]
    frame = s.frame
    assert list(frame["trial"]) == [t.number for t in s.trials] and "param lr" in frame
    with pytest.raises(wb.ConfigError, match="No trial 99"):
        s.adopt(99)


def test_clone_starts_where_the_session_stands_and_shares_its_features(base) -> None:
    src = base.clone(name="clone source")  # the module's base stays untrained for the other tests
    src.fit(1, progress=False)
    other = src.clone(name="branch", lr=0.01)
    assert other.name == "branch" and src.name == "clone source" and other.config.lr == 0.01
    assert [r.to_dict() for r in other.history] == [r.to_dict() for r in src.history]
    assert other.recording[:-1] == src.recording and other.recording[-1] == {"op": "configure", "settings": {"lr": 0.01}}
    for a, b in zip(other.model.module.state_dict().values(), src.model.module.state_dict().values()):
        assert torch.equal(a, b)
    assert other.model.module is not src.model.module and other.model.weights == src.model.weights
    other.fit(1, progress=False)
    assert other.cache.builds == 0 and len(src.history) == 1  # read src's cached features; src untouched
    with pytest.raises(wb.ConfigError, match="Unknown setting"):
        src.clone(learning_rate=0.1)
