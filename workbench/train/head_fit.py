"""An exact fit of a linear head on cached features: multinomial logistic regression.

With the backbone frozen, training the head is a convex problem. `Session.fit_head()` solves it
outright: L-BFGS (torch.optim.LBFGS, full batch) with an L2 penalty whose strength is chosen by
cross-validation on the train split only (the valid split stays a fair test), warm-started along
the path from strong to weak regularisation. The solution is written into the head's Linear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..validate import number

C_GRID = (0.1, 1.0, 10.0, 100.0)  # scikit-learn's C: the penalty is 1 / (C * n) on the mean loss


@dataclass(frozen=True)
class HeadFit:
    weight: torch.Tensor  # (K, D)
    bias: torch.Tensor  # (K,)
    C: float
    cv_accuracy: dict[float, float]  # C -> mean held-out accuracy on the train folds
    loss: float  # the train loss of the final fit, without the penalty
    iterations: int


def _solve(x: torch.Tensor, y: torch.Tensor, k: int, penalty: float, iters: int,
           start: tuple[torch.Tensor, torch.Tensor] | None, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    w = (torch.zeros(k, x.shape[1], device=x.device) if start is None else start[0].clone()).requires_grad_(True)
    b = (torch.zeros(k, device=x.device) if start is None else start[1].clone()).requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y, weight=weight) + 0.5 * penalty * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    steps = opt.state[opt._params[0]].get("n_iter", iters)
    return w.detach(), b.detach(), int(steps)


def solves(C: float | Sequence[float] | None = None, folds: int = 3) -> int:
    """How many L-BFGS solves fit_linear_head runs: one per fold and C, then the final fit."""
    grid = C_GRID if C is None else ([C] if not isinstance(C, Sequence) else list(C))
    return (folds * len(grid) if len(grid) > 1 else 0) + 1


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread for the solve, restored after. L-BFGS on a head is thousands
    of tiny ops (some 40 dot products of K*D numbers per iteration) where waking a second thread
    costs more than the work: 300 iterations on mnist-5k's 4000 x 1280 features took 46.6 CPU-s
    on 2 threads and 5.7 on one (same loss to 1%, shared 2-core machine at load 6)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_linear_head(x: torch.Tensor, y: torch.Tensor, k: int, C: float | Sequence[float] | None = None,
                    class_weight: torch.Tensor | None = None, folds: int = 3, max_iter: int = 300,
                    seed: int = 0, progress: Callable[[int], None] = lambda done: None) -> HeadFit:
    """Logistic regression on features `x` (N, D) with labels `y`, C chosen by `folds`-fold CV
    over `C` (a grid, one value, or None for C_GRID). `progress(solves done)` after each solve
    (of `solves(C, folds)`)."""
    grid = C_GRID if C is None else ([C] if not isinstance(C, Sequence) else list(C))
    grid = sorted(number("C", c, low=0, low_open=True, hint="e.g. 1.0 (smaller = stronger regularisation).")
                  for c in grid)
    with _one_thread():
        return _fit(x.float(), y.long(), k, grid, class_weight, folds, max_iter, seed, progress)


def _fit(x: torch.Tensor, y: torch.Tensor, k: int, grid: list[float], class_weight: torch.Tensor | None,
         folds: int, max_iter: int, seed: int, progress: Callable[[int], None]) -> HeadFit:
    done = 0
    progress(done)
    n = len(y)
    scores: dict[float, float] = {}
    if len(grid) > 1:
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen).to(x.device)
        parts = order.chunk(folds)
        for f in range(folds):
            held = parts[f]
            fit_on = torch.cat([parts[j] for j in range(folds) if j != f])
            start = None
            for c in grid:  # strong to weak regularisation, each fit warm-starting the next
                w, b, _ = _solve(x[fit_on], y[fit_on], k, 1 / (c * len(fit_on)), max_iter // 3, start, class_weight)
                start = (w, b)
                acc = float(((x[held] @ w.T + b).argmax(1) == y[held]).float().mean())
                scores[c] = scores.get(c, 0.0) + acc / folds
                done += 1
                progress(done)
        best = max(grid, key=lambda c: (round(scores[c], 6), -c))  # ties: the stronger regularisation
    else:
        best = grid[0]
    w, b, iters = _solve(x, y, k, 1 / (best * n), max_iter, None, class_weight)
    progress(done + 1)
    with torch.no_grad():
        loss = float(F.cross_entropy(x @ w.T + b, y, weight=class_weight))
    return HeadFit(w, b, best, scores, loss, iters)


def linear_head(head: torch.nn.Module) -> torch.nn.Linear:
    """The head's one Linear, when features -> logits is that Linear (with dropout before it)."""
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    others = [m for m in head.modules() if len(list(m.children())) == 0
              and not isinstance(m, (torch.nn.Linear, torch.nn.Dropout, torch.nn.Identity))]
    if len(linears) != 1 or others:
        raise ConfigError(
            "fit_head solves for a head that is one Linear layer on the features; this model's head has "
            f"{len(linears)} Linear layer(s) and {len(others)} other layer(s). Train it with session.fit() instead."
        )
    return linears[0]
