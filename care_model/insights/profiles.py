"""Counselor profiles (the paper's Fig. 2): each counselor's mean Goal, Task and Bond.

For every counselor with at least ``min_sessions`` scored sessions: the mean of each dimension
with a percentile cluster-bootstrap interval (clients resampled with all their sessions,
:func:`care_model.stats.estimates.cluster_counts`), the weakest dimension, and whether the
counselor lies below the overall mean beyond the interval (its upper bound under the overall
mean). The overall mean (all scored sessions, the reference line) has its own interval; the
weakest dimension overall is the one with the lowest overall mean. Sessions without a counselor
id (none, or a placeholder such as AnnoMI's) are in the overall mean and in no profile; the
result says how many.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from care_model.insights.table import SessionRow, dims_of
from care_model.stats.estimates import Estimate, boot_method, cluster_counts, percentile_interval

MIN_SESSIONS = 5


def mean_estimate(values: Sequence[float], clients: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> Estimate:
    """Mean with a percentile bootstrap interval over clients (sessions when there is one client)."""
    y = np.asarray(values, float)
    if len(y) == 0:
        return Estimate.missing("no scored session")
    value = float(y.mean())
    if len(y) < 2 or n_boot <= 0:
        return Estimate(value, n=len(y), reason="one session: no interval" if len(y) < 2 else "")
    w, unit = cluster_counts(list(clients), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (w @ y) / w.sum(axis=1)
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(value, n=len(y), reason=f"only {n_valid} of {n_boot} resamples defined: no interval")
    return Estimate(value, low, high, len(y), boot_method(n_boot, confidence, unit))


def counselor_profiles(rows: Sequence[SessionRow], *, min_sessions: int = MIN_SESSIONS, n_boot: int = 1000,
                       seed: int = 0, confidence: float = 0.95) -> dict:
    """The profiles (see the module docstring) as plain data."""
    dims = dims_of(rows)
    overall = {}
    for d in dims:
        use = [r for r in rows if r.dims.get(d) is not None]
        overall[d] = mean_estimate([r.dims[d] for r in use], [r.client for r in use], n_boot=n_boot, seed=seed,
                                   confidence=confidence).to_dict()
    defined = {d: e["value"] for d, e in overall.items() if e["value"] is not None}
    by_counselor: dict[str, list[SessionRow]] = defaultdict(list)
    for r in rows:
        if r.counselor_id and any(r.dims.get(d) is not None for d in dims):
            by_counselor[r.counselor_id].append(r)
    profiles, small = [], []
    for cid in sorted(by_counselor):
        mine = by_counselor[cid]
        if len(mine) < min_sessions:
            small.append({"counselor": cid, "n": len(mine)})
            continue
        est, below = {}, []
        for k, d in enumerate(dims):
            use = [r for r in mine if r.dims.get(d) is not None]
            e = mean_estimate([r.dims[d] for r in use], [r.client for r in use], n_boot=n_boot, seed=seed + 1 + k,
                              confidence=confidence)
            est[d] = e.to_dict()
            if e.high is not None and d in defined and e.high < defined[d]:
                below.append(d)
        means = {d: e["value"] for d, e in est.items() if e["value"] is not None}
        profiles.append({"counselor": cid, "n": len(mine), "n_clients": len({r.client for r in mine}), "dims": est,
                         "weakest": min(means, key=means.get) if means else None, "below_overall": below})
    ranking = {d: [p["counselor"] for p in sorted((p for p in profiles if p["dims"][d]["value"] is not None),
                                                   key=lambda p: -p["dims"][d]["value"])] for d in dims}
    no_id = sum(1 for r in rows if not r.counselor_id)
    return {"dims": dims, "overall": overall, "weakest_overall": min(defined, key=defined.get) if defined else None,
            "profiles": profiles, "too_few": small, "ranking": ranking, "min_sessions": min_sessions,
            "sessions_without_counselor": no_id, "n_sessions": len(rows)}


def no_profile_message(result: dict) -> str | None:
    """Why there is no profile to show, or None."""
    if result["profiles"]:
        return None
    if result["sessions_without_counselor"] == result["n_sessions"]:
        return ("These sessions name no counselor (no counselor id, or the importer's placeholder for a corpus that "
                "does not identify counselors, such as AnnoMI's 'annomi-therapist'): counselor profiles need real "
                "counselor ids, and none are derived. The overall means below are over all scored sessions.")
    return (f"No counselor has {result['min_sessions']} or more scored sessions "
            f"({len(result['too_few'])} counselors have fewer).")
