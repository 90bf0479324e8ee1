"""Training settings: one frozen dataclass, validated before any state changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.transforms import Augment
from ..errors import ConfigError, suggest
from .losses import LOSSES, make_criterion
from .optim import OPTIMIZERS, Schedule

SAMPLERS = ("random", "balanced")
BN_POLICIES = ("frozen", "train")
AMP_MODES = ("auto", "bf16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how an epoch trains. Change it with `session.configure(...)`."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 5  # the planned run length: the horizon of cosine / one-cycle / step schedules
    schedule: Schedule = field(default_factory=Schedule)
    weight_decay: float = 0.0
    l1: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    class_weights: str | tuple[float, ...] | None = None
    sampler: str = "random"
    augment: Augment = field(default_factory=Augment)
    early_stopping: int | None = None  # patience in epochs on the valid loss; None = off
    lr_decay: float = 1.0  # discriminative LR: each block below the head gets lr * lr_decay**distance
    bn_policy: str = "frozen"
    head_dropout: float | None = None  # None = leave the model's own head dropout
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    fast_path: bool = True

    def validate(self) -> TrainConfig:
        """Return self if every setting is usable; else raise ConfigError naming it and the fix."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("loss", self.loss, LOSSES)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("bn_policy", self.bn_policy, BN_POLICIES)
        _choice("amp", self.amp, AMP_MODES)
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}. Typical: 1e-3 (Adam/AdamW) or 1e-2 (SGD); try session.find_lr().")
        _positive_int("batch_size", self.batch_size, "Typical: 32-128; halve it if memory runs out.")
        _positive_int("epochs", self.epochs, "It sets the horizon of the LR schedule.")
        if self.weight_decay < 0 or self.l1 < 0:
            raise ConfigError("weight_decay and l1 must be >= 0 (0 turns them off).")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}.")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov=True needs optimizer='sgd' with momentum > 0.")
        if self.early_stopping is not None:
            _positive_int("early_stopping", self.early_stopping, "It is the patience in epochs, or None to turn it off.")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}. 1 = same LR everywhere; 0.5 halves it per block down.")
        if self.head_dropout is not None and not 0 <= self.head_dropout < 1:
            raise ConfigError(f"head_dropout must be in [0, 1), got {self.head_dropout}.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"device={self.device!r} is not understood. Use 'auto', 'cpu' or 'cuda'.")
        self.schedule.validate()
        self.augment.validate()
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with `changes`; unknown names get close-match suggestions."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                raise ConfigError(f"Unknown setting {key!r}.{suggest(key, names)} Settings: {', '.join(sorted(names))}.")
        return dataclasses.replace(self, **normalise(changes)).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.class_weights, tuple):
            d["class_weights"] = list(self.class_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**normalise({k: v for k, v in d.items() if k in names})).validate()


def normalise(changes: dict[str, Any]) -> dict[str, Any]:
    """Accept friendly spellings: schedule="cosine" or a dict, augment=dict(flip=True), lists."""
    out = dict(changes)
    if isinstance(out.get("schedule"), str):
        out["schedule"] = Schedule(name=out["schedule"])
    elif isinstance(out.get("schedule"), dict):
        out["schedule"] = Schedule(**out["schedule"])
    if isinstance(out.get("augment"), dict):
        out["augment"] = Augment(**out["augment"])
    elif out.get("augment") is None and "augment" in out:
        out["augment"] = Augment()
    if isinstance(out.get("class_weights"), Sequence) and not isinstance(out["class_weights"], str):
        out["class_weights"] = tuple(float(w) for w in out["class_weights"])
    if isinstance(out.get("optimizer"), str):
        out["optimizer"] = out["optimizer"].lower()
    return out


def _choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"Unknown {name} {value!r}.{suggest(str(value), choices)} Choose one of: {', '.join(choices)}.")


def _positive_int(name: str, value: Any, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}. {hint}")


def criterion_for(c: TrainConfig, data):
    """Build (and so validate) the loss settings of `c` for `data`."""
    return make_criterion(c.loss, label_smoothing=c.label_smoothing, focal_gamma=c.focal_gamma,
                          class_weights=c.class_weights, train_counts=data.class_counts("train").tolist())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is available here. Use device='auto' or 'cpu'.")
    return torch.device(name)


def check_compatible(data, model) -> None:
    """Data and model must agree on kind and class count (checked before anything is built)."""
    if data.kind != model.kind:
        raise ConfigError(
            f"The data holds {data.kind}s but {model.name!r} is {'an' if model.kind == 'image' else 'a'} "
            f"{model.kind} backbone. "
            f"Pick one from wb.list_backbones(kind={data.kind!r})."
        )
    if data.num_classes != model.num_classes:
        raise ConfigError(
            f"The data has {data.num_classes} classes but the model's head has {model.num_classes} outputs. "
            f"Build it with wb.load_backbone({model.name!r}, num_classes=data.num_classes)."
        )
