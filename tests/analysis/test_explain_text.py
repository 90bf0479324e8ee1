"""Token attributions are right: when one keyword decides the class, it gets the top score."""

from __future__ import annotations

import numpy as np
import pytest
KEYWORDS = ("banana", "guitar")  # as in conftest.py

import workbench as wb


@pytest.mark.slow
def test_the_keyword_is_the_top_token_for_correct_samples(keyword_session) -> None:
    s = keyword_session
    p = s.predictions
    correct = np.flatnonzero(p.predicted == p.labels)
    assert len(correct) >= 50
    attributions = wb.explain_many(s, correct.tolist(), "pred")  # a batch: IG with the budgeted steps
    top = [a.top_tokens(1)[0][0] for a in attributions]
    hit = np.mean([t in KEYWORDS for t in top])
    # Measured here (seeded): 60 of 60 correct, the keyword on top for 98-100% with 4+ IG steps.
    assert hit > 0.9, f"keyword on top for only {hit:.0%}: {top[:10]}"
    assert all("integrated gradients" in a.method for a in attributions)


@pytest.mark.slow
def test_one_text_true_and_predicted_with_many_steps(keyword_session) -> None:
    s = keyword_session
    a, b = wb.explain_many(s, [0, 0], ["true", "pred"])
    assert "32 steps" in a.method  # the Why panel's pair gets the full budget
    assert a.tokens == b.tokens and a.tokens[0] == "[CLS]" and a.tokens[-1] == "[SEP]"
    assert a.special[0] and a.special[-1] and not a.special[1:-1].any()
    assert np.abs(a.scores).max() == pytest.approx(1.0)
    keyword = next(t for t in a.tokens if t in KEYWORDS)
    assert a.top_tokens(1)[0][0] == keyword


@pytest.mark.slow
def test_gradient_x_input_is_available_and_says_so(keyword_session) -> None:
    [a] = wb.explain_many(keyword_session, [1], method="grad_x_input")
    assert a.method.startswith("gradient x input") and len(a.scores) == len(a.tokens)
