"""The statistics of a cross-validation run, from its fold outputs (pure: no torch, no tinydb).

Given the curated sessions, the K test folds and each system's held-out predictions (every
session predicted exactly once, by the adapter trained without its fold), this computes per
dimension (Goal, Task, Bond) Pearson, Spearman and MSE of the predicted dimension mean against
the client's self-reported one:

* **pooled**: all held-out predictions together (the sessions of every fold), with percentile
  bootstrap intervals resampling clients (:func:`care_model.stats.evaluate.evaluate_predictions`);
* **over folds**: the same statistic on each test fold alone (point values), their mean and
  standard deviation (ddof=1), as the paper reports "mean +- SD over 5 folds";

for the parsed (generated) score and for the expected (probability-weighted) score, and for the
systems ``crossval`` (the fold adapters), ``base`` (the base model without retraining, on the
same folds) and ``counselor`` (the counselor's own WAI ratings against the client's, on the same
sessions: the paper's counselor baseline; model-independent, computed once).

Public API::

    summarize(sessions, folds, predictions, labels=(), *, n_boot=1000, seed=0, with_text=False,
              similarity=None) -> dict
    table_rows(summary) -> [{system, score_field, dimension, metric, pooled, low, high, n, fold_mean, fold_sd, n_folds}]
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from care_model.core.records import Label, Prediction, Session
from care_model.stats.correlations import CORRELATION_METRICS
from care_model.stats.evaluate import evaluate_predictions

SCORE_FIELDS = ("score", "expected_score")
SYSTEMS = ("crossval", "base")


def _pooled_version(system: str) -> str:
    return f"{system}:pooled-held-out"


def _fold_stats(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    got = [float(v) for v in values if v is not None]
    mean = float(np.mean(got)) if got else None
    sd = float(np.std(got, ddof=1)) if len(got) > 1 else None
    return mean, sd, len(got)


def _corr_block(correlations: Mapping) -> dict:
    return {dim: {m: c[m] for m in CORRELATION_METRICS} | {"n": c["n"]} for dim, c in correlations.items()}


def summarize(sessions: Mapping[str, Session], folds: Sequence[Sequence[str]], predictions: Mapping[str, Iterable],
              labels: Iterable[Label] = (), *, n_boot: int = 1000, seed: int = 0, with_text: bool = False,
              similarity: Callable[[Sequence[str], Sequence[str]], Sequence[float]] | None = None) -> dict:
    """Pooled and per-fold statistics (see the module docstring).

    ``sessions``: id -> Session (the curated sessions); ``folds``: the K lists of test session
    ids; ``predictions``: system -> that system's held-out predictions (Prediction or dicts; the
    model version may differ by fold: it is set to one pooled name here). ``similarity``: the
    rationales' embedding similarity for the text metrics (``with_text``; None: left out). Returns
    ``{"systems": {system: {score_field: {"pooled": report dict, "folds": [correlations per fold]}}},
    "counselor": {"pooled": correlations, "folds": [...]}, "n_sessions", "folds": [[ids]]}``.
    """
    labels = list(labels)
    out: dict = {"systems": {}, "counselor": None, "n_sessions": len(sessions), "folds": [sorted(f) for f in folds]}
    for system, preds in predictions.items():
        preds = [p if isinstance(p, Prediction) else Prediction.from_dict(p) for p in preds]
        preds = [replace(p, model_version=_pooled_version(system)) for p in preds]
        if not preds:
            continue
        per_system = {}
        for field in SCORE_FIELDS:
            text = with_text and field == "score"
            pooled = evaluate_predictions(list(sessions.values()), preds, labels if field == "score" else (),
                                          n_boot=n_boot, seed=seed, score_field=field, with_text_metrics=text,
                                          similarity=similarity)
            fold_reports = []
            for test in folds:
                wanted = set(test)
                rep = evaluate_predictions([sessions[s] for s in sorted(wanted)],
                                           [p for p in preds if p.session_id in wanted], (), n_boot=0, seed=seed,
                                           score_field=field, with_text_metrics=False)
                fold_reports.append(rep.to_dict())
            per_system[field] = {"pooled": pooled.to_dict(),
                                 "folds": [_corr_block(r["correlations"]) for r in fold_reports]}
            if out["counselor"] is None and pooled.counselor_correlations:
                out["counselor"] = {"pooled": {k: v.to_dict() for k, v in pooled.counselor_correlations.items()},
                                    "folds": [_corr_block(r["counselor_correlations"]) for r in fold_reports]}
        out["systems"][system] = per_system
    return out


CONSTANT_SYSTEMS = ("mean", "mode")


def constant_predictions(training: Iterable[Session], test: Iterable[Session]) -> dict[str, list[Prediction]]:
    """The two trivial baselines of one fold (:mod:`care_model.stats.baselines`), fitted on the fold's
    *training* sessions' self-reports and predicting its test sessions: ``mean`` (each item's training
    mean as the expected score, its nearest option as the score) and ``mode`` (each item's most
    frequent score). A constant has no correlation: only its MSE means something."""
    from care_model.core.wai import load_form
    from care_model.stats.baselines import Fit

    test = list(test)
    form = load_form(test[0].form if test else "wai-sr")
    ratings = [{int(k): int(v) for k, v in (s.ratings.get("client") or {}).items()} for s in training]
    fit = Fit.from_ratings(ratings, form.item_ids)
    out: dict[str, list[Prediction]] = {name: [] for name in CONSTANT_SYSTEMS}
    for s in test:
        for item in form.item_ids:
            for name in CONSTANT_SYSTEMS:
                score, exp = fit.value(name, item, integer=True), fit.value(name, item, integer=False)
                if score is None:
                    continue
                out[name].append(Prediction(id=f"{name}:{s.id}:{item}", session_id=s.id, item=int(item),
                                            model_version=f"constant:{name}", score=int(score),
                                            expected_score=float(exp), parse_status="scores_only",
                                            mode="scores_only"))
    return out


def _row(system, field, dim, metric, est: Mapping | None, fold_blocks: Sequence[Mapping]) -> dict:
    est = est or {}
    vals = [(b.get(dim) or {}).get(metric, {}).get("value") for b in fold_blocks]
    mean, sd, n_folds = _fold_stats(vals)
    return {"system": system, "score_field": field, "dimension": dim, "metric": metric, "pooled": est.get("value"),
            "low": est.get("low"), "high": est.get("high"), "n": est.get("n"), "reason": est.get("reason"),
            "fold_mean": mean, "fold_sd": sd, "n_folds": n_folds, "fold_values": vals}


def table_rows(summary: Mapping) -> list[dict]:
    """Flat rows: one per (system, score field, dimension, metric), counselor baseline included."""
    rows = []
    for system, per in (summary.get("systems") or {}).items():
        for field, block in per.items():
            for dim, corr in (block["pooled"].get("correlations") or {}).items():
                for m in CORRELATION_METRICS:
                    rows.append(_row(system, field, dim, m, corr[m], block["folds"]))
    couns = summary.get("counselor")
    if couns:
        for dim, corr in couns["pooled"].items():
            for m in CORRELATION_METRICS:
                rows.append(_row("counselor", "-", dim, m, corr[m], couns["folds"]))
    return rows
