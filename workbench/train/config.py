"""Training settings: one frozen dataclass, validated before any state changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.transforms import Augment
from ..errors import ConfigError, DataError, suggest
from ..validate import boolean, choice, from_mapping, integer, number
from .losses import LOSSES, make_criterion
from .optim import OPTIMIZERS, Schedule

SAMPLERS = ("random", "balanced")
BN_POLICIES = ("frozen", "train")
AMP_MODES = ("auto", "bf16", "off")
# what other libraries call our settings: named in the error for an unknown setting
ALIASES = {"learning_rate": "lr", "bs": "batch_size", "batchsize": "batch_size", "wd": "weight_decay",
           "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "scheduler": "schedule",
           "lr_scheduler": "schedule", "dropout": "head_dropout", "augmentation": "augment",
           "criterion": "loss", "patience": "early_stopping", "gamma": "focal_gamma"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how an epoch trains. Change it with `session.configure(...)`."""

    optimizer: str = "adamw"
    lr: float | None = None  # None = auto: see auto_lr (a head on cached features learns at a higher LR)
    batch_size: int = 64
    epochs: int = 5  # the planned run length: the horizon of cosine / one-cycle / step schedules
    schedule: Schedule = field(default_factory=lambda: Schedule("auto"))  # auto: see auto_schedule
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
    # a linear head on cached features: gradients preconditioned by the features' second moment
    # (precondition.py), which takes it to the logistic-regression optimum in a few epochs.
    # None = auto: with the automatic LR (lr=None); an LR you set runs the optimizer as written
    precondition_head: bool | None = None
    eval_batch_size: int | None = None  # forward-only passes (valid, feature cache); None = 64 CPU / 256 GPU

    def validate(self) -> TrainConfig:
        """This config with every setting checked and in its plain type; ConfigError naming the
        first bad one and the fix otherwise. Nothing is changed by a failed check."""
        v = dict(
            optimizer=choice("optimizer", self.optimizer, OPTIMIZERS),
            lr=None if self.lr is None else number(
                "lr", self.lr, low=0, low_open=True,
                hint="Typical: 1e-3 (Adam/AdamW) or 1e-2 (SGD); try session.find_lr(), or lr=None for the automatic choice."),
            batch_size=integer("batch_size", self.batch_size, low=2,
                               hint="A batch of one cannot train BatchNorm layers; typical: 32-128, halve it if memory runs out."),
            epochs=integer("epochs", self.epochs, low=1, hint="It sets the horizon of the LR schedule."),
            schedule=from_mapping(Schedule, self.schedule, "schedule", shorthand="name").validate(),
            weight_decay=number("weight_decay", self.weight_decay, low=0, hint="0 turns it off; 1e-4..1e-2 is usual."),
            l1=number("l1", self.l1, low=0, hint="0 turns it off."),
            momentum=number("momentum", self.momentum, low=0, high=1, high_open=True, hint="0.9 is usual."),
            nesterov=boolean("nesterov", self.nesterov),
            loss=choice("loss", self.loss, LOSSES),
            label_smoothing=number("label_smoothing", self.label_smoothing, low=0, high=1, high_open=True,
                                   hint="Typical: 0.1."),
            focal_gamma=number("focal_gamma", self.focal_gamma, low=0, hint="0 is plain cross-entropy; 2 is usual."),
            class_weights=_class_weights(self.class_weights),
            sampler=choice("sampler", self.sampler, SAMPLERS),
            augment=Augment() if self.augment is None else from_mapping(Augment, self.augment, "augment").validate(),
            early_stopping=None if self.early_stopping is None else integer(
                "early_stopping", self.early_stopping, low=1, hint="It is the patience in epochs, or None to turn it off."),
            lr_decay=number("lr_decay", self.lr_decay, low=0, high=1, low_open=True,
                            hint="1 = the same LR everywhere; 0.5 halves it per block down."),
            bn_policy=choice("bn_policy", self.bn_policy, BN_POLICIES),
            head_dropout=None if self.head_dropout is None else number(
                "head_dropout", self.head_dropout, low=0, high=1, high_open=True, hint="e.g. 0.2; None keeps the model's."),
            seed=integer("seed", self.seed, low=0, hint="Any whole number >= 0, e.g. 0."),
            device=_device(self.device),
            amp=choice("amp", self.amp, AMP_MODES),
            channels_last=boolean("channels_last", self.channels_last),
            fast_path=boolean("fast_path", self.fast_path),
            precondition_head=None if self.precondition_head is None else boolean(
                "precondition_head", self.precondition_head, hint="None (the default) turns it on with the automatic LR."),
            eval_batch_size=None if self.eval_batch_size is None else integer(
                "eval_batch_size", self.eval_batch_size, low=1, hint="None picks 64 on the CPU, 256 on a GPU."),
        )
        if v["nesterov"] and (v["optimizer"] != "sgd" or v["momentum"] == 0):
            raise ConfigError("nesterov=True needs optimizer='sgd' with momentum > 0.")
        if v["loss"] == "focal" and v["label_smoothing"]:
            raise ConfigError("label_smoothing applies to loss='cross_entropy'; set it to 0 for the focal loss.")
        return dataclasses.replace(self, **v)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with `changes`; unknown names get close-match suggestions."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in names:
                hint = f" Did you mean {ALIASES[key]!r}?" if key in ALIASES else suggest(key, names)
                raise ConfigError(f"Unknown setting {key!r}.{hint} Settings: {', '.join(sorted(names))}.")
        changes = dict(changes)
        if isinstance(changes.get("optimizer"), str):
            changes["optimizer"] = changes["optimizer"].lower()
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.class_weights, tuple):
            d["class_weights"] = list(self.class_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A validated config from `to_dict()`'s output (keys of older versions are ignored)."""
        if not isinstance(d, dict):
            raise ConfigError(f"A config must be a dict of settings, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls().replace(**{k: v for k, v in d.items() if k in names})

    def diff(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Settings that differ: {name: (this value, other value)}."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


# The automatic learning rate. A head on cached features is a convex problem (multinomial logistic
# regression): measured on the bundled sets and TREC questions (benchmarks/head_quality.py), AdamW
# peaking at 5e-2 with one-cycle reached within ~0.01 of scikit-learn's best logistic regression in
# 5 epochs on all but mnist-5k (0.02-0.03 below; 1e-3 constant stayed 0.03-0.11 below); with
# the preconditioned head (precondition.py) it reaches it on all of them. SGD's gradients change
# scale with preconditioning: 0.3 was best of 0.1/0.3/1 with it, 1.0 without. Training through the
# backbone keeps the usual fine-tuning rates: 1e-3 for CNNs with Adam, 5e-5 for pretrained
# transformers (the Hugging Face Trainer's default: at 1e-3 a fine-tuned BERT forgets what it knew).
HEAD_LR = {"sgd": 1.0, "adagrad": 5e-2, "adam": 5e-2, "adamw": 5e-2, "rmsprop": 5e-2}
PRECONDITIONED_HEAD_LR = {**HEAD_LR, "sgd": 0.3}
BODY_LR = {"sgd": 1e-2, "adagrad": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
TEXT_BODY_LR = {"sgd": 1e-3, "adagrad": 1e-3, "adam": 5e-5, "adamw": 5e-5, "rmsprop": 5e-5}


def auto_lr(c: TrainConfig, head_on_cache: bool, kind: str = "image") -> float:
    """The base LR an epoch uses: `c.lr`, or with lr=None the automatic choice for its path and
    the model's kind."""
    if c.lr is not None:
        return c.lr
    if head_on_cache:
        return (PRECONDITIONED_HEAD_LR if preconditions_head(c) else HEAD_LR)[c.optimizer]
    return (TEXT_BODY_LR if kind == "text" else BODY_LR)[c.optimizer]


def preconditions_head(c: TrainConfig) -> bool:
    """Whether a linear head on cached features trains on preconditioned gradients: the setting,
    or with precondition_head=None only under the automatic LR. An optimizer with an LR you set
    (say, plain SGD in a lesson on optimizers) runs as written."""
    return c.lr is None if c.precondition_head is None else c.precondition_head


def auto_schedule(c: TrainConfig, head_on_cache: bool) -> Schedule:
    """`c.schedule`, or for "auto": one-cycle over the planned epochs for a head on cached features
    (annealing takes the convex problem to its optimum), constant otherwise."""
    if c.schedule.name != "auto":
        return c.schedule
    return dataclasses.replace(c.schedule, name="onecycle" if head_on_cache else "constant")


def _class_weights(value: Any) -> str | tuple[float, ...] | None:
    """None, "balanced", or one finite weight >= 0 per class (the count is checked against the data)."""
    if value is None or (isinstance(value, str) and value == "balanced"):
        return value
    if isinstance(value, (str, bytes, Mapping)) or not (isinstance(value, Sequence) or hasattr(value, "tolist")):
        raise ConfigError(
            f"class_weights={value!r} is not understood. Use None, 'balanced', or a list with one weight per class.")
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    return tuple(number(f"class_weights[{i}]", w, low=0) for i, w in enumerate(items))


def _device(value: Any) -> str:
    if not isinstance(value, str) or not (value in ("auto", "cpu") or value == "cuda" or
                                          (value.startswith("cuda:") and value[5:].isdigit())):
        raise ConfigError(f"device={value!r} is not understood. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    return value


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


def check_splits(data) -> None:
    """Both splits must hold samples: the train split at least 2 (a batch), the valid split 1."""
    if len(data.valid) == 0:
        raise DataError(f"The valid split of {data.name!r} is empty, so no epoch could be evaluated. Give the data "
                        "a valid split (e.g. Data.from_texts(..., valid_fraction=0.2)).")
    if len(data.train) < 2:
        raise DataError(f"The train split of {data.name!r} has {len(data.train)} sample(s); training needs at least 2.")


def check_head_dropout(model) -> None:
    """head_dropout can only be set on a head that has a dropout layer in front of its classifier."""
    if not any(type(m).__name__ == "Dropout" for m in model.head.modules()):
        raise ConfigError(f"{model.name}'s head has no dropout layer; rebuild it with "
                          "load_backbone(..., head_dropout=p) to tune it.")
