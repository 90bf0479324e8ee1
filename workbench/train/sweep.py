"""A small hyperparameter sweep in the kernel: Optuna's ask-and-tell over Sessions.

`wb.sweep(session, space, trials=8, epochs=4)` runs trials one after another in this process
(an in-memory Optuna study: no database, no server). Each trial is a Session of its own, named
"<sweep> · trial N" and listed with this kernel's runs (the Compare tab) from the moment it starts.
After every epoch the trial reports its validation metric, and the pruner (pruning.py) stops a
trial whose best metric so far is below the lower quartile ("quartile", the default, from epoch 1)
or the median ("median", from a third of the epochs) of the earlier trials at the same epoch: those
are marked "pruned" in the Compare tab and the sweep's table. `sweep.adopt(n)` returns trial n's Session.

From a Session, each trial is `session.clone(**params)` (the same weights, data and settings,
sharing the cached features), and the adopted trial's `to_code()` replays the sweep: a "sweep"
entry in its recording prints `wb.sweep(...)` and `.adopt(n)`. From a function
`factory(params) -> Session`, the trials are whatever it builds (their code is yours).
"""

from __future__ import annotations

import contextlib
import copy
import html
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import ConfigError, WorkbenchError, suggest
from ..validate import integer, jsonable
from . import runs
from .space import canonical_space, check_settings, suggest_params

METRICS = {"valid_accuracy": "maximize", "valid_macro_f1": "maximize", "valid_loss": "minimize"}
SAMPLERS = ("tpe", "random")
PERCENTILES = {"quartile": 25, "median": 50}  # the bar a trial must reach, among the other trials at its epoch
PRUNERS = (*PERCENTILES, "none")


def default_warmup(epochs: int, pruner: str = "quartile") -> int:
    """Epochs before pruning may stop a trial. The lower quartile only stops clearly bad trials, so
    from epoch 1; the median would also stop slow starters, so only from a third of the epochs
    (2 of 6, 1 of 3). Both chosen by benchmarks/sweep_replay.py (see pruning.py)."""
    return 1 if pruner == "quartile" else max(1, epochs // 3)


@dataclass
class Trial:
    """One trial as the sweep saw it (updated while it runs; read it, don't change it)."""

    number: int
    params: dict[str, Any]
    state: str = "running"  # "running" | "complete" | "pruned" | "failed" | "stopped"
    values: list[float] = field(default_factory=list)  # the metric after each epoch
    seconds: float = 0.0
    error: str | None = None
    session: Any = field(default=None, repr=False)

    @property
    def value(self) -> float:
        """The metric after the trial's last epoch (NaN before the first)."""
        return self.values[-1] if self.values else float("nan")

    @property
    def epochs(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class SweepEvent:
    """What a sweep is doing, for views: "trial_start", "epoch", "trial_end", "progress" (a trial
    session's own event in `detail`), "sweep_end"."""

    kind: str
    trial: Trial | None
    detail: Any = None


class Sweep:
    """An Optuna study run in this kernel over Sessions; see the module docstring and `wb.sweep`."""

    def __init__(self, source: Any, space: Mapping[str, Any], trials: int = 8, *, epochs: int = 3,
                 metric: str = "valid_accuracy", pruner: str | None = "quartile", sampler: str = "tpe", seed: int = 0,
                 startup_trials: int = 2, warmup_epochs: int | None = None, name: str = "sweep") -> None:
        from .session import Session

        self.trials_planned = integer("trials", trials, low=1, hint="how many trials to run, e.g. 8")
        self.epochs = integer("epochs", epochs, low=1, hint="epochs per trial, e.g. 3")
        if metric not in METRICS:
            raise ConfigError(f"metric={metric!r} is unknown.{suggest(str(metric), METRICS)} Use one of {', '.join(METRICS)}.")
        pruner = "none" if pruner is None else pruner
        if pruner not in PRUNERS:
            raise ConfigError(f"pruner={pruner!r} is unknown.{suggest(str(pruner), PRUNERS)} Use 'quartile' (the "
                              "default: stop trials below the lower quartile), 'median' or None (no pruning).")
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler={sampler!r} is unknown: use 'tpe' (Optuna's default) or 'random'.")
        self.seed = integer("seed", seed, low=0, hint="seeds the sampler: the same seed, the same trials")
        self.startup_trials = integer("startup_trials", startup_trials, low=0, hint="trials never pruned, e.g. 2")
        warmup = default_warmup(self.epochs, pruner) if warmup_epochs is None else warmup_epochs
        self.warmup_epochs = integer("warmup_epochs", warmup, low=0, hint="epochs before pruning may stop a trial "
                                     "(None: 1 for 'quartile', a third of them for 'median')")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"name must be a non-empty string (the trials are called '<name> · trial N'); got {name!r}.")
        self.space = canonical_space(space)
        self.base: Session | None = source if isinstance(source, Session) else None
        if self.base is None and not callable(source):
            raise ConfigError("wb.sweep takes a Session (each trial is session.clone(**params)) or a function "
                              f"params -> Session; got {type(source).__name__}.")
        if self.base is not None:
            check_settings(self.space, self.base.config)
            if not self.base.model.rebuildable or not self.base.model.recipe:
                raise ConfigError(f"{self.base.model.name} was built from your own module, so a sweep cannot rebuild it "
                                  "for each trial. Pass a function: wb.sweep(lambda params: wb.Session(data, "
                                  "wb.Model.from_module(make_net(), ...), **params), space).")
        self.factory = None if self.base is not None else source
        self.metric, self.direction = metric, METRICS[metric]
        self.pruner, self.sampler, self.name = pruner, sampler, name
        self.trials: list[Trial] = []
        self._base_recording = copy.deepcopy(self.base.recording) if self.base is not None else None
        self._listeners: list[Callable[[SweepEvent], None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: Trial | None = None
        self.study = self._new_study()

    # ---- running ----------------------------------------------------------------------------
    def run(self, trials: int | None = None, progress: bool | None = None) -> Sweep:
        """Run `trials` more trials (default: the rest of those planned) in this thread; returns self.
        progress: a tqdm bar over the trials in code cells (None: on in notebooks and terminals;
        views pass False and show their own)."""
        todo = self.trials_planned - len(self.trials) if trials is None else integer("trials", trials, low=1, hint="e.g. 4")
        if progress is None:
            from ..progress import enabled_by_default

            progress = enabled_by_default()
        if progress:
            with _TrialBar(self, todo):
                return self.run(trials, progress=False)
        if not self._lock.acquire(blocking=False):
            raise ConfigError("This sweep is running already (in another thread); wait for it or stop() it.")
        self._stop.clear()
        try:
            self._share_features()
            with _quiet_optuna():
                for _ in range(max(todo, 0)):
                    if self._stop.is_set():
                        break
                    self._run_trial()
        finally:
            self._lock.release()
            self._emit(SweepEvent("sweep_end", None))
        return self

    def _share_features(self) -> None:
        """Head-only trials from a session read its cached features: compute them once, here."""
        base = self.base
        if base is None or not base.path()[0] or base.running:
            return
        forward = base.on("progress", lambda p: self._emit(SweepEvent("progress", None, p)))
        try:
            base.features("train")
            base.features("valid")
        finally:
            base.off("progress", forward)

    def stop(self) -> None:
        """Stop after the current batch (thread-safe): the running trial ends as "stopped"."""
        self._stop.set()
        current = self._current
        if current is not None and current.session is not None:
            current.session.stop()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def on(self, fn: Callable[[SweepEvent], None]) -> Callable[[SweepEvent], None]:
        """Call fn(SweepEvent) as trials start, take epochs and end (in the sweep's thread)."""
        if not callable(fn):
            raise ConfigError(f"sweep.on(fn) needs a callable, got {type(fn).__name__}.")
        self._listeners.append(fn)
        return fn

    def off(self, fn: Callable[[SweepEvent], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _run_trial(self) -> None:
        import optuna

        ot = self.study.ask()
        trial = Trial(ot.number, suggest_params(ot, self.space))
        self.trials.append(trial)
        self._current = trial
        self._emit(SweepEvent("trial_start", trial))
        started = time.perf_counter()
        state, forward = optuna.trial.TrialState.FAIL, None
        try:
            trial.session = session = self._session(trial)
            runs.set_status(session, "running")
            forward = session.on("progress", lambda p: self._emit(SweepEvent("progress", trial, p)))
            state = self._epochs(trial, ot)
        except WorkbenchError as exc:
            trial.state, trial.error = "failed", str(exc)
        except BaseException as exc:
            trial.state, trial.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            trial.seconds = time.perf_counter() - started
            if trial.session is not None:
                if forward is not None:
                    trial.session.off("progress", forward)
                runs.set_status(trial.session, _status_words(trial))
                self._record(trial)
            value = trial.value if state == optuna.trial.TrialState.COMPLETE else None
            self.study.tell(ot, value, state=state)
            self._current = None
            self._emit(SweepEvent("trial_end", trial))

    def _epochs(self, trial: Trial, ot) -> Any:
        """Train the trial epoch by epoch, reporting the metric; returns the Optuna state it ends in."""
        import optuna

        session = trial.session
        for epoch in range(1, self.epochs + 1):
            if self._stop.is_set():
                trial.state = "stopped"
                return optuna.trial.TrialState.FAIL
            result = session.step(progress=False)
            if result is None or result.stopped:
                trial.state = "stopped"
                return optuna.trial.TrialState.FAIL
            value = getattr(result, self.metric)
            if value is None or not math.isfinite(value):
                trial.state, trial.error = "failed", f"{self.metric} is {value} after epoch {epoch}"
                return optuna.trial.TrialState.FAIL
            trial.values.append(float(value))
            ot.report(float(value), epoch)
            self._emit(SweepEvent("epoch", trial, result))
            if epoch < self.epochs and ot.should_prune():
                trial.state = "pruned"
                return optuna.trial.TrialState.PRUNED
        trial.state = "complete"
        return optuna.trial.TrialState.COMPLETE

    def _session(self, trial: Trial):
        from .session import Session

        name = f"{self.name} · trial {trial.number}"
        if self.base is not None:
            settings = dict(trial.params)
            if "epochs" not in settings and self.base.config.epochs != self.epochs:
                settings["epochs"] = self.epochs  # the schedule's horizon is the trial's length
            return self.base.clone(name=name, **settings)
        session = self.factory(dict(trial.params))
        if not isinstance(session, Session):
            raise ConfigError(f"The sweep's function returned {type(session).__name__}; it must return a wb.Session "
                              "built with the params it is given.")
        session.name = name
        return session

    def _record(self, trial: Trial) -> None:
        """A trial cloned from the base session: its recording becomes the base's plus one "sweep"
        entry, so its to_code() replays the sweep and adopts this trial (recording.py)."""
        if self._base_recording is None:
            return
        own = trial.session.recording[len(self._base_recording):]  # configure(params) and the epochs it ran
        entry = {"op": "sweep", "name": self.name, "space": copy.deepcopy(self.space), "trials": self.trials_planned,
                 "epochs": self.epochs, "metric": self.metric, "pruner": self.pruner, "sampler": self.sampler,
                 "seed": self.seed, "startup_trials": self.startup_trials, "warmup_epochs": self.warmup_epochs,
                 "trial": trial.number, "state": trial.state, "params": jsonable(trial.params), "steps": own}
        trial.session.recording = copy.deepcopy(self._base_recording) + [entry]

    def _emit(self, event: SweepEvent) -> None:
        for fn in list(self._listeners):
            fn(event)

    def _new_study(self):
        import optuna

        from .pruning import EveryTrialPercentilePruner

        with _quiet_optuna():
            sampler = (optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=max(self.startup_trials, 1))
                       if self.sampler == "tpe" else optuna.samplers.RandomSampler(seed=self.seed))
            pruner = (EveryTrialPercentilePruner(self.startup_trials, self.warmup_epochs, PERCENTILES[self.pruner])
                      if self.pruner in PERCENTILES else optuna.pruners.NopPruner())
            return optuna.create_study(direction=self.direction, sampler=sampler, pruner=pruner,
                                       study_name=self.name)  # in memory: no storage, no server

    # ---- results ----------------------------------------------------------------------------
    @property
    def best(self) -> Trial:
        """The best completed trial by the metric (pruned trials count by their last epoch too)."""
        done = [t for t in self.trials if t.values and t.state in ("complete", "pruned")]
        if not done:
            raise ConfigError("No trial has finished an epoch yet; run the sweep first (sweep.run()).")
        sign = 1 if self.direction == "maximize" else -1
        return max(done, key=lambda t: (t.state == "complete", sign * t.value))

    @property
    def epochs_run(self) -> int:
        """Epochs trained over every trial: what the sweep cost (pruning lowers it)."""
        return sum(t.epochs for t in self.trials)

    def trial(self, number: int) -> Trial:
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError(f"Pick a trial by its number (0, 1, ...); got {number!r}.")
        for t in self.trials:
            if t.number == number:
                return t
        raise ConfigError(f"No trial {number}: this sweep has trials {', '.join(str(t.number) for t in self.trials) or 'none yet'}.")

    def adopt(self, number: int | None = None):
        """The Session of trial `number` (None: the best), to keep training or analyse. Its
        to_code() replays the sweep and this adoption."""
        trial = self.best if number is None else self.trial(number)
        if trial.session is None:
            raise ConfigError(f"Trial {trial.number} has no session ({trial.error}); adopt another one.")
        if trial.state == "running":
            raise ConfigError(f"Trial {trial.number} is still running; wait for it to end (or stop the sweep).")
        return trial.session

    @property
    def frame(self) -> pd.DataFrame:
        """One row per trial: number, state, the metric, epochs, seconds, its params, any error."""
        rows = [{"trial": t.number, "state": t.state, self.metric: t.value, "epochs": t.epochs,
                 "seconds": round(t.seconds, 2), **{f"param {k}": v for k, v in t.params.items()},
                 "error": t.error} for t in self.trials]
        return pd.DataFrame(rows, columns=["trial", "state", self.metric, "epochs", "seconds",
                                           *(f"param {k}" for k in self.space), "error"])

    def __repr__(self) -> str:
        return (f"Sweep({self.name!r}: {len(self.trials)}/{self.trials_planned} trials, {self.epochs_run} epochs, "
                f"{sum(t.state == 'pruned' for t in self.trials)} pruned)")

    def _repr_html_(self) -> str:
        f = self.frame.drop(columns=["error"])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in f.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in f.itertuples(index=False))
        return (f"<div><b>{html.escape(repr(self))}</b><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table></div>")


def sweep(source: Any, space: Mapping[str, Any], trials: int = 8, progress: bool | None = None, **options: Any) -> Sweep:
    """Run a hyperparameter sweep now and return it: `source` is a Session (trials are its clones
    with the params) or a function params -> Session; `space` maps settings to a list of choices,
    a (low, high) range, or {"low": .., "high": .., "log": True}. Options: epochs (per trial, 3),
    metric ("valid_accuracy" | "valid_macro_f1" | "valid_loss"), pruner ("quartile" |
    "median" | None), sampler ("tpe" | "random"), seed, startup_trials (never pruned, 2), warmup_epochs
    (None: 1 for "quartile", a third of the epochs for "median"), name.
    progress: a bar over the trials (None: on in notebooks and terminals)."""
    return Sweep(source, space, trials, **options).run(progress=progress)


class _TrialBar:
    """A tqdm bar over a sweep's trials; its postfix says the trial, its epoch and how trials ended."""

    def __init__(self, sweep: Sweep, total: int) -> None:
        self.sweep, self.total = sweep, total

    def __enter__(self) -> _TrialBar:
        from tqdm.auto import tqdm

        from ..progress import open_bar

        self.bar = open_bar(tqdm, total=self.total, desc=f"{self.sweep.name}: trials", unit="trial")
        self.sweep.on(self._event)
        return self

    def __exit__(self, *exc: object) -> None:
        from ..progress import close_bar

        self.sweep.off(self._event)
        s = self.sweep
        self.bar.set_postfix_str(f"{s.epochs_run} epochs, {sum(t.state == 'pruned' for t in s.trials)} pruned", refresh=False)
        close_bar(self.bar)

    def _event(self, e: SweepEvent) -> None:
        if e.kind == "trial_end":
            self.bar.update(1)
        elif e.kind == "epoch":
            self.bar.set_postfix_str(f"trial {e.trial.number}: epoch {e.trial.epochs}, {self.sweep.metric} "
                                     f"{e.trial.value:.3f}")
        elif e.kind == "progress" and e.trial is None:
            self.bar.set_postfix_str(f"features once for every trial: {e.detail.task} {e.detail.done}/{e.detail.total}")


def _status_words(t: Trial) -> str:
    if t.state == "pruned":
        return f"pruned after epoch {t.epochs}"
    return t.state


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return "–" if v is None else str(v)


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna logs every told trial at INFO; the sweep's own table says it (restored after)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
