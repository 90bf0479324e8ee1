"""Replay pruning rules on the curves `sweep_pruning.py` recorded: epochs saved and same best, per rule. Prints JSON.

Every trial's whole unpruned curve is in the sweep_pruning JSON, and the trials train the same way
pruned or not (its `same_values_where_both_ran`), so any rule can be replayed offline in seconds:
trials in order, each stopping at the first epoch the rule prunes it. The replay runs workbench's own
pruner (train/pruning.py) inside a real in-memory Optuna study. Its first row is the rule the live
runs used (the JSON's "rule"); it must reproduce the live pruned run's epochs and best (`replay_matches_live_run`),
which checks the replay itself.

Rules: warm-up epochs x startup trials x the percentile of the other trials' values a trial must
reach (50 = the median; lower is more lenient). Target, per data set: >= 30% of epochs saved and
the same best value in every seed.

    python benchmarks/sweep_replay.py mnist-5k.json digits.json rotten-tomatoes.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workbench.train.pruning import EveryTrialPercentilePruner  # noqa: E402


def replay(curves: list[list[float]], pruner) -> tuple[int, float]:
    """(epochs trained, best value) of the sweep over these curves under `pruner` (maximize)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize", pruner=pruner)
    epochs, finished = 0, []
    for curve in curves:
        trial, state = study.ask(), optuna.trial.TrialState.COMPLETE
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            epochs += 1
            if epoch < len(curve) and trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, curve[epoch - 1] if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        finished.append((state == optuna.trial.TrialState.COMPLETE, curve[epoch - 1]))
    return epochs, max(finished)[1]  # as Sweep.best: completed trials first, then by the last value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="JSON printed by sweep_pruning.py (the same rule in each)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sets = {d["data"]: d for d in (json.loads(Path(f).read_text()) for f in args.files)}
    epochs = {d["epochs_per_trial"] for d in sets.values()}.pop()
    old = {"warmup_epochs": max(1, epochs // 3), "startup_trials": 2, "percentile": 50}  # before JSON named its rule
    lives = {tuple(d.get("rule", old)[k] for k in ("warmup_epochs", "startup_trials", "percentile")) for d in sets.values()}
    if len(lives) != 1:
        raise SystemExit(f"the files were measured with different rules: {sorted(lives)}")
    live = lives.pop()
    rules = [live] + [r for r in itertools.product((1, 2, 3, 4), (2, 3, 4), (50, 40, 33, 25)) if r != live]
    rows, live_ok = [], True
    for warmup, startup, pct in rules:
        row = {"warmup_epochs": warmup, "startup_trials": startup, "percentile": pct, "sets": {}}
        for name, d in sets.items():
            runs = []
            for run in d["runs"]:
                pruner = EveryTrialPercentilePruner(startup, warmup, pct)
                spent, best = replay(run["unpruned_curves"], pruner)
                runs.append((spent, run["epochs_unpruned"], best == run["best_unpruned"]))
                if (warmup, startup, pct) == rules[0]:
                    live_ok &= spent == run["epochs_pruned"] and best == run["best_pruned"]
            saved = 1 - sum(r[0] for r in runs) / sum(r[1] for r in runs)
            row["sets"][name] = {"epochs_saved": round(saved, 3), "same_best": sum(r[2] for r in runs), "seeds": len(runs)}
        row["meets_target_everywhere"] = all(s["epochs_saved"] >= 0.3 and s["same_best"] == s["seeds"]
                                             for s in row["sets"].values())
        rows.append(row)
    print(json.dumps({"benchmark": "sweep_replay", "epochs_per_trial": epochs, "replay_matches_live_run": live_ok,
                      "rules_meeting_target": sum(r["meets_target_everywhere"] for r in rows), "rules": rows}, indent=1))


if __name__ == "__main__":
    main()
