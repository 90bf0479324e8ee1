"""Session: owns the model, optimizer, freeze state, history and latest predictions.

`step()` trains one epoch and evaluates; `fit(n)` repeats it. `stop()`, `pause()`, `resume()`
are thread-safe flags checked between batches, so a widget can run `fit` in a thread and stay
responsive. Every decision the session makes (which blocks train, at which LR, which path runs)
is visible in `summary()` and in the history.

Every change is transactional: settings, freeze plans, device moves and loaded states are checked
and their new pieces built before anything is swapped in, so a bad input raises a WorkbenchError
and leaves `state_dict()` as it was. After a fault inside an epoch the weights, optimizer state,
history and predictions agree: the epoch is recorded as stopped with the steps it took, or (when it
took none) nothing changed at all (docs/ARCHITECTURE.md, "Faults").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ConfigError
from ..validate import integer, jsonable
from . import freezing, runs, state
from .cache import FeatureCache
from .clone import CloneMixin
from .config import (TrainConfig, auto_lr, auto_schedule, check_compatible, check_head_dropout, check_splits,
                     criterion_for, preconditions_head, resolve_device)
from .control import RunControl
from .dynamics_session import DynamicsMixin
from .early_stopping import EarlyStopping
from .epoch import EpochMixin
from .persistence import StateMixin
from .events import ConfigChange, EventBus, FitEnd, FitStart
from .lr_plan import LrPlanMixin
from .optim import make_optimizer
from .placement import Placement, place_model
from .precondition import HeadPreconditioner, linear_only
from .records import EpochResult, Predictions, history_frame

# settings whose change needs a new optimizer (its state starts fresh)
REBUILD = ("optimizer", "momentum", "nesterov", "weight_decay")


class Session(EpochMixin, StateMixin, LrPlanMixin, DynamicsMixin, CloneMixin):
    """Fine-tune `model` on `data`, one epoch at a time. See TrainConfig for the settings."""

    def __init__(self, data, model, *, freeze: Any = "head", name: str | None = None, **settings: Any) -> None:
        config = TrainConfig().replace(**settings)  # validates every setting first
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"name must be a string (how the run is shown in comparisons), got {name!r}.")
        check_compatible(data, model)
        check_splits(data)
        criterion_for(config, data)
        trainable = freezing.trainable_blocks(model, freeze, epoch=0)
        device = resolve_device(config.device)
        if config.head_dropout is not None:
            check_head_dropout(model)
        # -- nothing above changed any state; from here on the session is built --
        self.data, self.model, self.config = data, model, config
        self.events = EventBus()
        self.history: list[EpochResult] = []
        self.predictions: Predictions | None = None
        self.previous_predictions: Predictions | None = None
        self._freeze_spec = freeze
        self.control = RunControl()
        self._pending: dict[str, Any] = {}
        self._pending_lock = threading.Lock()  # a change queued from one thread while an epoch starts in another
        self._body_version = 0  # bumps whenever weights below the head may have changed
        self._schedule_start = 0  # the step the LR schedule started at (lr_plan.py)
        self.early_stopping = EarlyStopping()
        self.cache = FeatureCache()
        self._preconditioner: HeadPreconditioner | None = None  # derived from the cached features
        self._criterion_cache: tuple[TrainConfig, Any] | None = None
        self._defer_reads: bool | None = None  # None: deferred on CUDA (see _deferred_reads)
        self._dist = None  # set by distribute(): one process of several (train/distributed.py)
        place_model(model, device, config.channels_last)
        self.placement = Placement(data, model, config, device, self.events.progress)
        if config.head_dropout is not None:
            model.set_head_dropout(config.head_dropout)
        freezing.apply_freeze(model, trainable)
        self.optimizer = self._new_optimizer(config, trainable)
        self._init_dynamics()  # per-sample training dynamics, the verify queue, pins (dynamics_session.py)
        default_name = runs.register(self)  # this kernel's runs, for wb.compare and the Compare view
        self.name = name or default_name
        # every change that took effect, in order: session.to_code() replays it (see recording.py)
        self.recording: list[dict[str, Any]] = [{
            "op": "session", "data": data.recipe, "data_name": data.name, "model": model.recipe,
            "model_name": model.name, "freeze": state.freeze_spec_to_json(freeze), "settings": jsonable(settings)}]

    # ---- public API -----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Epochs done so far (a stopped epoch counts: its steps changed the weights)."""
        return len(self.history)

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far: the schedules' clock (derived from the history)."""
        return sum(r.batches for r in self.history)

    @property
    def trainable(self) -> list[str]:
        return self.model.trainable_blocks()

    @property
    def freeze_spec(self) -> Any:
        """The freeze plan the next epoch uses (a pending change if one waits for it)."""
        return self._pending.get("freeze", self._freeze_spec)

    @property
    def has_pending_changes(self) -> bool:
        """True when settings or a freeze plan wait for the next epoch."""
        return bool(self._pending)

    @property
    def running(self) -> bool:
        """True while fit() or find_lr() runs."""
        return self.control.busy

    @property
    def paused(self) -> bool:
        return self.control.paused

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def pipeline(self):
        """Model-ready batches of each split on the session's device (data.transforms)."""
        return self.placement.pipeline

    def on(self, event: str, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """Subscribe `fn` to an event: fit_start, epoch_start, batch_end, eval_end, epoch_end, fit_end,
        config_change, error."""
        return self.events.on(event, fn)

    def off(self, event: str, fn: Callable[[Any], None]) -> None:
        self.events.off(event, fn)

    def freeze(self, spec: Any) -> list[str]:
        """Choose what trains: "head" | "full" | wb.last(n) | wb.progressive(every=k) | [names].

        Validated now; applied now, or between epochs if training is running. Returns the blocks
        that will train in the next epoch.
        """
        trainable = freezing.trainable_blocks(self.model, spec, epoch=self.epoch)
        with self._pending_lock, self.control.unless_busy("changing the freeze plan") as free:
            if free:
                self._freeze_spec = spec
                self._pending.pop("freeze", None)  # a plan queued earlier is replaced by this one
                self._sync_freeze(trainable)
                self._record("freeze", spec=state.freeze_spec_to_json(spec))
            else:
                self._pending["freeze"] = spec
        self._changed("freeze", pending=not free)
        return trainable

    def configure(self, **settings: Any) -> TrainConfig:
        """Change settings (lr, optimizer, loss, ...). Validated now; applied now, or between epochs
        if training is running. Returns the settings the next epoch will use."""
        with self._pending_lock:
            merged = {**self._pending.get("config", {}), **settings}
            new = self.config.replace(**merged)
            criterion_for(new, self.data)
            if new.head_dropout is not None:
                check_head_dropout(self.model)
            resolve_device(new.device)  # refused now if that device is not here
            with self.control.unless_busy("changing settings") as free:
                if free:  # with any change still queued from a run: it would otherwise undo this one later
                    self._apply_config(new)
                    self._pending.pop("config", None)
                    self._record("configure", settings=jsonable(merged))
                    self._schedule_set(merged)
                else:
                    self._pending["config"] = merged
        self._changed("settings", pending=not free)
        return new

    def step(self, progress: bool | None = None) -> EpochResult | None:
        """Train one epoch, evaluate on the valid split, record and return the result (None when
        it was stopped or interrupted before its first batch: then nothing changed)."""
        results = self.fit(1, progress=progress)
        return results[-1] if results else None

    def fit(self, epochs: int = 1, progress: bool | None = None, stop_after: int | None = None) -> list[EpochResult]:
        """Train `epochs` epochs (fewer if stopped, interrupted or early-stopped). On a fault it
        records what the epoch did and raises a WorkbenchError naming the cause and the fix; the
        notebook's Interrupt button stops it after the current batch, like `stop()`.

        progress: progress bars (tqdm) for epochs, the feature-cache build and the valid pass;
        None = on in notebooks and terminals, off in pipes (workbench.progress).
        stop_after: stop the last epoch after this many batches, as stop() would (to_code replays a
        stopped epoch with it)."""
        epochs = integer("epochs", epochs, low=1, hint="The number of epochs to train, e.g. session.fit(3).")
        if progress is None:
            from ..progress import enabled_by_default

            progress = enabled_by_default()
        if progress:
            from ..progress import ProgressBars

            with ProgressBars(self):
                return self.fit(epochs, progress=False, stop_after=stop_after)
        if stop_after is not None:
            stop_after = integer("stop_after", stop_after, low=0, hint="Batches of the last epoch to train.")
        self.control.acquire(f"training (fit({epochs}))")
        first, results, reason = self.epoch, [], "error"
        self._epoch_at_fit = first
        # Denormal floats made CPU epochs 35x slower here (0.6 s -> 22 s for the same epoch).
        # The flag is per thread and inherited by threads created later, so it is set in the
        # thread that trains, before its OpenMP team starts (see workbench._flush_denormals).
        torch.set_flush_denormal(True)
        try:
            with self.control.interrupt_stops():
                results, reason = self._fit(epochs, stop_after)
        finally:
            self.control.release()
            self.events.emit("fit_end", FitEnd(self.epoch - first, reason))
        return results

    def _fit(self, epochs: int, stop_after: int | None) -> tuple[list[EpochResult], str]:
        results: list[EpochResult] = []
        self.events.emit("fit_start", FitStart(epochs, self.epoch + 1))
        for e in range(epochs):
            if self.control.stop_flag.is_set():
                return results, "stopped"
            self.control.stop_after = stop_after if e == epochs - 1 else None
            self._apply_pending()
            self._cover(epochs - e)  # a plan that ends before this fit does is extended first (lr_plan.py)
            try:
                result = self._run_epoch()
            except Exception:
                if self.history and len(self.history) > len(results) + self._epoch_at_fit:
                    self._record_epoch(self.history[-1])  # a fault recorded a stopped epoch
                raise
            if result is None:  # stopped or interrupted before its first step: nothing changed
                return results, "stopped"
            results.append(result)
            early = not result.stopped and self.early_stopping.due(self.config.early_stopping, self.epoch)
            self._record_epoch(result, early_stopped=early)
            if result.stopped:
                return results, "stopped"
            if early:
                self.predictions = self.early_stopping.restore(self.model.module)  # the best weights
                self._body_version += 1
                return results, "early stopping"
        return results, "finished"

    def stop(self) -> None:
        """Stop after the current batch (thread-safe). The model keeps its last completed step."""
        self.control.stop()

    def pause(self) -> None:
        """Hold training between batches until `resume()` (thread-safe); does nothing when idle."""
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def history_frame(self):
        """The history as a pandas DataFrame, one row per epoch."""
        return history_frame(self.history)

    def summary(self) -> str:
        """What the session decided: blocks and LRs, BN policy, path, loss. Printed, not guessed."""
        fast, why = self.path()
        lines = [
            freezing.describe(self.model, self.trainable, self.config.bn_policy, self._lr(), self.config.lr_decay),
            f"optimizer: {self.config.optimizer}  lr: {self._describe_lr()}  schedule: {self._describe_schedule()}  "
            f"loss: {self.criterion()!r}  device: {self.device}",
            f"next epoch: {self.next_epoch_lr().words()}",
            f"path: {'cached features' if fast else 'full forward'} ({why})",
            *([self._describe_preconditioning()] if fast else []),
            f"mixed precision: {self._describe_amp(fast)}",
        ]
        return "\n".join(lines)

    def features(self, split: str = "valid") -> torch.Tensor:
        """The head's input for every sample of `split` (N, D), in sample order, from the current
        weights: the cached features the fast path trains on (computed once per body state)."""
        if split not in ("train", "valid"):
            raise ConfigError(f"split={split!r} is unknown. Use 'train' or 'valid'.")
        self.control.check_idle(f"read the {split} features")  # they would put the training model in eval mode
        return self._features(split)

    def criterion(self):
        """The loss the next epoch will use (per sample; class weights from the train counts)."""
        return criterion_for(self.config, self.data)

    # ---- changes, built first and swapped in ------------------------------------------------------
    def _sync_freeze(self, trainable: list[str]) -> None:
        """Make requires_grad and the optimizer's param groups match `trainable` (state kept)."""
        freezing.apply_freeze(self.model, trainable)
        freezing.sync_param_groups(self.optimizer, self.model, trainable, self._lr(), self.config.lr_decay)

    def _lr(self, c: TrainConfig | None = None) -> float:
        """The base LR the next epoch starts from: the setting, or the automatic one for its path."""
        c = c or self.config
        return auto_lr(c, self.path(c)[0], self.model.kind)

    def next_lrs(self) -> dict[str, float]:
        """Each block's base LR for the next epoch (lr, or lr=None's automatic choice, with lr_decay)."""
        return freezing.block_lrs(self.model, self._lr(), self.config.lr_decay)

    def _describe_lr(self) -> str:
        return f"{self._lr():.2e}" + ("" if self.config.lr is not None else
                                      f" (auto, {'a head on cached features' if self.path()[0] else 'fine-tuning'})")

    def _describe_amp(self, fast: bool) -> str:
        c = self.config
        if c.amp == "off" or (c.amp == "auto" and self.device.type != "cuda"):
            return "off (float32)" + (" : bf16 ran 1.7x slower on CPUs" if c.amp == "auto" else "")
        measured = self.placement.amp_measured.get((tuple(self.trainable), fast, c.batch_size))
        if c.amp == "auto" and measured:
            return measured[1]
        return "bf16 autocast" + (" (auto: measured at the first full-forward epoch)" if c.amp == "auto" else "")

    def preconditions_head(self) -> bool:
        """Whether a head-only epoch on cached features would train on preconditioned gradients
        (precondition_head, and a head of Linear layers: train/precondition.py)."""
        return preconditions_head(self.config) and linear_only(self.model.head)

    def _describe_preconditioning(self) -> str:
        c = self.config
        if not preconditions_head(c):
            return ("head: plain gradients (" + ("precondition_head=False" if c.precondition_head is False else
                    "an LR you set runs the optimizer as written; precondition_head=True preconditions it") + ")")
        if not linear_only(self.model.head):
            return "head: plain gradients (preconditioning needs a head of Linear layers on the features)"
        return ("head: gradients preconditioned by the cached features' second moment (precondition_head"
                + (", auto with the automatic LR)" if c.precondition_head is None else "=True)"))

    def _describe_schedule(self) -> str:
        name = auto_schedule(self.config, self.path()[0]).name
        return name + (" (auto)" if self.config.schedule.name == "auto" else "")

    def _new_optimizer(self, c: TrainConfig, blocks: list[str]) -> torch.optim.Optimizer:
        lr = self._lr(c)
        groups = freezing.block_groups(self.model, lr, c.lr_decay, blocks)
        return make_optimizer(c.optimizer, groups, lr=lr, weight_decay=c.weight_decay,
                              momentum=c.momentum, nesterov=c.nesterov)

    def _apply_config(self, new: TrainConfig) -> None:
        """Swap in `new` settings: a device move, a new optimizer or new LRs are built first; if any
        step fails the model goes back where it was and nothing else has changed."""
        old, placement, optimizer = self.config, self.placement, self.optimizer
        moving = not placement.same(new)
        rebuild = any(getattr(old, k) != getattr(new, k) for k in REBUILD)
        blocks = [g["name"] for g in optimizer.param_groups]
        if moving:
            kept = None if rebuild else optimizer.state_dict()
            place_model(self.model, resolve_device(new.device), new.channels_last)
            try:
                placement = Placement(self.data, self.model, new, progress=self.events.progress)
                optimizer = self._new_optimizer(new, blocks)
                if kept is not None:
                    optimizer.load_state_dict(kept)  # its state moves to the new device
            except BaseException:
                place_model(self.model, self.placement.device, old.channels_last)
                raise
        elif rebuild:
            optimizer = self._new_optimizer(new, blocks)  # a new optimizer starts fresh
        # -- nothing below can fail --
        if not moving and not rebuild:
            lrs = freezing.block_lrs(self.model, self._lr(new), new.lr_decay)
            for g in optimizer.param_groups:  # new LRs, optimizer state kept
                g["base_lr"] = g["lr"] = lrs[g["name"]]
        if moving:
            self.cache.invalidate()
        self.optimizer, self.placement, self.config = optimizer, placement, new
        if new.head_dropout != old.head_dropout and new.head_dropout is not None:
            self.model.set_head_dropout(new.head_dropout)

    def _apply_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if "config" in pending:
            self._apply_config(self.config.replace(**pending["config"]))
            self._record("configure", settings=jsonable(pending["config"]))
            self._schedule_set(pending["config"])
        if "freeze" in pending:
            self._freeze_spec = pending["freeze"]
            self._record("freeze", spec=state.freeze_spec_to_json(pending["freeze"]))
        if pending:
            self._changed("pending applied")

    def _record(self, op: str, **fields: Any) -> None:
        self.recording.append({"op": op, **fields})

    def _record_epoch(self, result: EpochResult, early_stopped: bool = False) -> None:
        """Epochs run back to back form one fit(n) entry (per-epoch seeds make fit(1) + fit(1) the
        same as fit(2)); a stopped or early-stopped epoch closes it."""
        last = self.recording[-1]
        if last["op"] == "fit" and not last.get("closed"):
            last["epochs"] += 1
        else:
            last = {"op": "fit", "epochs": 1}
            self.recording.append(last)
        if result.stopped is not None:
            last.update(stop_after=result.batches, closed=True, stopped=result.stopped)
        if early_stopped:
            last["closed"] = True

    def _changed(self, what: str, pending: bool = False) -> None:
        self.events.emit("config_change", ConfigChange(what, pending))

    def __repr__(self) -> str:
        return (f"Session({self.model.name} on {self.data.name}: {self.epoch} epochs, "
                f"{len(self.trainable)}/{len(self.model.blocks)} blocks trainable, device={self.device})")
