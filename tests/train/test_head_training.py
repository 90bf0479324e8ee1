"""Head-only training on cached features: the exact fit, and the preconditioned head that the
defaults train (workbench/train/precondition.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from helpers import tiny_cnn, weights
from workbench.errors import ConfigError
from workbench.models.heads import Head, ParallelHeads
from workbench.train.head_fit import fit_linear_head
from workbench.train.optim import Schedule
from workbench.train.precondition import SHRINK, HeadPreconditioner, linear_only, shrunk_inverse_moment


def pooled_relu_features(n: int = 800, d: int = 48, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features shaped like a pretrained CNN's pooled activations: non-negative, offset, scales
    over two orders of magnitude, correlated; labels from a noisy linear rule on them."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g) / math.sqrt(d)
    x = torch.relu(torch.randn(n, d, generator=g) @ mixing + 0.3) * torch.logspace(-1, 1, d) + 0.5
    w = torch.randn(k, d, generator=g)
    y = ((x - x.mean(0)) / x.std(0) @ w.T + torch.randn(n, k, generator=g)).argmax(1)
    return x, y


def train_head(x: torch.Tensor, y: torch.Tensor, k: int, precondition: bool, epochs: int = 5) -> float:
    """The Session's default head recipe (AdamW at 5e-2, one-cycle, batches of 64); the train loss."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], k)
    optimizer = torch.optim.AdamW(linear.parameters(), lr=5e-2, weight_decay=0)
    pre = HeadPreconditioner.for_head(linear, x) if precondition else None
    factor = Schedule("onecycle").factor_fn(math.ceil(len(y) / 64), epochs)
    gen, step = torch.Generator().manual_seed(0), 0
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            optimizer.param_groups[0]["lr"] = 5e-2 * factor(step)
            optimizer.zero_grad()
            F.cross_entropy(linear(x[idx]), y[idx]).backward()
            if pre is not None:
                pre()
            optimizer.step()
            step += 1
    with torch.no_grad():
        return float(F.cross_entropy(linear(x), y))


def test_the_factor_is_the_shrunk_inverse_second_moment_at_mean_eigenvalue_one() -> None:
    x, _ = pooled_relu_features(n=200, d=12)
    linear = torch.nn.Linear(12, 3)
    pre = HeadPreconditioner.for_head(linear, x)
    a = np.hstack([x.double().numpy(), np.ones((200, 1))])
    moment = a.T @ a / 200
    shrunk = moment + SHRINK * 13 / 200 * np.trace(moment) / 13 * np.eye(13)
    expected = np.linalg.inv(shrunk) * np.trace(shrunk) / 13
    np.testing.assert_allclose(pre.factors[0][1].double().numpy(), expected, rtol=1e-4, atol=1e-6)
    assert np.trace(np.linalg.inv(expected)) / 13 == pytest.approx(1.0)  # the LR keeps its scale

    gw, gb = torch.randn(3, 12), torch.randn(3)
    linear.weight.grad, linear.bias.grad = gw.clone(), gb.clone()
    pre()
    turned = np.hstack([gw.double().numpy(), gb.double().numpy()[:, None]]) @ expected
    np.testing.assert_allclose(linear.weight.grad.double().numpy(), turned[:, :-1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(linear.bias.grad.double().numpy(), turned[:, -1], rtol=1e-4, atol=1e-5)


def test_a_head_without_bias_is_preconditioned_by_the_moment_of_x_alone() -> None:
    x, _ = pooled_relu_features(n=100, d=6)
    linear = torch.nn.Linear(6, 2, bias=False)
    pre = HeadPreconditioner.for_head(linear, x)
    factor = pre.factors[0][1]
    assert factor.shape == (6, 6)
    linear.weight.grad = torch.ones(2, 6)
    pre()
    assert torch.allclose(linear.weight.grad, torch.ones(2, 6) @ factor)


def test_preconditioning_gets_the_default_recipe_much_closer_to_the_optimum() -> None:
    x, y = pooled_relu_features()
    optimum = fit_linear_head(x, y, 4, C=100.0).loss  # nearly unregularised: the loss floor
    plain, preconditioned = train_head(x, y, 4, False), train_head(x, y, 4, True)
    assert preconditioned - optimum < 0.7 * (plain - optimum), (optimum, plain, preconditioned)


@pytest.mark.slow
def test_the_defaults_reach_the_exact_head_fit_on_pretrained_features_in_five_epochs() -> None:
    """Issue 15's target on the bundled digits with the bundled EfficientNet-Lite0 (cached 64 px
    features): benchmarks/head_quality.py measures every bundled set and one that is not."""
    data = wb.load_data("digits")
    torch.manual_seed(0)
    model = wb.load_backbone("efficientnet_lite0", num_classes=10, image_size=64)
    s = wb.Session(data, model)
    epochs = s.fit(5, progress=False)
    exact = wb.Session(data, model, freeze="head").fit_head()
    assert epochs[-1].valid_accuracy >= exact.valid_accuracy - 0.01, (epochs[-1].valid_accuracy, exact.valid_accuracy)


def test_fit_linear_head_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = pooled_relu_features(n=300, d=10, k=3)
    ours = fit_linear_head(x, y, 3, C=1.0)
    theirs = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(x.numpy(), y.numpy())
    ours_p = torch.softmax(x @ ours.weight.T + ours.bias, 1).numpy()
    np.testing.assert_allclose(ours_p, theirs.predict_proba(x.numpy()), atol=5e-3)  # L-BFGS in float32


def test_near_constant_features_do_not_get_huge_weights_that_int8_cannot_hold() -> None:
    """Pooled features often have near-constant dimensions (s.d. 1e-3 around 5). Scaling each
    feature to unit variance before the fit (scikit-learn's StandardScaler) would give them raw
    weights ~1000x the rest, cancelled by the bias: exact in float, but compress('int8') then flips
    most predictions (MiniLM on Rotten Tomatoes: int8 accuracy 0.655 -> 0.500). The fit on the
    features as they are does not."""
    from workbench.models.compress import quantize_int8

    x, y = pooled_relu_features(n=600, d=48, k=3)
    g = torch.Generator().manual_seed(1)
    x = torch.cat([x, 5 + 1e-3 * torch.randn(len(x), 4, generator=g)], 1)
    fit = fit_linear_head(x, y, 3, C=1.0)
    head = torch.nn.Linear(x.shape[1], 3)
    with torch.no_grad():
        head.weight.copy_(fit.weight)
        head.bias.copy_(fit.bias)
    float_pred = head(x).argmax(1)
    int8_pred = quantize_int8(torch.nn.Sequential(head)).eval()(x).argmax(1)
    # measured 0.93 (int8 inputs also blur the features 100x smaller than the largest); 0.35 when
    # each feature is scaled to unit variance first
    assert (int8_pred == float_pred).float().mean() >= 0.85
    assert fit.weight[:, -4:].abs().max() < fit.weight[:, :-4].abs().max()


def test_fit_linear_head_gives_torch_its_threads_back() -> None:
    x, y = pooled_relu_features(n=120, d=6, k=3)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit = fit_linear_head(x, y, 3, C=1.0)
        assert torch.get_num_threads() == 2  # the solve ran on one thread and restored the setting
        with pytest.raises(ConfigError):
            fit_linear_head(x, y, 3, C=-1.0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert float(((x @ fit.weight.T + fit.bias).argmax(1) == y).float().mean()) > 0.5


def test_heads_of_linears_on_the_features_are_preconditioned_and_others_are_not() -> None:
    x, _ = pooled_relu_features(n=100, d=12)
    assert HeadPreconditioner.for_head(Head(torch.nn.Linear(12, 3), dropout=0.2), x) is not None
    hidden = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert HeadPreconditioner.for_head(hidden, x) is None  # not convex: the second reads hidden units
    assert not linear_only(torch.nn.Sequential(torch.nn.LayerNorm(12), torch.nn.Linear(12, 3)))
    assert HeadPreconditioner.for_head(torch.nn.Sequential(torch.nn.LayerNorm(12), torch.nn.Linear(12, 3)), x) is None
    scaled = torch.nn.Sequential(torch.nn.BatchNorm1d(12, affine=False), torch.nn.Linear(12, 3))
    assert HeadPreconditioner.for_head(scaled, x) is None  # the Linear does not read the features


def test_parallel_heads_get_one_factor_per_slice_they_read() -> None:
    x, _ = pooled_relu_features(n=100, d=12)
    heads = ParallelHeads([Head(torch.nn.Linear(5, 3)), Head(torch.nn.Linear(7, 3))])
    pre = HeadPreconditioner.for_head(heads, x)
    assert [f.shape for _, f in pre.factors] == [(6, 6), (8, 8)]
    torch.testing.assert_close(pre.factors[1][1], shrunk_inverse_moment(x[:, 5:], bias=True).float())


def test_two_classifiers_on_the_same_vector_share_one_factor() -> None:
    class Distilled(torch.nn.Module):  # like timm's repvit classifier: a head and a distilled head, averaged
        def __init__(self) -> None:
            super().__init__()
            self.head, self.head_dist = torch.nn.Linear(12, 3), torch.nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.head(x) + self.head_dist(x)) / 2

    x, _ = pooled_relu_features(n=100, d=12)
    pre = HeadPreconditioner.for_head(Distilled(), x)
    assert len(pre.factors) == 2 and pre.factors[0][1] is pre.factors[1][1]


def test_the_session_preconditions_the_cached_head_and_says_so(digits) -> None:
    torch.manual_seed(0)
    s = wb.Session(digits, tiny_cnn(), seed=0)
    assert "preconditioned" in s.summary()
    s.step()
    first = s._preconditioner
    assert first is not None and first.fresh_for(s.model.head, s.features("train"))
    s.step()
    assert s._preconditioner is first  # built once per feature cache
    s.freeze(wb.last(1))
    s.step()  # the body changed: new features, so a new factor at the next head-only epoch
    s.freeze("head")
    s.step()
    assert s._preconditioner is not first and s._preconditioner.fresh_for(s.model.head, s.features("train"))


def test_precondition_head_false_trains_the_plain_gradient(digits) -> None:
    runs = {}
    for on in (None, False):
        torch.manual_seed(0)
        s = wb.Session(digits, tiny_cnn(), seed=0, precondition_head=on)
        s.step()
        runs[on] = weights(s.model.head)
    assert "plain gradients (precondition_head=False)" in s.summary()
    assert s._preconditioner is None
    assert not all(torch.allclose(runs[None][k], runs[False][k]) for k in runs[None])


def test_an_lr_you_set_runs_the_optimizer_as_written_unless_asked(digits) -> None:
    """A lesson on optimizers sets optimizer="sgd", lr=1e-2: it must see plain SGD."""
    torch.manual_seed(0)
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", lr=1e-2, seed=0)
    assert "an LR you set runs the optimizer as written" in s.summary()
    s.step()
    assert s._preconditioner is None
    s.configure(precondition_head=True)
    assert "precondition_head=True" in s.summary()
    s.step()
    assert s._preconditioner is not None
    s.configure(lr=None, precondition_head=None)
    assert "auto with the automatic LR" in s.summary()


def test_a_bad_precondition_head_value_is_refused_before_anything_changes(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), seed=0)
    with pytest.raises(ConfigError, match="precondition_head"):
        s.configure(precondition_head="yes")
    assert s.config.precondition_head is None


def test_sgd_on_a_preconditioned_head_starts_from_its_own_automatic_lr(digits) -> None:
    s = wb.Session(digits, tiny_cnn(), optimizer="sgd", seed=0)
    assert s.next_lrs()[s.model.block_names[-1]] == pytest.approx(0.3)
    s.configure(precondition_head=False)
    assert s.next_lrs()[s.model.block_names[-1]] == pytest.approx(1.0)


def test_the_lr_range_test_measures_the_optimizer_an_lr_you_set_will_run(digits, monkeypatch) -> None:
    """find_lr's suggestion becomes an LR you set, which trains on the plain gradient: the range
    test must measure that, not the preconditioned automatic recipe."""
    from workbench.train import epoch as epoch_module

    seen = []
    real = epoch_module.train_batch

    def spy(plan, *args, **kwargs):
        seen.append(plan.precondition)
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(epoch_module, "train_batch", spy)
    torch.manual_seed(0)
    s = wb.Session(digits, tiny_cnn(), seed=0)
    s.find_lr(steps=10, progress=False)
    assert seen and all(p is None for p in seen)
    seen.clear()
    s.configure(precondition_head=True)
    s.find_lr(steps=10, progress=False)
    assert seen and all(p is not None for p in seen)
