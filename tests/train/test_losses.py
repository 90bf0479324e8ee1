"""Focal loss against a hand-computed value, equal to CE at gamma=0; class weights; bad settings."""

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.errors import ConfigError
from workbench.train.losses import class_weights_from_counts, focal_loss, make_criterion


def test_focal_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    p_true = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    expected = -((1 - p_true) ** 2) * math.log(p_true)
    assert focal_loss(logits, torch.tensor([0]), gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    alpha = torch.tensor([0.25, 1.0, 1.0])
    assert focal_loss(logits, torch.tensor([0]), gamma=2.0, alpha=alpha).item() == pytest.approx(0.25 * expected, rel=1e-6)


def test_focal_loss_at_gamma_zero_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(32, 5), torch.randint(0, 5, (32,))
    torch.testing.assert_close(focal_loss(logits, labels, gamma=0.0), F.cross_entropy(logits, labels, reduction="none"))


def test_focal_loss_down_weights_easy_examples() -> None:
    easy, hard = torch.tensor([[5.0, 0.0]]), torch.tensor([[0.2, 0.0]])
    y = torch.tensor([0])
    ce_ratio = F.cross_entropy(hard, y) / F.cross_entropy(easy, y)
    focal_ratio = focal_loss(hard, y) / focal_loss(easy, y)
    assert focal_ratio > 10 * ce_ratio


def test_balanced_class_weights_follow_sklearn_formula() -> None:
    w = class_weights_from_counts([90, 10])
    torch.testing.assert_close(w, torch.tensor([100 / (2 * 90), 100 / (2 * 10)]))


def test_criterion_options_and_bad_settings() -> None:
    c = make_criterion("cross_entropy", label_smoothing=0.1, focal_gamma=2, class_weights="balanced", train_counts=[3, 1])
    logits, y = torch.zeros(2, 2), torch.tensor([0, 1])
    assert c(logits, y).shape == (2,)
    with pytest.raises(ConfigError, match=r"Unknown loss 'focall'.*'focal'"):
        make_criterion("focall", label_smoothing=0, focal_gamma=2, class_weights=None, train_counts=[1, 1])
    with pytest.raises(ConfigError, match="focal_gamma must be >= 0"):
        make_criterion("focal", label_smoothing=0, focal_gamma=-1, class_weights=None, train_counts=[1, 1])
    with pytest.raises(ConfigError, match="one weight per class"):
        make_criterion("focal", label_smoothing=0, focal_gamma=2, class_weights=[1.0], train_counts=[1, 1])
    with pytest.raises(ConfigError, match="have none"):
        class_weights_from_counts([5, 0])
