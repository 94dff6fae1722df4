"""Suggestion quality against trivial baselines, with intervals whose unit is the client.

A model's agreement with client self-reports means little on its own: a model that answers "4"
to everything can agree more often than one that reads the transcript. So every figure here
stands beside the same figure of two constants fitted on the training side:

- ``mean``: each item's mean self-reported score over the training sessions (rounded to the
  nearest option for exact and within-1 agreement; the unrounded mean for MAE, MSE and the
  dimension means, where it is the best constant);
- ``mode``: each item's most frequent self-reported score (ties: the one nearest the mean, then
  the lower).

Without a training set (a base model, trained on none of these sessions) the baselines of a
session are fitted on the *other clients'* sessions (leave one client out), so no client's own
answers predict themselves.

Metrics per system: exact agreement and within-1 agreement (share of items), item MAE, and per
dimension Pearson, Spearman and MSE of the predicted dimension mean against the self-reported one.
Intervals are percentile bootstraps that resample **clients** (all of a client's sessions move
together: sessions of one client are not independent); with a single client they resample its
sessions, and the unit says so. Differences model - baseline are paired (the same resamples).

Decision rule (fixed here, before any measurement): the primary metric is item MAE. A model
*beats the baselines* only when the 95% interval of MAE(model) - MAE(baseline) lies below zero
for both baselines. Every other figure is exploratory and labelled so.

Pure: numpy and scipy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction, Session
from care_model.core.wai import Form, load_form
from care_model.stats.estimates import Estimate, boot_method, percentile_interval, resample_counts

SYSTEMS = ("model", "mean", "mode")
BASELINES = ("mean", "mode")
ITEM_METRICS = {"exact": True, "within1": True, "item_mae": False}    # name -> higher is better
DIM_METRICS = {"pearson": True, "spearman": True, "mse": False}
PRIMARY = "item_mae"
MIN_CLIENTS = 5
NOT_BETTER = "not better than a constant"
SCORE_FIELDS = ("score", "expected_score", "raw_argmax", "calibrated_argmax")
SCORE_NAMES = {"score": "parsed score", "expected_score": "expected score", "raw_argmax": "raw argmax",
               "calibrated_argmax": "calibrated argmax"}


@dataclass
class Fit:
    """Per-item baselines fitted on a set of self-reports."""

    mean: dict[int, float]
    mode: dict[int, int]

    @classmethod
    def from_ratings(cls, ratings: Sequence[Mapping[int, int]], items: Sequence[int]) -> "Fit":
        mean, mode = {}, {}
        for it in items:
            vals = [int(r[it]) for r in ratings if r.get(it) is not None]
            if not vals:
                continue
            m = float(np.mean(vals))
            counts: dict[int, int] = {}
            for v in vals:
                counts[v] = counts.get(v, 0) + 1
            top = max(counts.values())
            mean[it] = m
            mode[it] = min((v for v, c in counts.items() if c == top), key=lambda v: (abs(v - m), v))
        return cls(mean, mode)

    def value(self, system: str, item: int, *, integer: bool) -> float | None:
        if system == "mode":
            return self.mode.get(item)
        v = self.mean.get(item)
        return None if v is None else (float(int(np.floor(v + 0.5))) if integer else v)


@dataclass
class QualityReport:
    model_version: str
    n_sessions: int
    n_clients: int
    unit: str                                        # "clients", or "sessions (one client)"
    score_field: str
    baseline_source: str                             # "training set (N sessions)" or "leave one client out"
    systems: dict[str, dict[str, Estimate]]          # system -> metric ("exact", "goal.pearson", ...) -> estimate
    differences: dict[str, dict[str, dict]]          # baseline -> metric -> {"estimate": Estimate, "verdict": str}
    beats_baselines: bool
    verdict: str
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model_version": self.model_version, "n_sessions": self.n_sessions, "n_clients": self.n_clients,
                "unit": self.unit, "score_field": self.score_field, "baseline_source": self.baseline_source,
                "primary_metric": PRIMARY, "beats_baselines": self.beats_baselines, "verdict": self.verdict,
                "systems": {s: {m: e.to_dict() for m, e in ms.items()} for s, ms in self.systems.items()},
                "differences": {b: {m: {"estimate": d["estimate"].to_dict(), "verdict": d["verdict"]}
                                    for m, d in ms.items()} for b, ms in self.differences.items()},
                "notes": list(self.notes), "settings": dict(self.settings)}


def score_of(p: Prediction, score_field: str) -> float | None:
    """The score of ``p`` by ``score_field``: "score" (the parsed score), "expected_score",
    "raw_argmax" (argmax of ``probs`` + 1) or "calibrated_argmax" (of ``probs_calibrated``)."""
    if score_field in ("raw_argmax", "calibrated_argmax"):
        probs = p.probs if score_field == "raw_argmax" else p.probs_calibrated
        return float(int(np.argmax(probs)) + 1) if probs else None
    v = getattr(p, score_field)
    return None if v is None else float(v)


def client_of(session: Session) -> str:
    """The unit of independence: the client id, else the session itself (its own client)."""
    return session.client_id or f"session:{session.id}"


def _verdict(est: Estimate, higher_better: bool, n_units: int) -> str:
    if est.value is None or not est.has_interval:
        return "n/a"
    if n_units < MIN_CLIENTS:
        return "too small to decide"
    if est.low > 0 or est.high < 0:
        return "better" if (est.low > 0) == higher_better else "worse"
    return "not distinguishable"


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r per row of weights ``w`` (n_resamples, n); NaN where a side is constant."""
    sw = w.sum(axis=1, keepdims=True)
    mx, my = (w @ x)[:, None] / sw, (w @ y)[:, None] / sw
    return _pearson_of_deviations(w, x[None, :] - mx, y[None, :] - my)


def _pearson_of_deviations(w: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    cov = (w * dx * dy).sum(axis=1)
    vx, vy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vx * vy)
    r[(vx <= 1e-12) | (vy <= 1e-12)] = np.nan
    return np.clip(r, -1, 1)


def _point_corr(x: np.ndarray, y: np.ndarray, spearman: bool) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    if spearman:
        x, y = sps.rankdata(x), sps.rankdata(y)
    return float(np.corrcoef(x, y)[0, 1])


def _weighted_ranks(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mid-ranks of x within each weighted resample (rows of w), for a resampled Spearman."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[:, order]
    out = np.empty_like(w)
    # tie groups of x
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    cum = np.cumsum(ws, axis=1)
    before = np.concatenate([np.zeros((w.shape[0], 1)), cum], axis=1)
    for s, e in zip(starts, ends):
        lo = before[:, s]
        cnt = before[:, e] - lo
        rank = lo + (cnt + 1) / 2.0
        out[:, order[s:e]] = rank[:, None]
    return out


def _estimate(point, samples, n_units, n_boot, confidence, unit, reason=""):
    if point is None:
        return Estimate.missing(reason or "not computable", n_units)
    if samples is None or len(samples) == 0:
        return Estimate(point, n=n_units, reason=reason)
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(point, n=n_units, reason=f"only {n_valid} of {n_boot} resamples defined: no interval")
    return Estimate(point, low, high, n_units, boot_method(n_boot, confidence, unit=unit))


def quality_against_baselines(sessions: Iterable[Session], predictions: Iterable[Prediction], *,
                              training: Iterable[Session] | None = None, form: Form | str | None = None,
                              score_field: str = "score", n_boot: int = 1000, seed: int = 0,
                              confidence: float = 0.95) -> QualityReport:
    """Agreement of one model version's predictions with client self-reports, beside the baselines.

    ``sessions``: the evaluated (held-out) sessions; those without a complete client self-report
    are left out (said in ``notes``). ``predictions``: the latest prediction per (session, item)
    of one model version. ``training``: the sessions whose self-reports fit the baselines (a
    trained version's training split); None fits them leaving one client out.
    """
    if score_field not in SCORE_FIELDS:
        raise ValidationError(f"Unknown score_field {score_field!r}.", f"Use one of: {', '.join(SCORE_FIELDS)}.")
    form = load_form(form or "wai-sr") if isinstance(form, str) or form is None else form
    items = form.item_ids
    notes: list[str] = []
    sess = [s if isinstance(s, Session) else Session.from_dict(s) for s in sessions]
    preds = [p if isinstance(p, Prediction) else Prediction.from_dict(p) for p in predictions]
    versions = sorted({p.model_version for p in preds})
    if len(versions) > 1:
        raise ValidationError(f"Predictions from several model versions ({', '.join(versions)}).",
                              "Pass the latest predictions of one model version.")
    by_key = {}
    for p in preds:
        v = score_of(p, score_field)
        if v is not None:
            by_key[(p.session_id, int(p.item))] = float(v)
    rated = [s for s in sess if len(s.ratings.get("client") or {}) == len(items)]
    if len(rated) < len(sess):
        notes.append(f"{len(sess) - len(rated)} session(s) without a complete client self-report left out.")
    rated = [s for s in rated if any((s.id, it) in by_key for it in items)]
    if training is not None:
        train = [t if isinstance(t, Session) else Session.from_dict(t) for t in training]
        train_r = [t.ratings["client"] for t in train if len(t.ratings.get("client") or {}) == len(items)]
        if not train_r:
            raise ValidationError("The training set has no session with a complete client self-report.",
                                  "Fit the baselines leaving one client out (training=None).")
        fits = {s.id: Fit.from_ratings(train_r, items) for s in rated}
        source = f"training set ({len(train_r)} sessions)"
    else:
        fits = {}
        for s in rated:
            others = [o.ratings["client"] for o in rated if client_of(o) != client_of(s)]
            fits[s.id] = Fit.from_ratings(others, items)
        source = "other clients' sessions (leave one client out)"
    if rated and not any(fits[s.id].mean for s in rated):
        notes.append("Leaving one client out needs sessions of at least two clients with self-reports: "
                     "no baseline could be fitted. Pass the training set.")
    rated = [s for s in rated if fits[s.id].mean]
    clients = sorted({client_of(s) for s in rated})
    n, n_c = len(rated), len(clients)
    unit = "clients" if n_c >= 2 else "sessions (one client)"
    settings = {"n_boot": n_boot, "seed": seed, "confidence": confidence, "bootstrap_unit": unit,
                "score_name": SCORE_NAMES[score_field], "decoding": "/".join(sorted({p.decoding for p in preds}))}
    if n == 0:
        empty = {s: {} for s in SYSTEMS}
        why = notes[-1] if notes else "no session with a client self-report and a prediction: nothing to compare"
        return QualityReport(versions[0] if versions else "", 0, 0, unit, score_field, source, empty, {}, False,
                             why, notes, settings)

    # per session: item-level sums for each system, and dimension means
    dims = form.dimension_keys
    sums = {s: np.zeros((n, 3)) for s in SYSTEMS}            # exact, within1, abs error sums
    cnt = np.zeros(n)
    dim_pred = {s: np.full((n, len(dims)), np.nan) for s in SYSTEMS}
    dim_true = np.full((n, len(dims)), np.nan)
    for i, s in enumerate(rated):
        truth = s.ratings["client"]
        shared = [it for it in items if (s.id, it) in by_key]
        cnt[i] = len(shared)
        for sysname in SYSTEMS:
            for it in shared:
                if sysname == "model":
                    v = by_key[(s.id, it)]
                    vi = float(np.floor(v + 0.5))
                else:
                    v = fits[s.id].value(sysname, it, integer=False)
                    vi = fits[s.id].value(sysname, it, integer=True)
                t = truth[it]
                sums[sysname][i] += (vi == t, abs(vi - t) <= 1, abs(v - t))
            vals = ({it: by_key[(s.id, it)] for it in shared} if sysname == "model" else
                    {it: fits[s.id].value(sysname, it, integer=False) for it in items})
            ds = form.dimension_scores(vals, require_all=False)
            dim_pred[sysname][i] = [np.nan if ds.get(d) is None else ds[d] for d in dims]
        td = form.dimension_scores(truth, require_all=True)
        dim_true[i] = [td[d] for d in dims]

    # resampling weights per session (clients move together)
    w = None
    if n_boot > 0 and n >= 2:
        if n_c >= 2:
            idx = {c: j for j, c in enumerate(clients)}
            cw = resample_counts(n_c, n_boot, seed)
            w = cw[:, [idx[client_of(s)] for s in rated]]
        else:
            w = resample_counts(n, n_boot, seed)
    ones = np.ones((1, n))

    def item_stats(sysname, weights):
        num = weights @ sums[sysname]                    # (r, 3)
        den = weights @ cnt
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den[:, None]

    def dim_stats(sysname, weights, j, metric):
        x, y = dim_pred[sysname][:, j], dim_true[:, j]
        ok = ~np.isnan(x)
        x, y, ww = x[ok], y[ok], weights[:, ok]
        if metric == "mse":
            with np.errstate(invalid="ignore", divide="ignore"):
                return (ww @ (x - y) ** 2) / ww.sum(axis=1)
        if metric == "spearman":
            return _rank_pearson(ww, x, y)
        return _weighted_pearson(ww, x, y)

    def point_and_samples(sysname, metric):
        if metric in ITEM_METRICS:
            k = list(ITEM_METRICS).index(metric)
            point = float(item_stats(sysname, ones)[0, k])
            samples = None if w is None else item_stats(sysname, w)[:, k]
            return point, samples
        dim, m = metric.split(".")
        j = dims.index(dim)
        x, y = dim_pred[sysname][:, j], dim_true[:, j]
        ok = ~np.isnan(x)
        if m == "mse":
            point = float(np.mean((x[ok] - y[ok]) ** 2)) if ok.any() else None
        else:
            point = _point_corr(x[ok], y[ok], m == "spearman")
        samples = None if w is None or point is None else dim_stats(sysname, w, j, m)
        return point, samples

    metric_names = list(ITEM_METRICS) + [f"{d}.{m}" for d in dims for m in DIM_METRICS]
    systems: dict[str, dict[str, Estimate]] = {s: {} for s in SYSTEMS}
    raw: dict[tuple[str, str], tuple] = {}
    for sysname in SYSTEMS:
        for metric in metric_names:
            if sysname != "model" and metric.split(".")[-1] in ("pearson", "spearman"):
                # a constant has no correlation; what leave-one-client-out fits vary is an artifact
                # (a client's own high answers lower the others' mean), not a prediction
                raw[(sysname, metric)] = (None, None)
                systems[sysname][metric] = Estimate.missing("a constant per item: no correlation", n_c)
                continue
            point, samples = point_and_samples(sysname, metric)
            raw[(sysname, metric)] = (point, samples)
            systems[sysname][metric] = _estimate(point, samples, n_c, n_boot, confidence, unit)

    differences: dict[str, dict[str, dict]] = {}
    for b in BASELINES:
        differences[b] = {}
        for metric in metric_names:
            (pm, sm), (pb, sb) = raw[("model", metric)], raw[(b, metric)]
            higher = ITEM_METRICS.get(metric, DIM_METRICS.get(metric.split(".")[-1], True))
            if pm is None or pb is None:
                est = Estimate.missing("not computable for the model or the baseline", n_c)
            else:
                samples = None if sm is None or sb is None else sm - sb
                est = _estimate(pm - pb, samples, n_c, n_boot, confidence, unit)
            label = _verdict(est, higher, n_c)
            differences[b][metric] = {"estimate": est, "verdict": label if metric == PRIMARY else
                                      (f"{label} (exploratory)" if label not in ("n/a",) else label)}
    primary = [differences[b][PRIMARY]["verdict"] for b in BASELINES]
    beats = all(v == "better" for v in primary)
    if beats:
        verdict = f"better than both constants on item MAE ({n} held-out sessions, {n_c} clients)"
    elif any(v == "too small to decide" for v in primary):
        verdict = f"too few clients to tell it from a constant ({n} sessions, {n_c} clients; {MIN_CLIENTS} needed)"
    else:
        verdict = f"{NOT_BETTER} on {n} held-out sessions ({n_c} clients)"
    return QualityReport(versions[0] if versions else "", n, n_c, unit, score_field, source, systems, differences,
                         beats, verdict, notes, settings)


def _rank_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman per resample: Pearson of the within-resample mid-ranks (rows differ in weights)."""
    rx, ry = _weighted_ranks(w, x), _weighted_ranks(w, y)
    sw = w.sum(axis=1, keepdims=True)
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / sw
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / sw
    return _pearson_of_deviations(w, dx, dy)


def format_table(report: QualityReport) -> str:
    """A plain-text table: each metric for the model and both baselines, with intervals."""
    def cell(e: Estimate) -> str:
        if e.value is None:
            return "n/a"
        return f"{e.value:.2f}" + (f" [{e.low:.2f}, {e.high:.2f}]" if e.has_interval else "")
    lines = [f"Agreement with client self-reports: {report.model_version or '(model)'} beside constant baselines",
             f"  {report.n_sessions} sessions, {report.n_clients} clients; intervals resample {report.unit}; "
             f"baselines fitted on the {report.baseline_source}; "
             f"score: {report.settings.get('score_name', report.score_field)} "
             f"(decoding: {report.settings.get('decoding') or '?'})",
             "  primary metric: item MAE (lower is better); the rest exploratory",
             f"  {'metric':<16}{'model':>22}{'training mean':>22}{'most frequent':>22}"]
    for metric in report.systems.get("model", {}):
        lines.append(f"  {metric:<16}" + "".join(f"{cell(report.systems[s][metric]):>22}" for s in SYSTEMS))
    lines.append(f"  verdict: {report.verdict}")
    return "\n".join(lines)
