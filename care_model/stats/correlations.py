"""Dimension correlations: a predicted (or the counselor's) WAI dimension mean against the
client's self-report, per dimension (pure: numpy, scipy; no torch, no tinydb).

Pearson r, Spearman rho (scipy.stats) and MSE with percentile-bootstrap intervals. Sessions of one
client are not independent, so with ``clusters`` (session id -> client) the bootstrap resamples
**clients**, all of a client's sessions moving together; with a single client it resamples that
client's sessions (the interval's method names the unit). Without ``clusters`` every session is its
own cluster. The bootstrap is vectorised: each resample is a vector of session weights
(:func:`care_model.stats.estimates.resample_counts`), Pearson is a weighted Pearson over those counts and
Spearman the same over the ranks each session's value has within the resample (what
``scipy.stats.rankdata`` gives the copies). Undefined statistics (fewer than 3 sessions, a constant
side) are ``Estimate(value=None, reason=...)``, never NaN.

Public API::

    Correlation(dimension, n, pearson, spearman, mse)                  (to_dict(), from_dict())
    dimension_correlations(pred_dim_means, truth, *, n_boot=1000, seed=0, confidence=0.95,
                           what=("predicted", "self-reported"), clusters=None) -> {dimension: Correlation}
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats

from care_model.stats.estimates import Estimate, boot_method, clean, cluster_counts, percentile_interval

CORRELATION_METRICS = ("pearson", "spearman", "mse")


@dataclass
class Correlation:
    dimension: str
    n: int
    pearson: Estimate
    spearman: Estimate
    mse: Estimate

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "n": self.n,
                **{m: getattr(self, m).to_dict() for m in CORRELATION_METRICS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Correlation":
        return cls(d["dimension"], d["n"], *(Estimate.from_dict(d[m]) for m in CORRELATION_METRICS))


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each bootstrap resample, given as unit counts ``w`` (resamples x units).

    ``x``/``y`` are per-unit values (1-D) or per-resample values (2-D, e.g. resample ranks).
    A resample in which one side is constant gives NaN.
    """
    total = w.sum(axis=1, keepdims=True)
    xc = x - (w * x).sum(axis=1, keepdims=True) / total
    yc = y - (w * y).sum(axis=1, keepdims=True) / total
    sxx, syy, sxy = (w * xc * xc).sum(axis=1), (w * yc * yc).sum(axis=1), (w * xc * yc).sum(axis=1)
    tiny_x = 1e-12 * (w * np.broadcast_to(x, w.shape) ** 2).sum(axis=1) + 1e-300
    tiny_y = 1e-12 * (w * np.broadcast_to(y, w.shape) ** 2).sum(axis=1) + 1e-300
    ok = (sxx > tiny_x) & (syy > tiny_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _resample_ranks(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Average (tie-aware) ranks that each unit's value has within each resample: for value v,
    (count below v) + (count equal to v + 1) / 2 -- what scipy.stats.rankdata gives the copies."""
    values, inverse = np.unique(x, return_inverse=True)
    per_value = np.zeros((w.shape[0], len(values)))
    np.add.at(per_value.T, inverse, w.T)
    below = np.cumsum(per_value, axis=1) - per_value
    ranks = below + (per_value + 1) / 2
    return ranks[:, inverse]


def _why_undefined(x: np.ndarray, y: np.ndarray, what: str) -> str:
    if len(x) < 3:
        return f"{len(x)} session(s) with both values: a correlation needs at least 3"
    if np.ptp(x) == 0:
        return f"the {what[0]} values are all {x[0]:g}: correlation undefined for a constant input"
    return f"the {what[1]} values are all {y[0]:g}: correlation undefined for a constant input"


def _correlation(dim: str, x: np.ndarray, y: np.ndarray, *, n_boot: int, seed: int, confidence: float,
                 what: tuple[str, str], units: list | None = None) -> Correlation:
    n = len(x)
    if n == 0:
        miss = Estimate.missing("no session has both values")
        return Correlation(dim, 0, miss, miss, miss)
    points = {}
    defined = n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
    if defined:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            points["pearson"] = float(stats.pearsonr(x, y)[0])
            points["spearman"] = float(stats.spearmanr(x, y)[0])
    points["mse"] = float(np.mean((x - y) ** 2))
    samples: dict[str, Any] = {m: [] for m in CORRELATION_METRICS}
    unit = "sessions"
    if n_boot > 0 and n >= 2:
        w, unit = cluster_counts(units or [f"session:{i}" for i in range(n)], n_boot, seed)
        unit = unit if units else "sessions"
        samples["pearson"] = _weighted_pearson(w, x, y)
        samples["spearman"] = _weighted_pearson(w, _resample_ranks(w, x), _resample_ranks(w, y))
        with np.errstate(invalid="ignore", divide="ignore"):
            samples["mse"] = (w @ (x - y) ** 2) / w.sum(axis=1)
    out = {}
    for m in CORRELATION_METRICS:
        if m not in points or clean(points[m]) is None:
            out[m] = Estimate.missing(_why_undefined(x, y, what), n)
            continue
        if len(samples[m]) == 0:
            out[m] = Estimate(points[m], n=n)
            continue
        low, high, n_valid = percentile_interval(samples[m], confidence)
        out[m] = (Estimate(points[m], low, high, n, boot_method(n_boot, confidence, unit)) if low is not None else
                  Estimate(points[m], n=n, reason=f"only {n_valid} of {n_boot} resamples defined: no interval"))
    return Correlation(dim, n, out["pearson"], out["spearman"], out["mse"])


def dimension_correlations(pred_dim_means: Mapping[str, Mapping[str, float | None]],
                           truth: Mapping[str, Mapping[str, float | None]], *, n_boot: int = 1000, seed: int = 0,
                           confidence: float = 0.95,
                           what: tuple[str, str] = ("predicted", "self-reported"),
                           clusters: Mapping[str, str | None] | None = None) -> dict[str, Correlation]:
    """Per dimension: Pearson, Spearman and MSE of ``pred_dim_means`` against ``truth``.

    ``clusters``: session id -> client id (None or missing: the session is its own client); the
    bootstrap resamples clients (sessions within the client when there is only one).

    Both map session id -> {dimension: mean}. Sessions missing on either side, or with a None
    value for the dimension, are left out of that dimension. Undefined statistics (fewer than 3
    sessions, a constant side) are ``Estimate(value=None, reason=...)``.
    """
    dims: list[str] = []
    for source in (pred_dim_means, truth):
        for per in source.values():
            for d in per:
                if d not in dims:
                    dims.append(d)
    common = [sid for sid in pred_dim_means if sid in truth]
    out = {}
    for dim in dims:
        pairs = [(clean(pred_dim_means[sid].get(dim)), clean(truth[sid].get(dim)), sid) for sid in common]
        pairs = [(p, t, sid) for p, t, sid in pairs if p is not None and t is not None]
        x = np.array([p for p, _, _ in pairs], dtype=float)
        y = np.array([t for _, t, _ in pairs], dtype=float)
        units = None if clusters is None else [clusters.get(sid) or f"session:{sid}" for _, _, sid in pairs]
        out[dim] = _correlation(dim, x, y, n_boot=n_boot, seed=seed, confidence=confidence, what=what, units=units)
    return out
