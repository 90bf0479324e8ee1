"""The epoch machinery of a Session: plan, train, evaluate, record, and the fault invariant.

After any exception leaves an epoch, the weights (BatchNorm statistics included), optimizer state,
history and predictions agree: the epoch is recorded as stopped with the steps it took (and the
error names the cause and the fix), or, when it took no step, nothing changed at all. The
notebook's Interrupt button (KeyboardInterrupt) stops like `session.stop()`.

A mixin of Session (session.py): these methods use the session's own state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..validate import jsonable
from . import disk_cache, freezing, guards
from .cache import compute_features
from .config import auto_lr, auto_schedule, preconditions_head
from .events import EpochStart, ErrorEvent, EvalEnd, EventBus
from .loop import EpochOutcome, EpochPlan, evaluate, rows_of, train_batch, train_epoch
from .optim import skips_on_device
from .precondition import HeadPreconditioner
from .records import EpochResult, Predictions, macro_f1


class EpochMixin:
    """Session methods that run epochs, the LR range test and the valid pass."""

    def _run_epoch(self) -> EpochResult | None:
        started = time.perf_counter()  # the epoch's wall time includes any cache build and the eval
        self._apply_pending()
        self._apply_pending_labels()
        c, epoch = self.config, self.epoch + 1
        before = self.trainable  # a progressive plan may unfreeze a block now; given back if no step is taken
        self._sync_freeze(freezing.trainable_blocks(self.model, self._freeze_spec, epoch=self.epoch))
        fast, why = self.path()
        criterion = self._epoch_criterion()
        trainable = tuple(self.trainable)
        phase = "cache" if fast else "train"
        group_lrs = {g["name"]: (g["lr"], g["base_lr"]) for g in self.optimizer.param_groups}
        try:
            with torch.random.fork_rng(devices=self.placement.rng_devices()):
                self.placement.seed(c.seed * 1_000_003 + epoch)  # per-epoch seed: resume is bit-identical
                gen = torch.Generator().manual_seed(c.seed * 7919 + epoch)
                plan = self._plan(epoch, fast, criterion, gen)  # the fast path builds its feature cache here
                phase = "train"
                self.events.emit("epoch_start", EpochStart(epoch, trainable, fast, why, len(plan.batches)))
                self._set_train_mode(fast)
                snapshot = guards.changeable_state(self.model, fast)
                opt_state = guards.optimizer_state(self.optimizer)
                outcome = train_epoch(plan, self.events, self.control)
                if self._dist is not None:
                    self._dist.combine(outcome)
                trained = self.model.head if fast else self.model.module
                if outcome.batches and (self._dist is None or not self._dist.active) and \
                        not guards.weights_finite(self.optimizer, trained):
                    outcome = self._to_last_good_step(epoch, fast, criterion, snapshot, opt_state, outcome)
        except KeyboardInterrupt:
            self._untouched(before, group_lrs)
            return None  # before the first step: the weights and the history are as they were
        except Exception as exc:
            self._untouched(before, group_lrs)
            raise self._fault(guards.describe_fault(exc, phase, epoch), exc, phase, epoch) from exc
        if outcome.batches and not guards.weights_finite(self.optimizer, self.model.head if fast else self.model.module):
            with torch.no_grad():  # a distributed run (no re-run there): back to the epoch's start
                self.model.module.load_state_dict(snapshot, strict=False)  # nothing usable is lost
            self.optimizer.load_state_dict(opt_state)
            outcome.stopped = "weights became non-finite during the epoch; rolled back to its start"
            outcome.batches = 0
        if outcome.batches == 0 and outcome.stopped is not None:
            self._untouched(before, group_lrs)
            if outcome.error is not None or "non-finite" in outcome.stopped:
                raise self._fault(outcome.stopped, outcome.error, "train", epoch)
            return None  # stopped or interrupted before the first step
        if not fast and any(n != self._head_name() for n in trainable):
            self._body_version += 1
        valid, error, phase = None, outcome.error, "train"
        if outcome.stopped is None:
            try:
                valid = self._evaluate(fast, criterion, epoch)
            except KeyboardInterrupt:
                outcome.stopped = "interrupted during validation (the epoch's training steps are kept)"
            except Exception as exc:
                outcome.stopped, error, phase = guards.describe_fault(exc, "valid", epoch), exc, "valid"
        result = EpochResult(
            epoch=epoch, train_loss=outcome.loss, train_accuracy=outcome.accuracy,
            valid_loss=valid[0] if valid else None, valid_accuracy=valid[1] if valid else None,
            valid_macro_f1=valid[2] if valid else None,
            lrs={g["name"]: g["lr"] for g in self.optimizer.param_groups},
            trainable=trainable, fast_path=fast, path_reason=why,
            epoch_time_s=time.perf_counter() - started - outcome.paused_s,  # a pause is not training time
            samples_per_s=outcome.samples / max(outcome.seconds, 1e-9),
            batches=outcome.batches, num_batches=len(plan.batches), stopped=outcome.stopped,
            batch_losses=tuple(outcome.batch_losses), batch_lrs=tuple(outcome.batch_lrs),
        )
        self.dynamics.commit(epoch, outcome.batches)
        self.history.append(result)
        if valid and self.config.early_stopping is not None:
            self.early_stopping.track(result, self.model.module, self.predictions)
        self.events.emit("epoch_end", result)
        if error is not None or (outcome.stopped and "non-finite" in outcome.stopped):
            raise self._fault(result.stopped, error, phase, epoch)
        return result

    def _plan(self, epoch: int, fast: bool, criterion, gen: torch.Generator) -> EpochPlan:
        c = self.config
        lrs = freezing.block_lrs(self.model, auto_lr(c, fast, self.model.kind), c.lr_decay)
        for g in self.optimizer.param_groups:  # the base LRs follow the settings and the path, every epoch
            g["base_lr"] = lrs[g["name"]]
        schedule = auto_schedule(c, fast)
        first_step = self._schedule_steps(fast, c)  # steps since the schedule (re)started: lr_plan.py
        weights = None
        if c.sampler == "balanced":
            labels = self.train_labels  # with any relabels
            counts = np.bincount(labels, minlength=self.data.num_classes).astype(np.float64)
            weights = torch.from_numpy(1.0 / counts[labels])
        batches = self.pipeline.order("train", c.batch_size, gen, shuffle=True, sample_weights=weights,
                                      by_length=not fast)
        dist = self._dist
        if dist is not None:
            batches = dist.shard(batches)  # this process's part of every batch
        precondition = None
        if fast:
            features = self._features("train")
            inputs: Callable = rows_of(features)
            forward: Callable = self.model.head
            precondition = self._head_preconditioner(features)
        else:
            augment = c.augment.transform(self.pipeline.image_size) if self.model.kind == "image" else None
            inputs = lambda idx: self.pipeline.batch("train", idx, augment)  # noqa: E731
            self.pipeline.prefetch("train", batches)
            forward = self.model.logits
        if dist is not None and dist.active:  # gradients averaged across the processes (DDP)
            forward = dist.forward(self.model, self.model.head if fast else self.model.module, fast)
        amp_key = (tuple(self.trainable), fast, c.batch_size)
        if not fast and batches and self.placement.needs_amp_measurement(c, amp_key):
            self._measure_amp(amp_key, inputs, forward, criterion, batches[0])
        factor = schedule.factor_fn(len(batches), c.epochs)
        labels = self._training_labels()
        return EpochPlan(
            epoch=epoch, batches=batches, inputs=inputs, labels=labels,
            forward=forward, criterion=criterion, optimizer=self.optimizer, lr_factor=factor,
            first_step=first_step, l1=c.l1, autocast=self.placement.mixed_precision(c, amp_key),
            buffers=list((self.model.head if fast else self.model.module).buffers()),
            deferred=self._deferred_reads() and (dist is None or not dist.active),
            finite=dist.all_finite if dist is not None and dist.active else None,
            precondition=precondition, record=self.dynamics.start_epoch(epoch, batches, labels),
            lr_group=self._head_group(),
        )

    def _head_preconditioner(self, features: torch.Tensor) -> HeadPreconditioner | None:
        """The preconditioner of a linear head on these cached features (built once per cache),
        or None when it is turned off or does not apply (precondition.py)."""
        if not preconditions_head(self.config):
            return None
        if self._preconditioner is None or not self._preconditioner.fresh_for(self.model.head, features):
            self._preconditioner = HeadPreconditioner.for_head(self.model.head, features)
        return self._preconditioner

    def _to_last_good_step(self, epoch: int, fast: bool, criterion, snapshot, opt_state, first) -> EpochOutcome:
        """The epoch left the weights non-finite (an update overflowed before any loss did). Go back to
        its start (weights, BatchNorm statistics, optimizer state) and run it again, seeded as before, with
        a StepGuard that stops before the step that broke them: the epoch then keeps its good steps, as
        a stopped epoch. Costs a copy per step, so only this rare path pays it."""
        with torch.no_grad():
            self.model.module.load_state_dict(snapshot, strict=False)
        self.optimizer.load_state_dict(opt_state)
        c = self.config
        self.placement.seed(c.seed * 1_000_003 + epoch)  # the same draws as the first run
        plan = self._plan(epoch, fast, criterion, torch.Generator().manual_seed(c.seed * 7919 + epoch))
        plan.deferred = False  # eager: every step is checked on the host
        plan.step_guard = guards.StepGuard(self.optimizer, self.model.head if fast else self.model.module)
        self._set_train_mode(fast)
        again = train_epoch(plan, EventBus(), self.control)  # quiet: the views saw the first run's batches
        again.paused_s += first.paused_s
        return again

    def _head_group(self) -> int:
        """The head's param group (the LR the history records per batch); the last group if it has none."""
        return next((i for i, g in enumerate(self.optimizer.param_groups) if g["name"] == self._head_name()), -1)

    def _untouched(self, trainable: list[str], saved: dict[str, tuple[float, float]]) -> None:
        """An epoch that took no step gives back what its start changed: the blocks a progressive
        plan unfroze, and the groups' LRs."""
        if trainable != self.trainable:
            self._sync_freeze(trainable)
        for g in self.optimizer.param_groups:
            g["lr"], g["base_lr"] = saved[g["name"]]

    def _measure_amp(self, key: tuple, inputs, forward, criterion, idx: torch.Tensor) -> None:
        """amp="auto" on CUDA: is bf16 autocast faster than float32 for this training step?"""
        from .placement import measure_autocast

        with torch.random.fork_rng(devices=self.placement.rng_devices()):  # augmentation draws: not the epoch's
            x = inputs(idx.clone())  # a copy: the prefetched first batch stays for the epoch itself
        y = self._training_labels()[idx.to(self.device)]
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self._set_train_mode(False)

        def step(autocast) -> None:
            with autocast():
                loss = criterion(forward(x), y).mean()
            loss.backward()

        with torch.random.fork_rng(devices=self.placement.rng_devices()):  # the epoch's draws stay its own
            self.placement.amp_measured[key] = measure_autocast(step, self.device, list(self.model.module.buffers()),
                                                                params)

    def _deferred_reads(self) -> bool:
        """Read losses on the host once per logging interval instead of every batch: on CUDA,
        where each read stalls the GPU queue, when the optimizer can skip a step on the device.
        On the CPU a read costs nothing and eager mode refuses a bad step before its backward."""
        if self._defer_reads is not None:  # tests force either mode
            return self._defer_reads and skips_on_device(self.optimizer)
        return self.device.type == "cuda" and skips_on_device(self.optimizer)

    def _evaluate(self, fast: bool, criterion, epoch: int) -> tuple[float, float, float]:
        """The valid pass; the predictions change only once it has completed."""
        freezing.set_training(self.model.submodules(), False)  # = module.eval()
        order = self.pipeline.order("valid", self._eval_batch(), None, shuffle=False, by_length=True)
        dist = self._dist if self._dist is not None and self._dist.active else None
        if dist is not None:
            order = dist.shard_order(order)
        if fast:
            inputs: Callable = rows_of(self._features("valid"))
            forward: Callable = self.model.head
        else:
            inputs, forward = (lambda idx: self.pipeline.batch("valid", idx)), self.model.logits
            self.pipeline.prefetch("valid", order)
        labels = self.pipeline.labels("valid")
        amp = self.placement.mixed_precision(self.config, (tuple(self.trainable), fast, self.config.batch_size))
        logits, losses = evaluate(order, inputs, labels, forward, criterion, amp,
                                  progress=self.events.progress("validation", len(order)), some=dist is not None)
        if dist is not None:
            logits, losses = dist.merge(logits, losses)  # every process gets every row
        y = self.data.valid.labels
        pred = logits.argmax(1)
        acc = float((pred == y).mean())
        f1 = macro_f1(y, pred, self.data.num_classes)
        self.previous_predictions, self.predictions = (
            self.predictions, Predictions(logits, y.astype(np.int64), losses, np.arange(len(y)), epoch))
        self.dynamics.record_valid(self.predictions)
        valid_loss = float(losses.mean())
        self.events.emit("eval_end", EvalEnd(epoch, valid_loss, acc, f1))
        return valid_loss, acc, f1

    # ---- decisions ------------------------------------------------------------------------
    def _head_name(self) -> str:
        return self.model.block_names[-1]

    def path(self, config=None, trainable: list[str] | None = None) -> tuple[bool, str]:
        """Whether the next epoch trains on cached features (the fast path), and why (not); for other
        settings or trainable blocks when given."""
        c = config or self.config
        if not c.fast_path:
            return False, "fast path turned off (fast_path=False)"
        body_trainable = [n for n in (self.trainable if trainable is None else trainable) if n != self._head_name()]
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
            self.pipeline.prefetch(split, order)
            mixed_precision = self.placement.mixed_precision(self.config)
            with mixed_precision():
                return compute_features(self.model.features, lambda idx: self.pipeline.batch(split, idx),
                                        order, len(getattr(self.data, split)),
                                        progress=self.events.progress(f"features ({split})", len(order)))

        # a frozen body's features also go to disk, for the next kernel (train/disk_cache.py)
        return self.cache.get(key, split, lambda: disk_cache.load_or_compute(self, split, compute))

    def _eval_batch(self) -> int:
        return self.placement.eval_batch(self.config)

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

    def find_lr(self, start: float = 1e-7, end: float = 10.0, steps: int = 100, progress: bool | None = None):
        """LR range test (Smith 2015, fastai's lr_find): one training step per LR, rising
        exponentially; the weights, BatchNorm statistics and optimizer state are restored after."""
        from ..progress import ProgressBars, enabled_by_default
        from .lr_finder import check_range, range_test

        if progress is None:
            progress = enabled_by_default()
        if progress:
            with ProgressBars(self):
                return self.find_lr(start, end, steps, progress=False)

        lrs = check_range(start, end, steps)
        self.control.acquire("finding the learning rate (find_lr)")
        self._record("find_lr", start=float(start), end=float(end), steps=int(steps))
        weights = {k: v.detach().clone() for k, v in self.model.module.state_dict().items()}
        opt_state = copy.deepcopy(self.optimizer.state_dict())
        try:
            with torch.random.fork_rng(devices=self.placement.rng_devices()):
                self.placement.seed(self.config.seed)
                fast, _ = self.path()
                plan = self._plan(self.epoch + 1, fast, self._epoch_criterion(),
                                  torch.Generator().manual_seed(self.config.seed))
                if self.config.precondition_head is None:  # the LR it suggests is one you set: the
                    plan.precondition = None  # optimizer then runs as written (config.preconditions_head)
                self._set_train_mode(fast)
                trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
                labels_of = rows_of(plan.labels)
                base = auto_lr(self.config, fast, self.model.kind)

                def one_step(i: int, lr: float) -> float | None:
                    for g in self.optimizer.param_groups:  # keep the discriminative ratios
                        g["lr"] = lr * g["base_lr"] / base
                    idx = plan.batches[i % len(plan.batches)]
                    loss, _ = train_batch(plan, idx, labels_of(idx), trainable, None)
                    return None if loss is None else loss.item()  # the curve needs every value

                report = self.events.progress("LR range test", len(lrs))

                def reported_step(i: int, lr: float) -> float | None:
                    loss = one_step(i, lr)
                    report(i + 1)
                    return loss

                return range_test(reported_step, lrs, stopped=self.control.stop_flag.is_set)
        finally:
            with torch.no_grad():
                self.model.module.load_state_dict(weights)
            self.optimizer.load_state_dict(opt_state)
            self.control.release()

    def fit_head(self, C=None) -> EpochResult:
        """Fit the head exactly on the cached features and record it as an epoch (one step): the
        optimum a frozen backbone allows, in seconds. Multinomial logistic regression by L-BFGS,
        its L2 strength chosen by 3-fold cross-validation on the train split from C in
        (0.1, 1, 10, 100) unless `C` is given (a value or a list). Needs every block below the head
        frozen (the fast path); the head's optimizer state starts fresh afterwards."""
        from .head_fit import fit_linear_head, linear_head, solves

        fast, why = self.path()
        if not fast:
            raise ConfigError(f"fit_head needs the head alone on cached features, but the next epoch is a full "
                              f"forward ({why}). Freeze the body first: session.freeze('head').")
        linear = linear_head(self.model.head)
        self.control.acquire("fitting the head (fit_head)")
        started = time.perf_counter()
        try:
            epoch, criterion = self.epoch + 1, self._epoch_criterion()
            x, y = self._features("train"), self._training_labels()
            weight = getattr(criterion, "weight", None)
            fit = fit_linear_head(x, y, self.data.num_classes, C, class_weight=weight, seed=self.config.seed,
                                  progress=self.events.progress("exact head fit", solves(C)))
            with torch.no_grad():
                linear.weight.copy_(fit.weight.to(linear.weight))
                linear.bias.copy_(fit.bias.to(linear.bias))
            for p in linear.parameters():
                self.optimizer.state.pop(p, None)  # Adam moments of another solution would pull it away
            with torch.no_grad():
                logits = self.model.head.eval()(x)
                train_acc = float((logits.argmax(1) == y).float().mean())
            valid = self._evaluate(True, criterion, epoch)
            cv = ", ".join(f"C={c:g}: {a:.3f}" for c, a in fit.cv_accuracy.items())
            result = EpochResult(
                epoch=epoch, train_loss=fit.loss, train_accuracy=train_acc, valid_loss=valid[0],
                valid_accuracy=valid[1], valid_macro_f1=valid[2],
                lrs={g["name"]: g["lr"] for g in self.optimizer.param_groups}, trainable=tuple(self.trainable),
                fast_path=True, path_reason=(f"exact head fit: logistic regression by L-BFGS, {fit.iterations} "
                                             f"iterations, C={fit.C:g}" + (f" by 3-fold CV on train ({cv})" if cv else "")),
                epoch_time_s=time.perf_counter() - started, samples_per_s=len(y) / max(time.perf_counter() - started, 1e-9),
                batches=1, num_batches=1, batch_losses=(fit.loss,), batch_lrs=(self.optimizer.param_groups[self._head_group()]["lr"],),
            )
            self.dynamics.record_all(epoch, logits, y)
            self.history.append(result)
            self._record("fit_head", C=jsonable(C))
            self.events.emit("epoch_end", result)
            return result
        finally:
            self.control.release()

    # ---- faults -----------------------------------------------------------------------------------
    def _fault(self, reason: str, error: BaseException | None, phase: str, epoch: int) -> Exception:
        if self.device.type == "cuda" and guards.is_out_of_memory(error):
            torch.cuda.empty_cache()  # give the failed batch's memory back before the next try
        exc = guards.fault_error(reason, error, self.config, epoch, phase, self._eval_batch(), self._lr())
        self.events.emit("error", ErrorEvent(message=str(exc), where="training", exception=error))
        return exc

    def _epoch_criterion(self):
        """The criterion on the device, rebuilt only when the settings changed (counts cost ~0.5 ms)."""
        if self._criterion_cache is None or self._criterion_cache[0] is not self.config:
            self._criterion_cache = (self.config, self.criterion().to(self.device))
        return self._criterion_cache[1]

