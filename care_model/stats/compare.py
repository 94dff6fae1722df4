"""Candidate against active on the same held-out sessions: each metric's difference and its interval.

For every dimension and both score fields (the parsed score and the expected score) the metric
(Pearson, Spearman, MSE of the predicted dimension mean against the client's self-reported one)
is computed for both versions on the sessions where both predicted and the client reported, and
the difference (candidate - active) gets a **paired cluster bootstrap** interval: the same
resampled **clients** for both versions (all of a client's sessions move together; with one
client, its sessions), so what the two share (the sessions' difficulty) cancels. The item-level
mean absolute error against the self-report is compared the same way.

Verdicts, fixed before any measurement:

* the **primary** metric is :data:`PRIMARY` (item MAE of the parsed score against the client's
  self-report): ``better`` or ``worse`` when the 95% interval of its difference excludes 0;
* every other row is **exploratory**: it gets a two-sided percentile-bootstrap p-value (twice the
  share of paired resamples on the other side of zero) and a Holm-adjusted p-value across all the rows
  shown (:func:`holm`); it is ``better`` or ``worse`` only when the Holm-adjusted p < .05, so the
  family-wise error over the ~20 metrics stays at 5% (as far as the bootstrap's p-values hold
  with few clients). The smallest attainable p is 2/(resamples + 1): below about 760 resamples no
  exploratory row can reach Holm's .05/19.

Otherwise ``not distinguishable``. With fewer than :data:`MIN_SESSIONS` common sessions every
verdict is ``too small to decide`` (the intervals are still shown).

Pure module: numpy and scipy only.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form
from care_model.stats.correlations import _resample_ranks, _weighted_pearson
from care_model.stats.estimates import cluster_counts

MIN_SESSIONS = 10
METRICS = {"pearson": True, "spearman": True, "mse": False, "item_mae": False}   # name -> higher is better
PRIMARY = ("score", "items", "item_mae")      # (score field, target, metric): the one pre-declared test
TOO_SMALL = "too small to decide"
ALPHA = 0.05


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted in the family)."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    m, out, running = len(idx), [None] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def _values(sessions: Mapping[str, Session], preds: Iterable[Prediction], field: str, form):
    """session id -> ({dimension: mean}, {item: value}) of one version (complete dimensions only)."""
    items: dict[str, dict[int, float]] = {}
    for p in preds:
        p = p if isinstance(p, Prediction) else Prediction.from_dict(p)
        v = getattr(p, field)
        if v is not None and p.session_id in sessions:
            items.setdefault(p.session_id, {})[int(p.item)] = float(v)
    return {sid: (form.dimension_scores(vals, require_all=True), vals) for sid, vals in items.items()}


def _metric(name: str, vals: tuple, w: np.ndarray) -> np.ndarray:
    """The metric under each row of resample weights ``w`` (resamples x sessions); NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "item_mae":
            err, = vals
            return (w @ err) / w.sum(axis=1)
        x, y = vals
        if name == "mse":
            return (w @ (x - y) ** 2) / w.sum(axis=1)
        if name == "spearman":
            return _weighted_pearson(w, _resample_ranks(w, x), _resample_ranks(w, y))
        return _weighted_pearson(w, x, y)


def _point(name: str, vals: tuple) -> float | None:
    n = len(vals[0])
    if n == 0 or (name in ("pearson", "spearman") and n < 3):
        return None
    v = float(_metric(name, vals, np.ones((1, n)))[0])
    return v if np.isfinite(v) else None


def _verdict(diff, low, high, p_holm, higher_better: bool, n: int, primary: bool) -> str:
    if n < MIN_SESSIONS:
        return TOO_SMALL
    if diff is None or low is None:
        return "n/a"
    if primary:
        decided = low > 0 or high < 0
    else:
        decided = p_holm is not None and p_holm < ALPHA
    if not decided:
        return "not distinguishable"
    return "better" if (diff > 0) == higher_better else "worse"


def _row(target, field, metric, a_vals, b_vals, units, n_boot, seed, confidence):
    n = len(a_vals[0])
    point_a, point_b = _point(metric, a_vals), _point(metric, b_vals)
    diff = None if point_a is None or point_b is None else point_a - point_b
    low = high = p = None
    if n_boot > 0 and n >= 2 and diff is not None:
        w, _unit = cluster_counts(units, n_boot, seed)
        diffs = _metric(metric, a_vals, w) - _metric(metric, b_vals, w)
        diffs = diffs[np.isfinite(diffs)]
        if len(diffs) >= 0.9 * n_boot:
            alpha = (1 - confidence) / 2
            low, high = (float(q) for q in np.quantile(diffs, [alpha, 1 - alpha]))
            # percentile bootstrap p-value (the share of resamples on the other side of 0, doubled), the
            # test that matches the interval; +1 so it is never 0 (Davison & Hinkley 1997, 4.4)
            below, above = int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0))
            p = min(1.0, 2 * (min(below, above) + 1) / (len(diffs) + 1))
    return {"target": target, "score_field": field, "metric": metric, "better": "higher" if METRICS[metric] else
            "lower", "candidate": point_a, "active": point_b, "difference": diff, "low": low, "high": high, "n": n,
            "n_clients": len(set(units)), "p": p,
            "role": "primary" if (field, target, metric) == PRIMARY else "exploratory"}


def compare_versions(sessions: Mapping[str, Session], candidate: Iterable, active: Iterable, *, n_boot: int = 1000,
                     seed: int = 0, confidence: float = 0.95, fields=("score", "expected_score")) -> dict:
    """Paired comparison on the sessions both versions predicted (see the module docstring)."""
    forms = {s.form for s in sessions.values()} or {"wai-sr"}
    form = load_form(sorted(forms)[0])
    candidate, active = list(candidate), list(active)
    rows, n_common, clients = [], 0, set()
    unit_of = {sid: s.client_id or f"session:{sid}" for sid, s in sessions.items()}
    for field in fields:
        cand, act = _values(sessions, candidate, field, form), _values(sessions, active, field, form)
        common = sorted(s for s in cand if s in act and sessions[s].ratings.get("client"))
        n_common = max(n_common, len(common))
        clients |= {unit_of[s] for s in common}
        truth = {s: form.dimension_scores(sessions[s].ratings["client"], require_all=True) for s in common}
        for dim in form.dimension_keys:
            ok = [s for s in common if None not in (cand[s][0].get(dim), act[s][0].get(dim), truth[s].get(dim))]
            y = np.array([truth[s][dim] for s in ok], float)
            a = (np.array([cand[s][0][dim] for s in ok], float), y)
            b = (np.array([act[s][0][dim] for s in ok], float), y)
            for metric in ("pearson", "spearman", "mse"):
                rows.append(_row(dim, field, metric, a, b, [unit_of[s] for s in ok], n_boot, seed, confidence))
        # item MAE vs the client's item ratings, averaged per session (the session is the unit)
        per_a, per_b, units = [], [], []
        for s in common:
            rated = {int(k): float(v) for k, v in sessions[s].ratings["client"].items()}
            keys = [k for k in rated if k in cand[s][1] and k in act[s][1]]
            if keys:
                per_a.append(np.mean([abs(cand[s][1][k] - rated[k]) for k in keys]))
                per_b.append(np.mean([abs(act[s][1][k] - rated[k]) for k in keys]))
                units.append(unit_of[s])
        rows.append(_row("items", field, "item_mae", (np.array(per_a),), (np.array(per_b),), units, n_boot, seed,
                         confidence))
    for r, adj in zip(rows, holm([r["p"] for r in rows])):
        r["p_holm"] = adj
        r["verdict"] = _verdict(r["difference"], r["low"], r["high"], adj, METRICS[r["metric"]], r["n"],
                                r["role"] == "primary")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    unit = "clients" if len(clients) >= 2 else "sessions (one client)"
    return {"n_sessions": n_common, "n_clients": len(clients), "unit": unit, "min_sessions": MIN_SESSIONS,
            "too_small": n_common < MIN_SESSIONS, "rows": rows, "counts": counts, "n_boot": n_boot,
            "confidence": confidence, "primary": "item MAE of the parsed score against the client's self-report",
            "method": f"paired percentile bootstrap over {unit} ({n_boot} resamples, {confidence:.0%}); "
                      "exploratory verdicts need a Holm-adjusted p < .05 across the rows shown"}


def too_small_message(n: int) -> str:
    return (f"Only {n} held-out session(s) (fewer than {MIN_SESSIONS}): the comparison is too small to decide; "
            "the intervals below show how uncertain each difference is.")
