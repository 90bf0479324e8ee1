"""Each LR schedule's curve equals torch's own scheduler's; optimizers build; LR suggestion."""

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError
from workbench.train.optim import Schedule, lr_curve, make_optimizer, skips_on_device, suggest_lr

SPE, EPOCHS = 7, 6  # steps per epoch, epochs


def torch_curve(make_scheduler, steps: int, per_epoch: bool = False) -> np.ndarray:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make_scheduler(opt)
    out = []
    for s in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if not per_epoch or (s + 1) % SPE == 0:
            sched.step()
    return np.array(out)


def test_constant() -> None:
    assert np.array_equal(lr_curve(Schedule("constant"), SPE, EPOCHS), np.ones(SPE * EPOCHS))


def test_step_matches_torch_steplr_stepped_per_epoch() -> None:
    ours = lr_curve(Schedule("step", step_epochs=2, gamma=0.5), SPE, EPOCHS)
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), SPE * EPOCHS, per_epoch=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_exponential_matches_torch_per_epoch() -> None:
    ours = lr_curve(Schedule("exponential", gamma=0.8), SPE, EPOCHS)
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8), SPE * EPOCHS, per_epoch=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_cosine_matches_torch_per_step() -> None:
    total = SPE * EPOCHS
    ours = lr_curve(Schedule("cosine"), SPE, EPOCHS)
    theirs = torch_curve(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_onecycle_matches_torch() -> None:
    total = SPE * EPOCHS
    ours = lr_curve(Schedule("onecycle", pct_start=0.3), SPE, EPOCHS)
    theirs = torch_curve(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=total, pct_start=0.3, cycle_momentum=False),
        total,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_linear_warmup_then_cosine_matches_torch_sequential() -> None:
    warm = 2 * SPE
    ours = lr_curve(Schedule("cosine", warmup_epochs=2, warmup_start=0.1), SPE, EPOCHS)
    theirs = torch_curve(
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=warm),
             torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=SPE * EPOCHS - warm)],
            milestones=[warm],
        ),
        SPE * EPOCHS,
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad", "rmsprop"])
def test_every_optimizer_builds_and_steps(name: str) -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer(name, [{"params": [p], "lr": 0.1}], lr=0.1, weight_decay=0.01)
    (p ** 2).sum().backward()
    opt.step()
    assert torch.all(p < 1)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
def test_fused_kernels_step_like_torchs_default_and_skip_on_found_inf(name: str) -> None:
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours = make_optimizer(name, [{"params": [a], "lr": 0.1}], lr=0.1, weight_decay=0.01)
    default = getattr(torch.optim, {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad"}[name])(
        [b], lr=0.1, weight_decay=0.01, **({"momentum": 0.9} if name == "sgd" else {}))
    assert ours.defaults["fused"] is True and skips_on_device(ours) and not skips_on_device(default)
    for _ in range(3):
        for p, opt in ((a, ours), (b, default)):
            p.grad = torch.sin(p.detach() * 3)
            opt.step()
    torch.testing.assert_close(a, b)  # the same update to float tolerance
    before = a.detach().clone()
    a.grad = torch.full_like(a, float("nan"))
    ours.found_inf = torch.ones(())  # what the deferred-read loop sets after a non-finite loss
    ours.step()
    assert torch.equal(a, before)


def test_rmsprop_has_no_fused_kernel() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    assert not skips_on_device(make_optimizer("rmsprop", [{"params": [p], "lr": 0.1}], lr=0.1))


def test_unknown_optimizer_and_schedule_suggest_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"Unknown optimizer 'adamm'\. Did you mean: 'adam'"):
        make_optimizer("adamm", [], lr=0.1)
    with pytest.raises(ConfigError, match=r"Unknown schedule 'cosin'.*'cosine'"):
        Schedule("cosin").validate()
    with pytest.raises(ConfigError, match="gamma must be in"):
        Schedule("step", gamma=0).validate()


def test_suggest_lr_finds_the_steepest_descent() -> None:
    lrs = np.geomspace(1e-6, 1, 60)
    # loss falls fastest around 1e-3 on a log scale, then explodes
    losses = 2 - np.tanh(np.log10(lrs) + 3) + np.where(lrs > 0.1, 50 * (lrs - 0.1), 0)
    assert 3e-4 < suggest_lr(lrs, losses) < 3e-3
