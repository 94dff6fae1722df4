"""care_model.stats.estimates: Wilson and t intervals against published values, the cluster bootstrap against scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from care_model.stats import estimates

def test_wilson_interval_newcombe_1998_examples():
    # Newcombe (1998) Stat Med 17:857, Table I, method 3 (score interval without continuity correction)
    cases = {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611), (1, 29): (0.0061,
                                                                                                         0.1718)}
    for (x, n), (low, high) in cases.items():
        got = estimates.wilson_interval(x, n)
        assert (round(got[0], 4), round(got[1], 4)) == (low, high)
    assert estimates.proportion(0, 0).value is None


def test_t_interval_by_hand():
    est = estimates.mean_t_interval([1, 2, 3, 4, 5])
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445 (tables)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert est.value == 3 and est.low == pytest.approx(3 - half, abs=1e-5) and est.high == pytest.approx(3 + half,
                                                                                                         abs=1e-5)
    one = estimates.mean_t_interval([4])
    assert one.value == 4 and one.low is None and one.reason


def test_bootstrap_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        x = rng.normal(size=n)
        est = estimates.bootstrap_estimate(lambda ix: float(np.mean(x[ix])), n, n_resamples=1000, seed=0)
        assert est.low <= est.value <= est.high
        return est.high - est.low

    assert width(400) < width(25) / 2.5
    # agrees with scipy.stats.bootstrap (percentile) on the mean within Monte-Carlo error
    from scipy import stats
    x = rng.normal(size=60)
    ours = estimates.bootstrap_estimate(lambda ix: float(np.mean(x[ix])), 60, n_resamples=4000, seed=2)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=2).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.05) and ours.high == pytest.approx(ref.high, abs=0.05)
    # undefined statistic: value None with a reason, never NaN
    undefined = estimates.bootstrap_estimate(lambda ix: float("nan"), 10)
    assert undefined.value is None and undefined.reason


def test_resample_counts_match_indices():
    idx = estimates.resample_indices(7, 50, seed=4)
    counts = estimates.resample_counts(7, 50, seed=4)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    assert all((np.bincount(row, minlength=7) == c).all() for row, c in zip(idx, counts))
