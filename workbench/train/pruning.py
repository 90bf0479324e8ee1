"""The sweep's median pruner: stop a trial whose best metric so far is worse than the median of
every other trial's metric at the same epoch.

Optuna's MedianPruner takes that median over *completed* trials only. Once it has pruned most
trials, the completed ones are the survivors, so the bar becomes the survivors' median (about
the top quartile of all trials) and rises with every trial that completes. On noisy one-cycle
curves that pruned the trial that would have won in 11 of 30 sweeps (benchmarks/sweep_pruning.py
over mnist-5k, digits and Rotten Tomatoes, 10 seeds each). Here the median is over every trial
that reached the epoch, pruned ones included, as in the median stopping rule of Google Vizier
(Golovin et al. 2017): the same trials, the same best in 29 of 30 (28 in a second run: mnist-5k
seeds 1 and 5 missed by 0.003 and 0.014), with warm-up epochs = a third of the epochs. It plugs
into Optuna's own pruner interface, so the study, the sampler and `trial.should_prune()` are
Optuna's. (Imported only when a sweep starts a study: optuna is slow to import.)
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import TrialState


class EveryTrialMedianPruner(optuna.pruners.BasePruner):
    """Prune at epoch e (e >= warmup_epochs, once `startup_trials` trials completed) when the
    trial's best value up to e is worse than the median of the other finished or pruned trials'
    values at e."""

    def __init__(self, startup_trials: int, warmup_epochs: int) -> None:
        self.startup_trials, self.warmup_epochs = startup_trials, warmup_epochs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_epochs:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if sum(t.state == TrialState.COMPLETE for t in done) < max(self.startup_trials, 1):
            return False
        others = [t.intermediate_values[step] for t in done if t.number != trial.number and step in t.intermediate_values]
        if not others:
            return False
        median = statistics.median(others)
        mine = trial.intermediate_values.values()
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return max(mine) < median
        return min(mine) > median
