"""guards.weights_finite: the end-of-epoch check that decides a rollback."""

from __future__ import annotations

import pytest
import torch

from workbench.train import guards


def model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    module[2].weight.requires_grad_(False)  # frozen: not in the optimizer
    empty = torch.nn.Parameter(torch.zeros(0))  # an empty parameter must not break the check
    params = [p for p in module.parameters() if p.requires_grad] + [empty]
    return module, torch.optim.SGD(params, lr=0.1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["param", "buffer"])
def test_weights_finite_finds_any_non_finite_value(bad: float, where: str) -> None:
    module, optimizer = model_and_optimizer()
    assert guards.weights_finite(optimizer, module)
    target = module[0].weight if where == "param" else module[1].running_var
    with torch.no_grad():
        target.view(-1)[-1] = bad
    assert not guards.weights_finite(optimizer, module)


def test_weights_finite_ignores_frozen_parameters() -> None:
    """Only what the optimizer changes (and buffers) can have gone bad during the epoch."""
    module, optimizer = model_and_optimizer()
    with torch.no_grad():
        module[2].weight[0, 0] = float("nan")
    assert guards.weights_finite(optimizer, module)
