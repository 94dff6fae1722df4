"""care_model.stats.correlations: dimension correlations by hand, undefined cases, bootstrap intervals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from care_model.stats import agreement as ag
from care_model.stats import correlations as corr


def strict_json(obj) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def test_dimension_correlations_match_hand_formula():
    # x = 1..5, y = 2,1,4,3,5: means 3 and 3; dx = -2,-1,0,1,2; dy = -1,-2,1,0,2
    # sum dx*dy = 2+2+0+0+4 = 8, sum dx^2 = sum dy^2 = 10 -> r = 8/10 = 0.8
    # ranks equal the values (no ties) -> rho = 0.8; MSE = (1+1+1+1+0)/5 = 0.8
    x = [1, 2, 3, 4, 5]
    y = [2, 1, 4, 3, 5]
    pred = {f"s{i}": {"goal": float(v)} for i, v in enumerate(x)}
    truth = {f"s{i}": {"goal": float(v)} for i, v in enumerate(y)}
    res = corr.dimension_correlations(pred, truth, n_boot=0)["goal"]
    assert res.n == 5
    assert res.pearson.value == pytest.approx(0.8)
    assert res.spearman.value == pytest.approx(0.8)
    assert res.mse.value == pytest.approx(0.8)


def test_dimension_correlations_with_ties_by_hand():
    # Pearson by the textbook formula written out; Spearman = Pearson of average ranks
    x = [2.0, 3.5, 4.0, 1.5, 3.0, 3.0]
    y = [2.5, 3.0, 4.5, 1.0, 3.5, 2.0]
    mx, my = sum(x) / 6, sum(y) / 6
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    r = sxy / math.sqrt(sxx * syy)
    rx = [2, 5, 6, 1, 3.5, 3.5]  # the two 3.0s share ranks 3 and 4
    ry = [3, 4, 6, 1, 5, 2]
    mrx, mry = sum(rx) / 6, sum(ry) / 6
    rho = sum((a - mrx) * (b - mry) for a, b in zip(rx, ry)) / math.sqrt(
        sum((a - mrx) ** 2 for a in rx) * sum((b - mry) ** 2 for b in ry))
    mse = sum((a - b) ** 2 for a, b in zip(x, y)) / 6
    pred = {f"s{i}": {"bond": v, "task": None} for i, v in enumerate(x)}
    truth = {f"s{i}": {"bond": v, "task": 3.0} for i, v in enumerate(y)}
    truth["only-truth"] = {"bond": 5.0}
    res = corr.dimension_correlations(pred, truth, n_boot=200)
    assert res["bond"].pearson.value == pytest.approx(r)
    assert res["bond"].spearman.value == pytest.approx(rho)
    assert res["bond"].mse.value == pytest.approx(mse)
    assert res["task"].n == 0 and res["task"].pearson.value is None
    strict_json({k: v.to_dict() for k, v in res.items()})


def test_small_and_constant_inputs_give_none_with_reason_not_nan():
    two = corr.dimension_correlations({"a": {"goal": 1.0}, "b": {"goal": 2.0}},
                                    {"a": {"goal": 2.0}, "b": {"goal": 4.0}})["goal"]
    assert two.pearson.value is None and "at least 3" in two.pearson.reason
    assert two.mse.value == pytest.approx((1 + 4) / 2)
    const = corr.dimension_correlations({s: {"goal": 3.25} for s in "abcd"},
                                      {s: {"goal": float(i)} for i, s in enumerate("abcd")})["goal"]
    assert const.pearson.value is None and "constant" in const.pearson.reason and "3.25" in const.pearson.reason
    assert const.spearman.value is None
    assert const.mse.value is not None
    strict_json(const.to_dict())


def test_bootstrap_interval_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        truth = rng.normal(3, 0.8, n)
        pred = truth + rng.normal(0, 0.8, n)
        res = corr.dimension_correlations({f"s{i}": {"goal": p} for i, p in enumerate(pred)},
                                        {f"s{i}": {"goal": t} for i, t in enumerate(truth)}, n_boot=1000,
                                          seed=1)["goal"]
        for m in ("pearson", "spearman", "mse"):
            est = getattr(res, m)
            assert est.low <= est.value <= est.high, m
            assert "bootstrap" in est.method
        return res.pearson.high - res.pearson.low

    assert width(320) < width(20) / 2


def test_correlation_bootstrap_equals_resampling_by_hand():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 6, 12).astype(float)
    y = x + rng.normal(0, 1, 12)
    res = corr.dimension_correlations({f"s{i}": {"goal": v} for i, v in enumerate(x)},
                                    {f"s{i}": {"goal": v} for i, v in enumerate(y)}, n_boot=300, seed=7)["goal"]
    from scipy import stats
    samples = []
    for ix in ag.resample_indices(12, 300, 7):
        xs, ys = x[ix], y[ix]
        samples.append(np.nan if np.ptp(xs) == 0 else stats.spearmanr(xs, ys)[0])
    low, high, _ = ag.percentile_interval(samples)
    assert (res.spearman.low, res.spearman.high) == pytest.approx((low, high))
