"""Session: owns the model, optimizer, freeze state, history and latest predictions.

`step()` trains one epoch and evaluates; `fit(n)` repeats it. `stop()`, `pause()`, `resume()`
are thread-safe flags checked between batches, so a widget can run `fit` in a thread and stay
responsive. Every decision the session makes (which blocks train, at which LR, which path runs)
is visible in `summary()` and in the history.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from . import freezing, guards
from .cache import FeatureCache, compute_features
from .config import TrainConfig, check_compatible, criterion_for, resolve_device
from .events import EventBus, EvalEnd, FitEnd, FitStart, EpochStart, ErrorEvent
from .loop import EpochPlan, evaluate, rows_of, train_epoch
from .optim import make_optimizer, skips_on_device
from .pipeline import Pipeline
from .records import EpochResult, Predictions, history_frame, macro_f1

# Forward-only passes (evaluation, the feature cache): big batches keep a GPU busy, while on this
# kind of CPU 64 images ran 1.3x faster per image than 256 (cache-sized activations; text 1.05x).
EVAL_BATCH = {"cuda": 256, "cpu": 64}


class Session:
    """Fine-tune `model` on `data`, one epoch at a time. See TrainConfig for the settings."""

    def __init__(self, data, model, *, freeze: Any = "head", **settings: Any) -> None:
        config = TrainConfig().replace(**settings)  # validates every setting first
        check_compatible(data, model)
        criterion_for(config, data)
        trainable = freezing.trainable_blocks(model, freeze, epoch=0)
        # -- nothing above changed any state; from here on the session is built --
        self.data, self.model, self.config = data, model, config
        self.events = EventBus()
        self.history: list[EpochResult] = []
        self.predictions: Predictions | None = None
        self.previous_predictions: Predictions | None = None
        self.global_step = 0
        self._freeze_spec = freeze
        self._stop, self._running = threading.Event(), threading.Event()
        self._running.set()  # "not paused"
        self._busy = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._body_version = 0  # bumps whenever weights below the head may have changed
        self._best: tuple[float, int, dict[str, torch.Tensor], Predictions | None] | None = None
        self.cache = FeatureCache()
        self._criterion_cache: tuple[TrainConfig, Any] | None = None
        self._defer_reads: bool | None = None  # None: deferred on CUDA (see _deferred_reads)
        self.device = resolve_device(config.device)
        self.pipeline = Pipeline(data, model, self.device, config.channels_last)
        model.module.to(self.device)
        if model.kind == "image" and config.channels_last:
            model.module.to(memory_format=torch.channels_last)
        self._apply_head_dropout()
        self.optimizer = self._build_optimizer(trainable)

    # ---- public API -----------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Epochs done so far (a stopped epoch counts: its steps changed the weights)."""
        return len(self.history)

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
        return self._busy.locked()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def on(self, event: str, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """Subscribe `fn` to an event: fit_start, epoch_start, batch_end, eval_end, epoch_end, fit_end, error."""
        return self.events.on(event, fn)

    def off(self, event: str, fn: Callable[[Any], None]) -> None:
        self.events.off(event, fn)

    def freeze(self, spec: Any) -> list[str]:
        """Choose what trains: "head" | "full" | wb.last(n) | wb.progressive(every=k) | [names].

        Validated now; applied now, or between epochs if training is running. Returns the blocks
        that will train in the next epoch.
        """
        trainable = freezing.trainable_blocks(self.model, spec, epoch=self.epoch)
        if self.running:
            self._pending["freeze"] = spec
        else:
            self._freeze_spec = spec
            self._sync_freeze(trainable)
        return trainable

    def configure(self, **settings: Any) -> TrainConfig:
        """Change settings (lr, optimizer, loss, ...). Validated now; applied between epochs."""
        new = self.config.replace(**{**self._pending.get("config", {}), **settings})
        criterion_for(new, self.data)
        if self.running:
            self._pending["config"] = {**self._pending.get("config", {}), **settings}
            return new
        self._apply_config(new)
        return new

    def step(self) -> EpochResult:
        """Train one epoch, evaluate on the valid split, record and return the result."""
        return self.fit(1)[-1]

    def fit(self, epochs: int = 1) -> list[EpochResult]:
        """Train `epochs` epochs (fewer if stopped or early-stopped). Raises TrainingError on a
        fault, after recording the partial epoch; the model keeps its last good step."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}.")
        if not self._busy.acquire(blocking=False):
            raise ConfigError("This session is already training. Wait for it, or call session.stop().")
        results: list[EpochResult] = []
        reason = "finished"
        # Denormal floats made CPU epochs 35x slower here (0.6 s -> 22 s for the same epoch).
        # The flag is per thread and inherited by threads created later, so it is set in the
        # thread that trains, before its OpenMP team starts (see workbench._flush_denormals).
        torch.set_flush_denormal(True)
        try:
            self.events.emit("fit_start", FitStart(epochs, self.epoch + 1))
            for _ in range(epochs):
                if self._stop.is_set():
                    reason = "stopped"
                    break
                result = self._run_epoch()
                results.append(result)
                if result.stopped:
                    reason = "stopped"
                    break
                if self._early_stop_due():
                    reason = "early stopping"
                    break
        except Exception:
            reason = "error"
            raise
        finally:
            self._stop.clear()
            self._busy.release()
            self.events.emit("fit_end", FitEnd(len(results), reason))
        return results

    def stop(self) -> None:
        """Stop after the current batch (thread-safe). The model keeps its last completed step."""
        if self.running:
            self._stop.set()
        self._running.set()

    def pause(self) -> None:
        """Hold training between batches until `resume()` (thread-safe)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def history_frame(self):
        """The history as a pandas DataFrame, one row per epoch."""
        return history_frame(self.history)

    def summary(self) -> str:
        """What the session decided: blocks and LRs, BN policy, path, loss. Printed, not guessed."""
        fast, why = self.path()
        lines = [
            freezing.describe(self.model, self.trainable, self.config.bn_policy, self.config.lr, self.config.lr_decay),
            f"optimizer: {self.config.optimizer}  schedule: {self.config.schedule.name}  "
            f"loss: {self.criterion()!r}  device: {self.device}",
            f"path: {'cached features' if fast else 'full forward'} ({why})",
        ]
        return "\n".join(lines)

    def features(self, split: str = "valid") -> torch.Tensor:
        """The head's input for every sample of `split` (N, D), in sample order, from the current
        weights: the cached features the fast path trains on (computed once per body state)."""
        if split not in ("train", "valid"):
            raise ConfigError(f"split={split!r} is unknown. Use 'train' or 'valid'.")
        return self._features(split)

    def criterion(self):
        """The loss the next epoch will use (per sample; class weights from the train counts)."""
        return criterion_for(self.config, self.data)

    def _epoch_criterion(self):
        """The criterion on the device, rebuilt only when the settings changed (counts cost ~0.5 ms)."""
        if self._criterion_cache is None or self._criterion_cache[0] is not self.config:
            self._criterion_cache = (self.config, self.criterion().to(self.device))
        return self._criterion_cache[1]

    def find_lr(self, start: float = 1e-7, end: float = 10.0, steps: int = 100):
        """LR range test; restores the weights and optimizer state it started from."""
        from .lr_finder import find_lr

        return find_lr(self, start=start, end=end, steps=steps)

    def save(self, path) -> None:
        """Write a checkpoint folder: weights as safetensors, the rest as JSON and a tensor file."""
        from .checkpoint import save

        save(self, path)

    @classmethod
    def load(cls, path, data=None) -> Session:
        """Rebuild a session from `save()`; `data` may be omitted for the bundled datasets."""
        from .checkpoint import load

        return load(path, data)

    # ---- one epoch --------------------------------------------------------------------------
    def _run_epoch(self) -> EpochResult:
        started = time.perf_counter()  # the epoch's wall time includes any cache build and the eval
        self._apply_pending()
        c, epoch = self.config, self.epoch + 1
        self._sync_freeze(freezing.trainable_blocks(self.model, self._freeze_spec, epoch=self.epoch))
        fast, why = self.path()
        criterion = self._epoch_criterion()
        with torch.random.fork_rng(devices=self._rng_devices()):
            self._seed_devices(c.seed * 1_000_003 + epoch)  # per-epoch seed: resume is bit-identical
            gen = torch.Generator().manual_seed(c.seed * 7919 + epoch)
            plan = self._plan(epoch, fast, criterion, gen)
            trainable = tuple(self.trainable)
            self.events.emit("epoch_start", EpochStart(epoch, trainable, fast, why, len(plan.batches)))
            self._set_train_mode(fast)
            snapshot = guards.changeable_state(self.model, fast)
            outcome = train_epoch(plan, self.events, self._stop, self._running)
        if outcome.batches and not guards.weights_finite(self.optimizer, self.model.head if fast else self.model.module):
            self.model.module.load_state_dict(snapshot, strict=False)  # nothing usable is lost
            outcome.stopped = "weights became non-finite during the epoch; rolled back to its start"
            outcome.batches = 0
        if not fast and any(n != self._head_name() for n in trainable) and outcome.batches:
            self._body_version += 1
        self.global_step += outcome.batches
        valid = None if outcome.stopped else self._evaluate(fast, criterion, epoch)
        result = EpochResult(
            epoch=epoch, train_loss=outcome.loss, train_accuracy=outcome.accuracy,
            valid_loss=valid[0] if valid else None, valid_accuracy=valid[1] if valid else None,
            valid_macro_f1=valid[2] if valid else None,
            lrs={g["name"]: g["lr"] for g in self.optimizer.param_groups},
            trainable=trainable, fast_path=fast, path_reason=why,
            epoch_time_s=time.perf_counter() - started, samples_per_s=outcome.samples / max(outcome.seconds, 1e-9),
            batches=outcome.batches, num_batches=len(plan.batches), stopped=outcome.stopped,
            batch_losses=tuple(outcome.batch_losses), batch_lrs=tuple(outcome.batch_lrs),
        )
        self.history.append(result)
        if valid:
            self._track_best(result)
        self.events.emit("epoch_end", result)
        if outcome.error is not None or (outcome.stopped and "non-finite" in outcome.stopped):
            raise self._fault(result, outcome.error)
        return result

    def _plan(self, epoch: int, fast: bool, criterion, gen: torch.Generator) -> EpochPlan:
        c, train = self.config, self.data.train
        weights = None
        if c.sampler == "balanced":
            counts = np.bincount(train.labels, minlength=self.data.num_classes).astype(np.float64)
            weights = torch.from_numpy(1.0 / counts[train.labels])
        batches = self.pipeline.order("train", c.batch_size, gen, shuffle=True, sample_weights=weights,
                                      by_length=not fast)
        if fast:
            inputs: Callable = rows_of(self._features("train"))
            forward: Callable = self.model.head
        else:
            augment = c.augment.transform(self.pipeline.image_size) if self.model.kind == "image" else None
            inputs = lambda idx: self.pipeline.batch("train", idx, augment)  # noqa: E731
            forward = self.model.logits
        factor = c.schedule.factor_fn(len(batches), c.epochs)
        return EpochPlan(
            epoch=epoch, batches=batches, inputs=inputs, labels=self.pipeline.labels("train"),
            forward=forward, criterion=criterion, optimizer=self.optimizer, lr_factor=factor,
            first_step=self.global_step, l1=c.l1, autocast=self._mixed_precision(),
            buffers=list((self.model.head if fast else self.model.module).buffers()),
            deferred=self._deferred_reads(),
        )

    def _deferred_reads(self) -> bool:
        """Read losses on the host once per logging interval instead of every batch: on CUDA,
        where each read stalls the GPU queue, when the optimizer can skip a step on the device.
        On the CPU a read costs nothing and eager mode refuses a bad step before its backward."""
        if self._defer_reads is not None:  # tests force either mode
            return self._defer_reads and skips_on_device(self.optimizer)
        return self.device.type == "cuda" and skips_on_device(self.optimizer)

    def _evaluate(self, fast: bool, criterion, epoch: int) -> tuple[float, float, float]:
        freezing.set_training(self.model.submodules(), False)  # = module.eval()
        order = self.pipeline.order("valid", self._eval_batch(), None, shuffle=False, by_length=True)
        if fast:
            inputs: Callable = rows_of(self._features("valid"))
            forward: Callable = self.model.head
        else:
            inputs, forward = (lambda idx: self.pipeline.batch("valid", idx)), self.model.logits
        labels = self.pipeline.labels("valid")
        logits, losses = evaluate(order, inputs, labels, forward, criterion, self._mixed_precision())
        y = self.data.valid.labels
        pred = logits.argmax(1)
        acc = float((pred == y).mean())
        f1 = macro_f1(y, pred, self.data.num_classes)
        self.previous_predictions = self.predictions
        self.predictions = Predictions(logits, y.astype(np.int64), losses, np.arange(len(y)), epoch)
        valid_loss = float(losses.mean())
        self.events.emit("eval_end", EvalEnd(epoch, valid_loss, acc, f1))
        return valid_loss, acc, f1

    # ---- decisions ------------------------------------------------------------------------
    def _head_name(self) -> str:
        return self.model.block_names[-1]

    def path(self) -> tuple[bool, str]:
        """Whether the next epoch trains on cached features (the fast path), and why (not)."""
        c = self.config
        if not c.fast_path:
            return False, "fast path turned off (fast_path=False)"
        body_trainable = [n for n in self.trainable if n != self._head_name()]
        if body_trainable:
            return False, f"{len(body_trainable)} block(s) below the head train"
        if self.model.kind == "image" and c.augment.active:
            return False, "augmentation makes every epoch's inputs different"
        if c.bn_policy != "frozen":
            return False, "bn_policy='train' lets frozen BatchNorm statistics change"
        return True, "every block below the head is frozen and the inputs are fixed"

    def _features(self, split: str) -> torch.Tensor:
        key = (tuple(self.trainable), self._body_version, self.pipeline.signature(), self.config.channels_last)

        def compute() -> torch.Tensor:
            self.model.module.eval()
            order = self.pipeline.order(split, self._eval_batch(), None, shuffle=False, by_length=True)
            mixed_precision = self._mixed_precision()
            with mixed_precision():
                return compute_features(self.model.features, lambda idx: self.pipeline.batch(split, idx),
                                        order, len(getattr(self.data, split)))

        return self.cache.get(key, split, compute)

    def _eval_batch(self) -> int:
        return EVAL_BATCH.get(self.device.type, 64)

    def _set_train_mode(self, fast: bool) -> None:
        """module.train(), then frozen blocks back to eval (BN statistics and dropout fixed).

        With the whole body frozen, everything but the head runs in eval mode: a fixed feature
        extractor, exactly what the cached-feature path computes.
        """
        module = self.model.module
        if self.config.bn_policy == "frozen" and (fast or self.trainable == [self._head_name()]):
            freezing.set_training(self.model.submodules(), False)  # = module.eval(), cheaper
            freezing.set_training(self.model.head.modules(), True)
            return
        module.train()
        if self.config.bn_policy == "frozen":
            freezing.apply_bn_policy(self.model, "frozen")

    def _sync_freeze(self, trainable: list[str]) -> None:
        """Make requires_grad and the optimizer's param groups match `trainable` (state kept)."""
        freezing.apply_freeze(self.model, trainable)
        if hasattr(self, "optimizer"):
            freezing.sync_param_groups(self.optimizer, self.model, trainable, self.config.lr, self.config.lr_decay)

    def _build_optimizer(self, trainable: list[str]) -> torch.optim.Optimizer:
        freezing.apply_freeze(self.model, trainable)
        c = self.config
        groups = freezing.block_groups(self.model, c.lr, c.lr_decay, trainable)
        return make_optimizer(c.optimizer, groups, lr=c.lr, weight_decay=c.weight_decay,
                              momentum=c.momentum, nesterov=c.nesterov)

    def _apply_config(self, new: TrainConfig) -> None:
        old, self.config = self.config, new
        rebuild = ("optimizer", "momentum", "nesterov", "weight_decay")
        if any(getattr(old, k) != getattr(new, k) for k in rebuild):
            self.optimizer = self._build_optimizer(self.trainable)  # a new optimizer starts fresh
        elif (old.lr, old.lr_decay) != (new.lr, new.lr_decay):
            fresh = {g["name"]: g["lr"] for g in freezing.block_groups(self.model, new.lr, new.lr_decay, self.trainable)}
            for g in self.optimizer.param_groups:  # new LRs, optimizer state kept
                g["base_lr"] = g["lr"] = fresh[g["name"]]
        if (new.device, new.channels_last) != (old.device, old.channels_last):
            self.device = resolve_device(new.device)
            self.model.module.to(self.device)
            self.pipeline = Pipeline(self.data, self.model, self.device, new.channels_last)
            self.cache.invalidate()
        if new.head_dropout != old.head_dropout:
            self._apply_head_dropout()

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, {}
        if "config" in pending:
            self._apply_config(self.config.replace(**pending["config"]))
        if "freeze" in pending:
            self._freeze_spec = pending["freeze"]

    def _apply_head_dropout(self) -> None:
        if self.config.head_dropout is not None:
            self.model.set_head_dropout(self.config.head_dropout)

    def _track_best(self, result: EpochResult) -> None:
        if self.config.early_stopping is None or result.valid_loss is None:
            return
        if self._best is None or result.valid_loss < self._best[0]:
            weights = {k: v.detach().cpu().clone() for k, v in self.model.module.state_dict().items()}
            self._best = (result.valid_loss, result.epoch, weights, self.predictions)

    def _early_stop_due(self) -> bool:
        patience = self.config.early_stopping
        if patience is None or self._best is None or self.epoch - self._best[1] < patience:
            return False
        _, _, weights, predictions = self._best
        self.model.module.load_state_dict(weights)  # restore the best epoch's weights
        self.predictions = predictions
        self._body_version += 1
        return True

    def _fault(self, result: EpochResult, error: BaseException | None) -> Exception:
        exc = guards.fault_error(result.stopped or "error", error, self.config, result.epoch)
        self.events.emit("error", ErrorEvent(message=str(exc), where="training", exception=error))
        return exc

    def _mixed_precision(self) -> Callable[[], contextlib.AbstractContextManager]:
        """A context-manager factory for mixed precision, decided once per pass: reading
        `device.type` builds a string in C++ each call, which cost ~8 us a batch in the loop."""
        if self.config.amp == "off" or (self.config.amp == "auto" and self.device.type != "cuda"):
            return contextlib.nullcontext
        return functools.partial(torch.autocast, self.device.type, dtype=torch.bfloat16)

    def _seed_devices(self, seed: int) -> None:
        """Seed the CPU generator and the session's GPU. Not torch.manual_seed: with CUDA built in
        but unused it formats a stack trace per call for lazy init (~0.2 ms, every epoch)."""
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            with torch.cuda.device(self.device):
                torch.cuda.manual_seed(seed)

    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def __repr__(self) -> str:
        return (f"Session({self.model.name} on {self.data.name}: {self.epoch} epochs, "
                f"{len(self.trainable)}/{len(self.model.blocks)} blocks trainable, device={self.device})")
