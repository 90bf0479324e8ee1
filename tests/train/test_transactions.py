"""Bad inputs are refused before anything changes: the whole state_dict() is bit-identical after.

Each class of the held-out breakages (issue: "Every fault and bad input leaves the session exactly
as it was") has examples here: settings that changed state before their error, re-freezing to
fewer blocks, device moves, state loads that fail late, and busy sessions.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import CheckpointError, ConfigError, WorkbenchError

from helpers import assert_same_state


def tiny(num_classes: int = 10) -> wb.Model:
    """timm's test_resnet at 16 px: BatchNorm, 5 blocks, 0.37 M parameters."""
    return wb.load_backbone("timm:test_resnet", num_classes, pretrained=False, image_size=16)


@pytest.fixture
def trained(digits) -> wb.Session:
    """A session with history, predictions and Adam state in two groups."""
    s = wb.Session(digits, tiny(), optimizer="adam", lr=1e-3, batch_size=32, freeze=wb.last(1))
    s.step()
    return s


BAD_SETTINGS = [
    ({"lr": True}, "lr must be a finite number.*bool"),
    ({"lr": "0.1"}, "lr must be a finite number.*str"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
    ({"label_smoothing": "0.1"}, "label_smoothing must be a finite number"),
    ({"focal_gamma": float("nan")}, "focal_gamma must be a finite number"),
    ({"seed": "1"}, "seed must be a whole number"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"batch_size": 1}, "batch_size must be >= 2"),
    ({"batch_size": True}, "batch_size must be a whole number"),
    ({"epochs": 2.0}, "epochs must be a whole number"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"nesterov": 1}, "nesterov must be True or False"),
    ({"fast_path": "yes"}, "fast_path must be True or False"),
    ({"precondition_head": 1}, "precondition_head must be True or False"),
    ({"schedule": dict(nme="cosine")}, "schedule has no field 'nme'.*'name'"),
    ({"schedule": 5}, "schedule must be a Schedule"),
    ({"schedule": dict(name="onecycle", div_factor=0)}, "div_factor must be > 0"),
    ({"schedule": dict(name="onecycle", div_factor=-25)}, "div_factor must be > 0"),
    ({"schedule": dict(warmup_epochs=float("nan"))}, "warmup_epochs must be a finite number"),
    ({"augment": dict(flp=True)}, "augment has no field 'flp'.*'flip'"),
    ({"augment": "flip"}, "augment must be an Augment"),
    ({"augment": dict(flip="yes")}, "augment flip must be True or False"),
    ({"class_weights": [1.0, 2.0]}, "class_weights has 2 values but the data has 10 classes"),
    ({"class_weights": {"0": 1.0}}, "class_weights=.* is not understood"),
    ({"class_weights": 3}, "class_weights=3 is not understood"),
    ({"class_weights": [1.0] * 9 + [float("nan")]}, r"class_weights\[9\] must be a finite number"),
    ({"class_weights": "balance"}, "class_weights='balance' is not understood"),
    ({"optimizer": 3}, "Unknown optimizer"),
    ({"device": "gpu"}, "device='gpu' is not understood"),
    ({"eval_batch_size": 0}, "eval_batch_size must be >= 1"),
    ({"learning_rate": 1e-3}, "Unknown setting 'learning_rate'.*'lr'"),
    ({"loss": "focal", "label_smoothing": 0.1}, "label_smoothing applies to loss='cross_entropy'"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_a_bad_setting_changes_nothing(trained, settings, message) -> None:
    before = trained.state_dict()
    with pytest.raises(ConfigError, match=message):
        trained.configure(**settings)
    assert_same_state(before, trained.state_dict())


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_a_bad_setting_builds_no_session(digits, settings, message) -> None:
    model = tiny()
    weights = {k: v.clone() for k, v in model.module.state_dict().items()}
    flags = [p.requires_grad for p in model.module.parameters()]
    with pytest.raises(ConfigError, match=message):
        wb.Session(digits, model, **settings)
    assert_same_state(weights, model.module.state_dict())
    assert flags == [p.requires_grad for p in model.module.parameters()]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_moving_to_a_device_that_is_not_here_keeps_optimizer_and_config(trained) -> None:
    before = trained.state_dict()
    assert any(trained.optimizer.state.values())  # Adam moments exist
    with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
        trained.configure(optimizer="sgd", device="cuda")
    assert_same_state(before, trained.state_dict())
    assert trained.config.optimizer == "adam" and isinstance(trained.optimizer, torch.optim.Adam)


def test_numpy_scalars_are_accepted(trained) -> None:
    c = trained.configure(lr=np.float32(0.01), epochs=np.int64(4), seed=np.int32(2), batch_size=np.int64(16),
                          class_weights=np.ones(10), nesterov=np.bool_(False))
    assert (type(c.lr), type(c.epochs), type(c.seed)) == (float, int, int) and c.class_weights == (1.0,) * 10
    r = trained.fit(np.int64(1))[0]
    assert r.completed
    assert wb.last(np.int64(1)).n == 1


@pytest.mark.parametrize("model_name", ["timm:test_resnet", "timm:test_vit", "resnet18"])
def test_refreezing_to_fewer_blocks_after_training_them(digits, model_name) -> None:
    """Full -> train -> head only, and back (a teacher clicking presets): no crash, the optimizer
    keeps exactly the groups of the blocks that train, and training goes on."""
    model = wb.load_backbone(model_name, 10, pretrained=False, image_size=16 if "vit" not in model_name else 32)
    s = wb.Session(digits, model, optimizer="adamw", batch_size=32, freeze="full")
    s.step()
    for spec, expected in (("head", ["head"]), (wb.last(2), None), ("full", None), ("head", ["head"])):
        trainable = s.freeze(spec)
        names = [g["name"] for g in s.optimizer.param_groups]
        assert sorted(names) == sorted(trainable) and (expected is None or names == expected)
        assert {id(p) for g in s.optimizer.param_groups for p in g["params"]} == {
            id(p) for p in s.model.module.parameters() if p.requires_grad}
        assert all(p in {q for g in s.optimizer.param_groups for q in g["params"]} for p in s.optimizer.state)
        assert s.step().completed


def test_a_bad_freeze_plan_changes_nothing(trained) -> None:
    before = trained.state_dict()
    for spec, message in (("heads", "Unknown freeze preset"), (["stem", "nope"], "Unknown block"),
                          ([], "empty list"), (3, "Cannot read a freeze spec")):
        with pytest.raises(ConfigError, match=message):
            trained.freeze(spec)
        assert_same_state(before, trained.state_dict())
    with pytest.raises(ConfigError, match="more blocks than"):
        trained.freeze(wb.last(50))
    assert_same_state(before, trained.state_dict())


def test_changes_made_while_training_wait_and_survive_save_and_load(digits, tmp_path) -> None:
    s = wb.Session(digits, tiny(), optimizer="sgd", lr=0.05, batch_size=32, freeze="head")
    s.on("batch_end", lambda b: (s.configure(lr=0.01), s.freeze("full")) if b.batch == 1 else None)
    s.step()
    assert s.has_pending_changes and s.config.lr == 0.05 and s.freeze_spec == "full"
    s.save(tmp_path / "p.wb")
    back = wb.Session.load(tmp_path / "p.wb", data=digits)
    assert back.has_pending_changes and back.freeze_spec == "full" and back.config.lr == 0.05
    r = back.step()
    assert back.config.lr == 0.01 and len(r.trainable) == len(back.model.blocks)


def test_fit_while_find_lr_runs_is_refused(digits) -> None:
    s = wb.Session(digits, tiny(), optimizer="sgd", lr=0.05, batch_size=16, freeze="full")
    started, release = threading.Event(), threading.Event()
    forward = s.model.logits

    def slow(x):
        started.set()
        release.wait(30)
        return forward(x)

    s.model.logits = slow
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(s.find_lr(steps=10)))
    worker.start()
    try:
        assert started.wait(30)
        before_history = list(s.history)
        with pytest.raises(ConfigError, match="busy finding the learning rate"):
            s.fit(1)
        with pytest.raises(ConfigError, match="busy finding the learning rate"):
            s.find_lr()
        with pytest.raises(WorkbenchError, match="while finding the learning rate"):
            s.save("never.wb")
        assert s.history == before_history
    finally:
        release.set()
        worker.join(60)
    s.model.logits = forward
    assert results and len(results[0].lrs) >= 5 and s.step().completed


def test_load_state_dict_checks_everything_before_changing_anything(trained) -> None:
    good = trained.state_dict()
    before = trained.state_dict()
    cases = []
    bad = dict(good, optimizer_groups=list(reversed(good["optimizer_groups"])) + ["stem"])
    cases.append((bad, "optimizer has 2 parameter groups, the freeze plan 3"))
    state = {**good["optimizer"], "param_groups": good["optimizer"]["param_groups"][:1]}
    cases.append((dict(good, optimizer=state), "optimizer has 1 parameter groups"))
    moments = {k: dict(v) for k, v in good["optimizer"]["state"].items()}
    first = next(iter(moments))
    moments[first]["exp_avg"] = torch.zeros(3)
    cases.append((dict(good, optimizer={**good["optimizer"], "state": moments}), "exp_avg.*has shape"))
    cases.append(({k: v for k, v in good.items() if k != "history"}, "lacks history"))
    cases.append((dict(good, config={**good["config"], "lr": -1}), "settings cannot be read.*lr must be > 0"))
    cases.append((dict(good, freeze={"kind": "last", "n": 99}), "freeze plan cannot be read"))
    weights = dict(good["model"])
    weights[next(iter(weights))] = torch.zeros(1)
    cases.append((dict(good, model=weights), "do not fit this model"))
    cases.append((dict(good, data={**good["data"], "classes": list("abcdefghij")}), "classes"))
    cases.append((dict(good, predictions={**good["predictions"], "logits": torch.zeros(3, 10)}), "saved predictions"))
    cases.append((dict(good, pending={"config": {"lr": "x"}}), "pending settings"))
    cases.append((dict(good, history=[{"epoch": 1}]), "history cannot be read"))
    cases.append(("not a dict", "must be a dict"))
    for sd, message in cases:
        with pytest.raises(CheckpointError, match=message):
            trained.load_state_dict(sd)
        assert_same_state(before, trained.state_dict())
    trained.load_state_dict(good)  # the untouched state loads, and trains on
    assert trained.step().completed


def test_state_dict_round_trip_restores_a_bit_identical_run(digits) -> None:
    a = wb.Session(digits, tiny(), optimizer="adam", lr=1e-3, batch_size=32, freeze=wb.progressive(every=1),
                   lr_decay=0.5, early_stopping=3)
    a.fit(2)
    sd = a.state_dict()
    b = wb.Session(digits, tiny(), freeze="head")
    b.load_state_dict(sd)
    assert_same_state(sd, b.state_dict())
    ra, rb = a.step(), b.step()
    assert ra.batch_losses == rb.batch_losses and ra.valid_loss == rb.valid_loss
    assert_same_state(a.state_dict()["model"], b.state_dict()["model"])
