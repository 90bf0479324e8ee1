"""A preconditioned head on cached features: K-FAC's input factor, exact for a linear head.

With the backbone frozen, training a linear head is logistic regression on fixed features, and
how fast a first-order optimizer reaches its optimum depends on how well conditioned those
features are. Pretrained features are far from white (offset, correlated, a few directions
dominate): AdamW at its automatic LR still stood 0.02-0.03 below scikit-learn's optimum after
5 epochs on mnist-5k (benchmarks/head_quality.py).

The preconditioner multiplies a Linear's gradient [dW db] on the right by (A + lambda I)^-1,
where A = E[[x 1]^T [x 1]] is the second moment of its inputs, the cached train features:
K-FAC's input factor (Martens & Grosse, 2015), which for a Linear on fixed inputs is computed
once, exactly. For plain SGD this is gradient descent on whitened features, folded back into the
head's own weights: the model, its checkpoints and its optimizer stay as they are. The shrinkage
lambda (a share of A's mean eigenvalue that grows with features per sample) keeps rarely seen
directions from being blown up, and the factor is scaled to mean eigenvalue 1, so an LR keeps its
meaning. It applies when every layer with weights in the head is a Linear reading the cached
features (or a slice of them: several classifiers on concatenated vectors); a head with a hidden
layer or a norm is not convex in its weights and trains on the plain gradient.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

# lambda = SHRINK * (D + 1) / N * the mean eigenvalue of A: the scale of the sampling noise of a
# second moment estimated from N samples in D + 1 dimensions (Marchenko-Pastur). Measured on the
# bundled sets, TREC questions and their subsets of 300 and 1,000 samples: 0.5-2 all reach the
# optimum on the full sets; 1 was never more than 0.004 below plain AdamW on a subset
SHRINK = 1.0
MAX_FEATURES = 4096  # a (D+1)^2 factor: above this the inverse and the per-step product cost too much
PROBE_ROWS = 8


def weighted_layers(head: nn.Module) -> list[nn.Module]:
    return [m for m in head.modules() if any(True for _ in m.parameters(recurse=False))]


def linear_only(head: nn.Module) -> bool:
    """Whether every layer with weights in the head is a Linear (what preconditioning needs)."""
    layers = weighted_layers(head)
    return bool(layers) and all(isinstance(m, nn.Linear) for m in layers)


def feature_readers(head: nn.Module, features: torch.Tensor) -> list[tuple[nn.Linear, slice]] | None:
    """Each Linear of the head with the columns of `features` it reads, when every layer with
    weights in the head is such a Linear; else None. Found by running the head on a few rows."""
    if not linear_only(head) or features.ndim < 2:
        return None
    layers = weighted_layers(head)
    probe = features[:PROBE_ROWS].detach().flatten(1)
    seen: dict[nn.Module, torch.Tensor] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault(module, args[0].detach())

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    training = [m.training for m in head.modules()]
    try:
        head.eval()
        with torch.no_grad():
            head(features[:PROBE_ROWS])
    finally:
        for h in hooks:
            h.remove()
        for m, t in zip(head.modules(), training):
            m.training = t
    readers = []
    for m in layers:
        columns = _columns_of(seen.get(m), probe)
        if columns is None:
            return None
        readers.append((m, columns))
    return readers


def _columns_of(inputs: torch.Tensor | None, probe: torch.Tensor) -> slice | None:
    """The slice of the probe's columns that `inputs` equals, or None."""
    if inputs is None or inputs.ndim != 2 or inputs.shape[0] != probe.shape[0]:
        return None
    width = inputs.shape[1]
    for start in range(probe.shape[1] - width + 1):
        if torch.equal(inputs[:, 0], probe[:, start]) and torch.equal(inputs, probe[:, start:start + width]):
            return slice(start, start + width)
    return None


def shrunk_inverse_moment(x: torch.Tensor, bias: bool) -> torch.Tensor:
    """(A + lambda I)^-1 scaled to mean eigenvalue 1, A the second moment of [x 1] (or of x)."""
    n = len(x)
    moment = (x.T @ x).double().cpu() / n
    if bias:
        mean = x.double().mean(0).cpu()
        moment = torch.cat([torch.cat([moment, mean[:, None]], 1),
                            torch.cat([mean, torch.ones(1, dtype=moment.dtype)])[None]], 0)
    size = moment.shape[0]
    shrunk = moment + SHRINK * size / n * torch.trace(moment) / size * torch.eye(size, dtype=moment.dtype)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(shrunk))
    return inverse * (torch.trace(shrunk) / size)


class HeadPreconditioner:
    """Right-multiplies the gradient of each Linear that reads the cached features by the inverse
    shrunk second moment of what it reads; call it between `backward()` and `optimizer.step()`."""

    def __init__(self, readers: list[tuple[nn.Linear, slice]], features: torch.Tensor) -> None:
        self._features = weakref.ref(features)  # to tell when it is stale
        self.head_linears = [m for m, _ in readers]
        x = features.detach().flatten(1)
        factors: dict[tuple[int, int, bool], torch.Tensor] = {}
        self.factors: list[tuple[nn.Linear, torch.Tensor]] = []
        with torch.no_grad():
            for linear, cols in readers:
                key = (cols.start, cols.stop, linear.bias is not None)
                if key not in factors:
                    factors[key] = shrunk_inverse_moment(x[:, cols].float(), linear.bias is not None).to(
                        device=x.device, dtype=linear.weight.dtype)
                self.factors.append((linear, factors[key]))

    @classmethod
    def for_head(cls, head: nn.Module, features: torch.Tensor) -> HeadPreconditioner | None:
        """The preconditioner of `head` on `features`, or None when it does not apply (see above)."""
        if len(features) < 2 or features[0].numel() > MAX_FEATURES:
            return None
        readers = feature_readers(head, features)
        return None if readers is None else cls(readers, features)

    def fresh_for(self, head: nn.Module, features: torch.Tensor) -> bool:
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        return self._features() is features and linears == self.head_linears

    @torch.no_grad()
    def __call__(self) -> None:
        for linear, factor in self.factors:
            weight, bias = linear.weight, linear.bias
            if weight.grad is None:
                continue
            if bias is None:
                weight.grad.copy_(weight.grad @ factor)
            elif bias.grad is not None:
                grad = torch.cat([weight.grad, bias.grad[:, None]], 1) @ factor
                weight.grad.copy_(grad[:, :-1])
                bias.grad.copy_(grad[:, -1])
