"""Known-groups validity: do the scores separate sessions that should differ?

For a categorical session field (AnnoMI's ``mi_quality``, a study arm, a site) and two of its
levels A and B (default: the two most frequent, A the more frequent): per dimension, the
difference of the mean scores (A minus B) and the AUC (scikit-learn ``roc_auc_score`` with A as
the positive class: the probability that an A session scores above a B session, ties half), each
with a percentile cluster-bootstrap interval (clients resampled with all their sessions; the
resample weights go to ``roc_auc_score`` as ``sample_weight``). The trivial baselines beside them:
a difference of 0 and an AUC of 0.5 (chance). Sessions of other levels, or without the field,
are left out and counted.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from care_model.core.errors import ValidationError
from care_model.insights.table import SessionRow, dims_of
from care_model.stats.estimates import Estimate, boot_method, cluster_counts, percentile_interval

MIN_PER_GROUP = 2


def categorical_fields(rows: Sequence[SessionRow], max_levels: int = 12) -> list[str]:
    """Session fields with 2..max_levels distinct values shared by several sessions (candidates)."""
    values: dict[str, Counter] = {}
    for r in rows:
        for k, v in r.fields.items():
            if isinstance(v, (str, bool, int)):
                values.setdefault(k, Counter())[str(v)] += 1
    return sorted(k for k, c in values.items() if 2 <= len(c) <= max_levels and sum(c.values()) > len(c))


def auc(y_true: Sequence[int], scores: Sequence[float], weights: Sequence[float] | None = None) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    if weights is not None:
        w = np.asarray(weights, float)
        keep = w > 0
        y, s, w = y[keep], np.asarray(scores, float)[keep], w[keep]
    else:
        s, w = np.asarray(scores, float), None
    if len(set(y.tolist())) < 2:
        return None
    return float(roc_auc_score(y, s, sample_weight=w))


def _estimate(value, samples, n, n_boot, confidence, unit) -> dict:
    if value is None:
        return Estimate.missing("not computable", n).to_dict()
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(value, n=n, reason=f"only {n_valid} of {n_boot} resamples defined: no interval").to_dict()
    return Estimate(value, low, high, n, boot_method(n_boot, confidence, unit)).to_dict()


def known_groups(rows: Sequence[SessionRow], field: str, levels: Sequence[str] | None = None, *,
                 n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    counts = Counter(str(r.fields[field]) for r in rows if field in r.fields and r.fields[field] not in ("", None))
    if len(counts) < 2:
        raise ValidationError(f"Session field {field!r} has {len(counts)} distinct value(s) in these sessions; "
                              "a known-groups comparison needs two.",
                              f"Pick a field with two or more values (candidates: "
                              f"{', '.join(categorical_fields(rows)) or 'none'}).")
    if levels:
        a, b = (str(x) for x in levels)
        missing = [x for x in (a, b) if x not in counts]
        if missing:
            raise ValidationError(f"Field {field!r} has no sessions with value(s) {', '.join(missing)}.",
                                  f"Use two of: {', '.join(sorted(counts))}.")
    else:
        (a, _), (b, _) = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    out = {"field": field, "a": a, "b": b, "levels": dict(counts), "left_out": sum(counts.values()) - counts[a]
           - counts[b], "dims": {}}
    for k, d in enumerate(dims_of(rows)):
        use = [r for r in rows if str(r.fields.get(field)) in (a, b) and r.dims.get(d) is not None]
        y = np.array([1 if str(r.fields[field]) == a else 0 for r in use])
        s = np.array([r.dims[d] for r in use], float)
        na, nb = int(y.sum()), int(len(y) - y.sum())
        res = {"n_a": na, "n_b": nb, "n_clients": len({r.client for r in use}),
               "mean_a": float(s[y == 1].mean()) if na else None, "mean_b": float(s[y == 0].mean()) if nb else None}
        if na < MIN_PER_GROUP or nb < MIN_PER_GROUP:
            reason = f"{na} {a} and {nb} {b} sessions with a {d} score; each group needs {MIN_PER_GROUP}"
            res.update(difference=Estimate.missing(reason, na + nb).to_dict(),
                       auc=Estimate.missing(reason, na + nb).to_dict())
            out["dims"][d] = res
            continue
        diff = res["mean_a"] - res["mean_b"]
        w, unit = cluster_counts([r.client for r in use], n_boot, seed + k)
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = (w @ (s * y)) / (w @ y) - (w @ (s * (1 - y))) / (w @ (1 - y))
        aucs = [auc(y, s, row) for row in w]
        res["difference"] = _estimate(diff, diffs, na + nb, n_boot, confidence, unit)
        res["auc"] = _estimate(auc(y, s), [np.nan if v is None else v for v in aucs], na + nb, n_boot, confidence,
                               unit)
        out["dims"][d] = res
    return out
