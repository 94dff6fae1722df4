"""care_model.stats.human_eval: rubric and pairwise summaries, Bradley-Terry against a logistic-regression MLE."""
from __future__ import annotations

import json

import numpy as np
import pytest

from care_model.stats import estimates
from care_model.stats import human_eval as he
from care_model.core.errors import ValidationError

def test_rubric_summary():
    ratings = [{"system": "care", "criterion": "faithfulness", "score": s} for s in (5, 4, 2, 3)]
    ratings += [{"system": "care", "criterion": "relevance", "score": s} for s in (1, 2)]
    ratings += [{"system": "base", "criterion": "faithfulness", "score": 3, "rater": "e1"}]
    res = he.rubric_summary(ratings)
    row = res.get("care", "faithfulness")
    assert row.n == 4 and row.mean.value == 3.5
    half = 3.182446 * np.std([5, 4, 2, 3], ddof=1) / 2  # t(0.975, 3) = 3.182446
    assert row.mean.low == pytest.approx(3.5 - half, abs=1e-5)
    assert row.pass_rate.value == 0.75
    assert (row.pass_rate.low, row.pass_rate.high) == pytest.approx(estimates.wilson_interval(3, 4))
    assert res.get("care", "relevance").pass_rate.value == 0.0
    assert [r.criterion for r in res.rows if r.system == "care"] == ["faithfulness", "relevance"]
    json.dumps(res.to_dict())
    assert {"system", "criterion", "mean", "pass_rate"} <= set(res.to_rows()[0])
    with pytest.raises(ValidationError):
        he.rubric_summary([{"system": "x", "criterion": "relevance", "score": 6}])
    with pytest.raises(ValidationError):
        he.rubric_summary([{"system": "x", "score": 3}])


def test_pairwise_win_rates_ties_half_both_bad_apart():
    judgments = ([{"system_a": "care", "system_b": "base", "outcome": "a"}] * 6
                 + [{"system_a": "base", "system_b": "care", "outcome": "base"}] * 2  # base wins, named
                 + [{"system_a": "care", "system_b": "base", "outcome": "tie"}] * 2
                 + [{"system_a": "care", "system_b": "base", "outcome": "both_bad"}] * 3)
    res = he.pairwise_summary(judgments)
    assert res.bradley_terry is None  # two systems only
    (row,) = res.pairs
    assert (row.system_a, row.system_b) == ("base", "care")  # canonical alphabetical order
    assert (row.wins_a, row.wins_b, row.ties, row.both_bad, row.n) == (2, 6, 2, 3, 13)
    assert row.win_rate_a.value == pytest.approx((2 + 1) / 10)
    assert (row.win_rate_a.low, row.win_rate_a.high) == pytest.approx(estimates.wilson_interval(3, 10))
    assert row.both_bad_rate.value == pytest.approx(3 / 13)
    json.dumps(res.to_dict())
    assert res.to_rows()[0]["win_rate_a"] == pytest.approx(0.3)
    with pytest.raises(ValidationError):
        he.pairwise_summary([{"system_a": "x", "system_b": "y", "outcome": "maybe"}])


def test_bradley_terry_two_systems_strength_ratio_is_wins_ratio():
    # 7 wins of A, 3 of B, 2 ties (= 1 each): MLE p_A / p_B = 8 / 4
    bt = he.bradley_terry([[0, 8], [4, 0]], systems=["A", "B"])
    assert bt.converged
    assert bt.strength["A"] / bt.strength["B"] == pytest.approx(2.0, rel=1e-8)
    assert bt.win_probability("A", "B") == pytest.approx(8 / 12)
    judg = ([{"system_a": "A", "system_b": "B", "outcome": "a"}] * 7 + [{"system_a": "A", "system_b": "B",
                                                                         "outcome": "b"}] * 3
            + [{"system_a": "B", "system_b": "A", "outcome": "tie"}] * 2)
    assert he.bradley_terry(judg).strength["A"] == pytest.approx(bt.strength["A"])


def test_bradley_terry_three_systems_matches_logistic_regression_mle():
    from sklearn.linear_model import LogisticRegression

    wins = np.array([[0, 7, 5], [3, 0, 6], [2, 4, 0]], dtype=float)  # wins[i][j]: i beat j
    bt = he.bradley_terry(wins, systems=["x", "y", "z"])
    assert bt.converged
    # the same likelihood as an unpenalised logistic regression on x = e_i - e_j
    rows, ys, ws = [], [], []
    for i in range(3):
        for j in range(3):
            if i < j:
                x = np.zeros(3)
                x[i], x[j] = 1, -1
                rows += [x, x]
                ys += [1, 0]
                ws += [wins[i, j], wins[j, i]]
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-12, max_iter=10000)
    lr.fit(np.array(rows), ys, sample_weight=ws)
    beta = lr.coef_[0] - lr.coef_[0].mean()
    got = np.array([bt.log_strength[s] for s in "xyz"])
    np.testing.assert_allclose(got, beta, atol=1e-4)
    # the MLE's score equations: expected wins equal observed wins for every system
    p = np.array([bt.strength[s] for s in "xyz"])
    n = wins + wins.T
    expected = (n * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    np.testing.assert_allclose(expected, wins.sum(axis=1), atol=1e-6)


def test_bradley_terry_no_mle_when_a_system_never_wins():
    wins = [[0, 3, 2], [1, 0, 2], [0, 0, 0]]
    bt = he.bradley_terry(wins, systems=["a", "b", "c"])
    assert bt.strength is None and "pseudo_count" in bt.reason
    reg = he.bradley_terry(wins, systems=["a", "b", "c"], pseudo_count=0.5)
    assert reg.converged and reg.strength["c"] < reg.strength["b"] < reg.strength["a"]


def test_pairwise_summary_with_three_systems_has_bradley_terry():
    outcomes = [("care", "gpt", "a"), ("care", "gpt", "b"), ("care", "llama", "a"), ("gpt", "llama", "a"),
                ("gpt", "llama", "tie"), ("llama", "care", "a"), ("care", "gpt", "both_bad")]
    res = he.pairwise_summary([{"system_a": a, "system_b": b, "outcome": o} for a, b, o in outcomes])
    assert res.bradley_terry is not None and res.bradley_terry.converged
    assert set(res.bradley_terry.strength) == {"care", "gpt", "llama"}
    assert sum(res.bradley_terry.strength.values()) == pytest.approx(1.0)
    json.dumps(res.to_dict())
