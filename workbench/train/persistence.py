"""A Session's state and what it hands on: state_dict / load_state_dict, checkpoints, the run as
code or as an Accelerate script, the model exported, distributed training.

A mixin of Session (session.py): these methods read and replace the session's own state, every
change checked whole first (state.check_state) and swapped in at once.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, ConfigError
from . import freezing, state
from .config import resolve_device
from .early_stopping import EarlyStopping
from .placement import Placement, place_model

if TYPE_CHECKING:
    from .session import Session


class StateMixin:
    """Session methods for its state, checkpoints, code, scripts, export and distributed runs."""

    def to_code(self) -> str:
        """A Python cell that rebuilds this run from nothing: data, backbone, settings, freeze plans
        and epochs in the order they took effect. On the CPU it reproduces the weights and the
        history bit for bit (epochs are seeded from (seed, epoch))."""
        from .recording import to_code

        return to_code(self.recording)

    def distribute(self, accelerator) -> None:
        """Train as one process of a distributed run made by Hugging Face Accelerate (the script
        that `to_script` writes calls this): each process takes its share of every batch,
        gradients are averaged through Accelerator.prepare (DDP), and the history is the same on
        every process. The session moves to the accelerator's device."""
        from .distributed import Distributed

        dist = Distributed(accelerator)
        dist.check(self)
        if dist.device.type != self.device.type or (dist.device.type == "cuda" and dist.device != self.device):
            device = "cpu" if dist.device.type == "cpu" else f"cuda:{dist.device.index or 0}"
            with self.control.hold("moving to the run's device"):
                self._apply_config(self.config.replace(device=device))  # not a change of the run: not recorded
        dist.sync_batchnorm(self.model)
        self._dist = dist

    def to_script(self, path, **options):
        """Write a Python script that runs this fine-tuning under `accelerate launch` (one or many GPUs,
        several machines, or CPU processes); see workbench.train.script.write_script."""
        from .script import write_script

        self.control.check_idle("write a script")
        return write_script(self, path, **options)

    def predict(self, items):
        """Labels and probabilities for new items (PIL images, image paths or strings), with the same
        preprocessing as the valid split (workbench.models.export)."""
        from ..models.export import predict

        self.control.check_idle("predict")  # it would put the training model in eval mode mid-epoch
        return predict(self.model, self.data.classes, items, device=self.device)

    def export(self, folder, format: str = "native"):
        """Write the fine-tuned model in its own library's format, loadable without workbench
        (wb.load_exported gives a predictor back); format="onnx" adds an ONNX file."""
        from ..models.export import export

        if self.running:
            raise ConfigError(f"Cannot export while {self.control.holder}; stop or wait for it to end.")
        return export(self.model, self.data.classes, folder, format=format)

    def distil(self, student_backbone, *, temperature: float = 4.0, alpha: float = 0.7, epochs: int = 3,
               freeze="full", name: str | None = None, pretrained: bool = True, progress: bool | None = None,
               stop_at: tuple[int, int] | None = None, data=None, **settings):
        """Train a student (a wb.Model, or a backbone name built at this session's input size) on this
        session's logits (knowledge distillation, train/distil.py) and measure it against this one.
        data: the student's data (default: this session's); another set with the same classes, e.g.
        samples only this session has labelled (use alpha=1 so that their labels are never used).
        Returns a Distillation: `.student` (a new Session), accuracy, agreement, KL, parameters, latency."""
        from .distil import Distillation, check_stop_at

        check_stop_at(stop_at, epochs if isinstance(epochs, int) else 1)
        run = Distillation.prepare(self, student_backbone, temperature=temperature, alpha=alpha, epochs=epochs,
                                   freeze=freeze, name=name, pretrained=pretrained, data=data, **settings)
        return run.run(progress=progress, stop_at=stop_at)

    def compress(self, method: str = "int8", *, amount: float | None = None, measure: bool = True):
        """A compressed copy of the model (models/compress.py): method="int8" (dynamic int8 Linear
        layers) or "prune" (magnitude pruning of `amount` of the weights, made permanent). It predicts
        and exports; its `.table()` compares size, CPU latency and accuracy with this model's."""
        from ..models.compress import compress

        if self.running:
            raise ConfigError(f"Cannot compress while {self.control.holder}; stop or wait for it to end.")
        return compress(self.model, self.data, method, amount=amount, measure=measure)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as plain values and CPU tensors that share nothing with the
        live session: weights, optimizer, schedule position (the history), freeze plan, pending
        changes, predictions, early-stopping state, where the LR schedule started. RNG state needs no saving: every epoch seeds
        itself from (seed, epoch)."""
        self.control.check_idle("take a state_dict()")  # mid-epoch weights would not match the history
        m, d = self.model, self.data
        pending = {k: (state.freeze_spec_to_json(v) if k == "freeze" else dict(v)) for k, v in self._pending.items()}
        return {
            "format": state.STATE_FORMAT,
            "name": self.name,
            "backbone": {"name": m.name, "num_classes": m.num_classes, "options": dict(m.options),
                         "library": getattr(m, "library", None), "rebuildable": bool(getattr(m, "rebuildable", True))},
            "data": {"name": d.name, "kind": d.kind, "classes": list(d.classes), "train": len(d.train),
                     "valid": len(d.valid), "recipe": copy.deepcopy(d.recipe)},
            "model": state.cpu_copy(m.module.state_dict()),
            "optimizer": state.cpu_copy(self.optimizer.state_dict()),
            "optimizer_groups": [g["name"] for g in self.optimizer.param_groups],
            "config": self.config.to_dict(),
            "freeze": state.freeze_spec_to_json(self._freeze_spec),
            "trainable": self.trainable,
            "pending": pending,
            "history": [r.to_dict() for r in self.history],
            "predictions": state.predictions_to_dict(self.predictions),
            "previous_predictions": state.predictions_to_dict(self.previous_predictions),
            "early_stopping": self.early_stopping.to_dict(),
            "recording": copy.deepcopy(self.recording),
            "schedule": {"start_step": self._schedule_start},  # where the LR schedule (re)started: lr_plan.py
            **self._dynamics_state(),  # training dynamics and the verify queue (bounded by the dynamics' cap)
            "rng": {"seeding": "per epoch: torch seed*1000003+epoch, batch order seed*7919+epoch"},
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Load a state from `state_dict()` (same backbone and classes). The whole state is checked
        first; a mismatch raises CheckpointError and the session keeps everything it had."""
        checked = state.check_state(sd, self.model, self.data)
        dynamics = self._checked_dynamics_state(sd)  # absent in older checkpoints: then empty
        c = checked.config
        resolve_device(c.device)
        with self.control.hold("loading a state"):
            if not self.placement.same(c):
                place_model(self.model, resolve_device(c.device), c.channels_last)
                self.placement = Placement(self.data, self.model, c, progress=self.events.progress)
            with torch.no_grad():
                self.model.module.load_state_dict(checked.weights)
            freezing.apply_freeze(self.model, checked.trainable)
            self.optimizer = self._new_optimizer(c, checked.optimizer_groups)
            # checked: groups, counts and shapes fit. A copy: torch's load keeps the given tensors
            # where device and dtype already match, and training would then change the caller's dict
            self.optimizer.load_state_dict(state.cpu_copy(checked.optimizer))
            self.config = c
            if c.head_dropout is not None:
                self.model.set_head_dropout(c.head_dropout)
            self._freeze_spec, self._pending = checked.freeze, checked.pending
            self.history = checked.history
            self.predictions, self.previous_predictions = checked.predictions, checked.previous_predictions
            self.early_stopping = EarlyStopping(checked.best)
            self.recording = copy.deepcopy(checked.recording)
            self._schedule_start = checked.schedule_start
            self._swap_dynamics_state(dynamics)
            if isinstance(sd.get("name"), str):
                self.name = sd["name"]
            self._body_version += 1  # the cached features were computed from other weights
            self.cache.invalidate()
            self._criterion_cache = None
        self._changed("state")

    def save(self, path) -> None:
        """Write a checkpoint folder (atomically: a save that fails leaves the previous one as it was)."""
        from .checkpoint import save

        if self.running:
            raise CheckpointError(f"Cannot save while {self.control.holder}; stop or wait for it to end.")
        save(self.state_dict(), path)

    @classmethod
    def load(cls, path, data=None, model=None) -> Session:
        """Rebuild a session from `save()`. `data` may be omitted for the bundled datasets; `model`
        is needed for a model that cannot be rebuilt by name (wb.Model.from_module)."""
        from ..models import load_backbone
        from .checkpoint import load, reload_data

        sd = load(path)
        data = reload_data(sd["data"], f"The checkpoint {sd['source']!r}") if data is None else data
        backbone = sd["backbone"]
        if model is None:
            if not backbone.get("rebuildable", True):
                raise CheckpointError(
                    f"The checkpoint {sd['source']!r} trained your own module {backbone['name']!r}, which cannot be rebuilt "
                    "by name: pass it, wb.Session.load(path, model=wb.Model.from_module(...)).")
            model = load_backbone(backbone["name"], backbone["num_classes"], pretrained=False, **backbone["options"])
        config = state.check_state(sd, model, data).config
        session = cls(data, model, freeze=state.freeze_spec_from_json(sd["freeze"]), name=sd.get("name"),
                      **config.to_dict())
        session.load_state_dict(sd)
        return session

