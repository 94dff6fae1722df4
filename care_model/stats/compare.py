"""Candidate against active on the same held-out sessions: each metric's difference and its interval.

For every dimension and both score fields (the parsed score and the expected score) the metric
(Pearson, Spearman, MSE of the predicted dimension mean against the client's self-reported one)
is computed for both versions on the sessions where both predicted and the client reported, and
the difference (candidate - active) gets a **paired** percentile bootstrap interval: the same
resampled sessions for both versions, so what the two share (the sessions' difficulty) cancels.
The item-level mean absolute error against the self-report is compared the same way.

Verdict per metric, given the direction that is better (higher for correlations, lower for
errors): ``better`` or ``worse`` when the 95% interval of the difference excludes 0, else
``not distinguishable``. With fewer than :data:`MIN_SESSIONS` common sessions every verdict is
``too small to decide`` (the intervals are still shown).

Pure module: numpy and scipy only.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from scipy import stats

from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form

MIN_SESSIONS = 10
METRICS = {"pearson": True, "spearman": True, "mse": False, "item_mae": False}   # name -> higher is better
TOO_SMALL = "too small to decide"


def _values(sessions: Mapping[str, Session], preds: Iterable[Prediction], field: str, form):
    """session id -> ({dimension: mean}, {item: value}) of one version (complete dimensions only)."""
    items: dict[str, dict[int, float]] = {}
    for p in preds:
        p = p if isinstance(p, Prediction) else Prediction.from_dict(p)
        v = getattr(p, field)
        if v is not None and p.session_id in sessions:
            items.setdefault(p.session_id, {})[int(p.item)] = float(v)
    return {sid: (form.dimension_scores(vals, require_all=True), vals) for sid, vals in items.items()}


def _metric(name: str, x: np.ndarray, y: np.ndarray) -> float | None:
    if name == "mse":
        return float(np.mean((x - y) ** 2))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    if name == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.clip((xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc)), -1.0, 1.0))


def _verdict(diff, low, high, higher_better: bool, n: int) -> str:
    if n < MIN_SESSIONS:
        return TOO_SMALL
    if diff is None or low is None:
        return "n/a"
    if low > 0 or high < 0:
        return "better" if (low > 0) == higher_better else "worse"
    return "not distinguishable"


def _row(target, field, metric, a_vals, b_vals, n_boot, rng_seed, confidence):
    n = len(a_vals[0])
    point_a = _metric_of(metric, a_vals)
    point_b = _metric_of(metric, b_vals)
    diff = None if point_a is None or point_b is None else point_a - point_b
    low = high = None
    if n_boot > 0 and n >= 2 and diff is not None:
        rng = np.random.default_rng(rng_seed)
        diffs = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            da = _metric_of(metric, tuple(v[idx] for v in a_vals))
            db = _metric_of(metric, tuple(v[idx] for v in b_vals))
            if da is not None and db is not None:
                diffs.append(da - db)
        if len(diffs) >= 0.9 * n_boot:
            alpha = (1 - confidence) / 2
            low, high = (float(q) for q in np.quantile(diffs, [alpha, 1 - alpha]))
    higher = METRICS[metric]
    return {"target": target, "score_field": field, "metric": metric, "better": "higher" if higher else "lower",
            "candidate": point_a, "active": point_b, "difference": diff, "low": low, "high": high, "n": n,
            "verdict": _verdict(diff, low, high, higher, n)}


def _metric_of(metric, vals):
    if metric == "item_mae":
        err, = vals
        return float(np.mean(err)) if len(err) else None
    x, y = vals
    return _metric(metric, x, y)


def compare_versions(sessions: Mapping[str, Session], candidate: Iterable, active: Iterable, *, n_boot: int = 1000,
                     seed: int = 0, confidence: float = 0.95, fields=("score", "expected_score")) -> dict:
    """Paired comparison on the sessions both versions predicted (see the module docstring)."""
    forms = {s.form for s in sessions.values()} or {"wai-sr"}
    form = load_form(sorted(forms)[0])
    candidate, active = list(candidate), list(active)
    rows, n_common = [], 0
    for field in fields:
        cand, act = _values(sessions, candidate, field, form), _values(sessions, active, field, form)
        common = sorted(s for s in cand if s in act and sessions[s].ratings.get("client"))
        n_common = max(n_common, len(common))
        truth = {s: form.dimension_scores(sessions[s].ratings["client"], require_all=True) for s in common}
        for dim in form.dimension_keys:
            ok = [s for s in common if None not in (cand[s][0].get(dim), act[s][0].get(dim), truth[s].get(dim))]
            y = np.array([truth[s][dim] for s in ok], float)
            a = (np.array([cand[s][0][dim] for s in ok], float), y)
            b = (np.array([act[s][0][dim] for s in ok], float), y)
            for metric in ("pearson", "spearman", "mse"):
                rows.append(_row(dim, field, metric, a, b, n_boot, seed, confidence))
        # item MAE vs the client's item ratings, averaged per session (the session is the unit)
        per_a, per_b = [], []
        for s in common:
            rated = {int(k): float(v) for k, v in sessions[s].ratings["client"].items()}
            keys = [k for k in rated if k in cand[s][1] and k in act[s][1]]
            if keys:
                per_a.append(np.mean([abs(cand[s][1][k] - rated[k]) for k in keys]))
                per_b.append(np.mean([abs(act[s][1][k] - rated[k]) for k in keys]))
        rows.append(_row("items", field, "item_mae", (np.array(per_a),), (np.array(per_b),), n_boot, seed, confidence))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {"n_sessions": n_common, "min_sessions": MIN_SESSIONS, "too_small": n_common < MIN_SESSIONS,
            "rows": rows, "counts": counts, "n_boot": n_boot, "confidence": confidence,
            "method": f"paired percentile bootstrap over sessions ({n_boot} resamples, {confidence:.0%})"}


def too_small_message(n: int) -> str:
    return (f"Only {n} held-out session(s) (fewer than {MIN_SESSIONS}): the comparison is too small to decide; "
            "the intervals below show how uncertain each difference is.")
