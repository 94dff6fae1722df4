"""Estimates with intervals, and the cluster bootstrap behind them: what :mod:`care_model.stats.agreement`,
:mod:`care_model.stats.reliability`, :mod:`care_model.stats.evaluate` and :mod:`care_model.stats.human_eval` share.

Pure (numpy, scipy; no torch, no tinydb). A statistic that cannot be computed is an
:class:`Estimate` with value ``None`` and a ``reason``, never NaN.

- Proportions (pass rates, win rates): Wilson score interval (Wilson 1927; Newcombe 1998). Win
  rates count a tie as half a win, so the "successes" may be a half-integer; the Wilson formula
  is used with that fractional count.
- Bootstrap: percentile intervals over *clusters* (sessions): resample whole sessions with
  replacement, recompute the statistic, take the 2.5th and 97.5th percentiles. Resamples where
  the statistic is undefined (a constant resample, fewer than 3 sessions for a correlation) are
  skipped; if more than half are undefined, no interval is given.

Public API::

    Estimate(value, low=None, high=None, n=0, method="", reason="")
    clean(x) -> float | None                                              # JSON-ready (no NaN/inf)
    wilson_interval(successes, n, confidence=0.95) -> (low, high)
    proportion(successes, n, confidence=0.95) -> Estimate                # Wilson
    mean_t_interval(values, confidence=0.95) -> Estimate
    resample_indices(n_units, n_resamples, seed) -> ndarray[int] (n_resamples, n_units)
    resample_counts(n_units, n_resamples, seed) -> ndarray[float] (n_resamples, n_units)
    percentile_interval(samples, confidence=0.95) -> (low, high, n_valid) | (None, None, n_valid)
    boot_method(n_resamples, confidence, unit="sessions") -> str         # the Estimate.method text
    bootstrap_estimate(statistic, n_units, *, n_resamples=1000, seed=0, confidence=0.95,
                       value=None, n=None) -> Estimate
    ratio_estimate(num, den, counts, confidence, n, n_resamples) -> Estimate   # sum(num)/sum(den)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from care_model.core.errors import ValidationError


# ---------------------------------------------------------------------------------------------
# Estimates and intervals
# ---------------------------------------------------------------------------------------------
def clean(x):
    """A JSON-ready float: None for None/NaN/inf, a Python float otherwise."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class Estimate:
    """A point value with an optional interval. ``value`` None means "not computable": see reason."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    method: str = ""
    reason: str = ""

    def __post_init__(self):
        self.value, self.low, self.high = clean(self.value), clean(self.low), clean(self.high)
        self.n = int(self.n)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n,
                "method": self.method, "reason": self.reason}

    @classmethod
    def missing(cls, reason: str, n: int = 0) -> "Estimate":
        return cls(None, n=n, reason=reason)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Estimate":
        return cls(data.get("value"), data.get("low"), data.get("high"), data.get("n", 0),
                   data.get("method", ""), data.get("reason", ""))


def _z(confidence: float) -> float:
    check_confidence(confidence)
    return float(stats.norm.ppf(0.5 + confidence / 2))


def check_confidence(confidence: float) -> None:
    if not (0 < confidence < 1):
        raise ValidationError(f"Confidence level {confidence!r} is not between 0 and 1.", "Use e.g. 0.95.")


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval for a proportion ``successes / n`` (successes may be fractional)."""
    if n <= 0:
        return None, None
    if successes < 0 or successes > n:
        raise ValidationError(f"{successes} successes out of {n} is not a proportion.",
                              "Count successes between 0 and n.")
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: float, n: int, confidence: float = 0.95) -> Estimate:
    if n <= 0:
        return Estimate.missing("no observations", 0)
    low, high = wilson_interval(successes, n, confidence)
    return Estimate(successes / n, low, high, n, f"Wilson {confidence:.0%}")


def mean_t_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean with the t-based interval mean +- t * sd / sqrt(n) (sd with n-1)."""
    check_confidence(confidence)
    x = np.asarray([v for v in values if v is not None], dtype=float)
    n = len(x)
    if n == 0:
        return Estimate.missing("no observations")
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, n=n, method="t", reason="one observation: no interval")
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(mean, mean - half, mean + half, n, f"t {confidence:.0%}")


# ---------------------------------------------------------------------------------------------
# Bootstrap over clusters (sessions)
# ---------------------------------------------------------------------------------------------
def resample_indices(n_units: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n_units)`` unit indices drawn with replacement (numpy default_rng(seed))."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_units, size=(int(n_resamples), int(n_units)))


def resample_counts(n_units: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """How often each unit appears in each resample: ``(n_resamples, n_units)`` (whole numbers,
    stored as float64 for fast matrix products).

    Same draws as :func:`resample_indices` with the same seed, so statistics computed from
    counts (weighted sums) and from indices (re-indexing) see the same resamples.
    """
    idx = resample_indices(n_units, n_resamples, seed)
    flat = idx + (np.arange(idx.shape[0]) * n_units)[:, None]
    counts = np.bincount(flat.ravel(), minlength=idx.shape[0] * n_units).reshape(idx.shape[0], n_units)
    return counts.astype(np.float64)  # float: it is only ever used in matrix products


def cluster_counts(unit_clusters: Sequence, n_resamples: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Per-unit resample weights ``(n_resamples, n_units)`` of a cluster bootstrap, and the unit's name.

    ``unit_clusters`` names each unit's cluster (a session's client): the distinct clusters are
    resampled and every unit of a drawn cluster comes with it. With a single cluster the units
    themselves are resampled, and the name says so.
    """
    keys = list(unit_clusters)
    order = list(dict.fromkeys(keys))
    if len(order) >= 2:
        idx = {c: j for j, c in enumerate(order)}
        cw = resample_counts(len(order), n_resamples, seed)
        return cw[:, [idx[k] for k in keys]], "clients"
    return resample_counts(len(keys), n_resamples, seed), "sessions (one client)"


def percentile_interval(samples, confidence: float = 0.95):
    """Percentile interval of the finite entries of ``samples``; (None, None, n_valid) when more
    than half of them are undefined (NaN/None)."""
    check_confidence(confidence)
    arr = np.asarray([np.nan if s is None else s for s in np.ravel(samples)], dtype=float)
    valid = arr[np.isfinite(arr)]
    if len(arr) == 0 or len(valid) < 0.5 * len(arr) or len(valid) < 2:
        return None, None, int(len(valid))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(valid, [alpha, 1 - alpha])
    return float(low), float(high), int(len(valid))


def boot_method(n_resamples: int, confidence: float, unit: str = "sessions") -> str:
    return f"percentile bootstrap over {unit} ({n_resamples} resamples, {confidence:.0%})"


def bootstrap_estimate(statistic: Callable[[np.ndarray], float | None], n_units: int, *,
                       n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                       value: float | None = None, n: int | None = None,
                       unit: str = "sessions") -> Estimate:
    """Percentile bootstrap of ``statistic(indices)`` over ``n_units`` clusters.

    ``statistic`` gets an int array of unit indices (all of them, in order, for the point
    estimate; a resample with replacement otherwise) and returns a float or None/NaN.
    """
    if value is None:
        value = statistic(np.arange(n_units))
    value = clean(value)
    n = n_units if n is None else n
    if value is None:
        return Estimate.missing("not computable on these data", n)
    if n_resamples <= 0 or n_units < 2:
        return Estimate(value, n=n, reason="" if n_resamples <= 0 else "fewer than 2 units: no interval")
    samples = [statistic(ix) for ix in resample_indices(n_units, n_resamples, seed)]
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(value, n=n, method=boot_method(n_resamples, confidence, unit),
                        reason=f"only {n_valid} of {n_resamples} resamples defined: no interval")
    return Estimate(value, low, high, n, boot_method(n_resamples, confidence, unit))


def ratio_estimate(num: np.ndarray, den: np.ndarray, counts: np.ndarray | None, confidence: float,
                    n: int, n_resamples: int) -> Estimate:
    """Estimate of sum(num)/sum(den) with per-cluster sums ``num``/``den`` and resample ``counts``."""
    total = float(den.sum())
    if total == 0:
        return Estimate.missing("no observations", n)
    value = float(num.sum()) / total
    if counts is None:
        return Estimate(value, n=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (counts @ num) / (counts @ den)
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(value, n=n, reason=f"only {n_valid} of {n_resamples} resamples defined: no interval")
    return Estimate(value, low, high, n, boot_method(n_resamples, confidence))
