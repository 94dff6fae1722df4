"""Whether a model version's option probabilities are calibrated: a rule fixed before any measurement.

Contextual calibration (:mod:`care_model.text.calibration`) divides out the model's prior per
item. It can inform (move each item toward what the transcript supports) or merely recentre
(move every item toward the middle option whatever the transcript says): the second lowers the
MSE of a model that answered "1" to everything without telling sessions apart, which a constant
does as well. So the choice is made per model version, on that version's held-out sessions
with client self-reports, by :data:`RULE` (written here before any version was measured):

1. content-free lowers the mean (over dimensions) MSE of the expected dimension scores;
2. it does not lower Pearson beyond its interval: for every dimension, the upper bound of the
   calibrated Pearson's 95% interval is at least the raw Pearson;
3. its mean dimension MSE is below the mean baseline's (each item's mean self-report on the
   training sessions, or on the other clients' sessions when there is no training set:
   :func:`care_model.stats.baselines.quality_against_baselines`).

All three hold -> ``content-free``; otherwise ``none``. With fewer than :data:`MIN_SESSIONS`
sessions or :data:`MIN_CLIENTS` clients the choice is ``none`` (:data:`TOO_FEW`). Scores are the
expected (probability-weighted) item scores of each arm; intervals resample clients.

Pure: no torch, no store.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from care_model.core.records import Prediction, Session, is_suggestion
from care_model.core.wai import Form, load_form
from care_model.stats.baselines import client_of, quality_against_baselines
from care_model.text.calibration import expected_score

MIN_SESSIONS = 10
MIN_CLIENTS = 5
TOO_FEW = "too few held-out sessions to choose calibration"
RULE = ("content-free only if, on the version's held-out sessions with client self-reports (expected "
        "dimension scores; 95% intervals resampling clients): (1) it lowers the mean dimension MSE, (2) for every "
        "dimension the calibrated Pearson's upper bound is at least the raw Pearson, and (3) its mean dimension "
        f"MSE is below the mean baseline's; otherwise none. Fewer than {MIN_SESSIONS} sessions or {MIN_CLIENTS} "
        "clients: none.")


def _arm(preds: list[Prediction], field: str, points) -> list[Prediction]:
    """Copies whose expected score comes from ``field`` (``probs`` or ``probs_calibrated``)."""
    return [replace(p, expected_score=round(expected_score(getattr(p, field), points), 6)) for p in preds]


def _dims(report, system: str, dims: list[str], metrics=("mse", "pearson")) -> dict:
    out = {d: {m: report.systems[system][f"{d}.{m}"].to_dict() for m in metrics} for d in dims}
    mses = [out[d]["mse"]["value"] for d in dims]
    out["mean_mse"] = None if any(v is None for v in mses) else round(sum(mses) / len(mses), 4)
    return out


def choose_calibration(sessions: Iterable[Session], predictions: Iterable[Prediction], *,
                       training: Iterable[Session] | None = None, form: Form | str | None = None,
                       n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """``{"choice": "none" | "content-free", "rule", "measurement", "reason"}`` by :data:`RULE`.

    ``sessions``: the version's held-out sessions; ``predictions``: its predictions on them, each
    with the raw ``probs`` and the calibrated ``probs_calibrated`` (drafts are ignored);
    ``training``: the sessions that fit the mean baseline (None: leave one client out).
    """
    form = load_form(form or "wai-sr") if isinstance(form, str) or form is None else form
    points = form.scale.points
    sess = [s if isinstance(s, Session) else Session.from_dict(s) for s in sessions]
    preds = [p if isinstance(p, Prediction) else Prediction.from_dict(p) for p in predictions]
    preds = [p for p in preds if is_suggestion(p) and p.probs]
    paired = [p for p in preds if p.probs_calibrated]
    out = {"choice": "none", "rule": RULE, "measurement": {}, "reason": ""}
    if not paired:
        why = "no raw distribution in the predictions" if not preds else "no calibrated distribution"
        out["reason"] = (f"{why} (probs and probs_calibrated) to measure calibration on: predict the held-out "
                         "sessions with calibration content-free, which stores both")
        return out
    items = form.item_ids
    has = {p.session_id for p in paired}
    rated = [s for s in sess if s.id in has and len(s.ratings.get("client") or {}) == len(items)]
    n, n_c = len(rated), len({client_of(s) for s in rated})
    out["measurement"] = {"sessions": n, "clients": n_c, "predictions": len(paired),
                          "score": "expected (probability-weighted) item scores; dimension means vs self-report"}
    if n < MIN_SESSIONS or n_c < MIN_CLIENTS:
        out["reason"] = (f"{TOO_FEW} ({n} sessions, {n_c} clients with self-reports; "
                         f"{MIN_SESSIONS} sessions and {MIN_CLIENTS} clients needed)")
        return out
    train = None
    if training is not None:
        train = [t if isinstance(t, Session) else Session.from_dict(t) for t in training]
        train = [t for t in train if len(t.ratings.get("client") or {}) == len(items)] or None
        if train is None:
            out["measurement"]["note"] = "no training session has a self-report: the baseline leaves one client out"
    kw = dict(training=train, form=form, score_field="expected_score", n_boot=n_boot, seed=seed,
              confidence=confidence)
    raw = quality_against_baselines(rated, _arm(paired, "probs", points), **kw)
    cal = quality_against_baselines(rated, _arm(paired, "probs_calibrated", points), **kw)
    dims = form.dimension_keys
    m_raw, m_cal = _dims(raw, "model", dims), _dims(cal, "model", dims)
    m_base = _dims(cal, "mean", dims, metrics=("mse",))
    out["measurement"].update({"unit": cal.unit, "baseline_source": cal.baseline_source, "n_boot": n_boot,
                               "seed": seed, "confidence": confidence,
                               "none": m_raw, "content-free": m_cal, "mean_baseline": m_base})
    checks = {"lowers_mse": m_cal["mean_mse"] is not None and m_raw["mean_mse"] is not None
              and m_cal["mean_mse"] < m_raw["mean_mse"]}
    keeps = {}
    for d in dims:
        r, c = m_raw[d]["pearson"]["value"], m_cal[d]["pearson"]
        keeps[d] = r is not None and c["high"] is not None and c["high"] >= r
    checks["keeps_pearson"] = all(keeps.values())
    checks["keeps_pearson_by_dimension"] = keeps
    checks["beats_mean_baseline"] = (m_cal["mean_mse"] is not None and m_base["mean_mse"] is not None
                                     and m_cal["mean_mse"] < m_base["mean_mse"])
    out["measurement"]["checks"] = checks
    failed = []
    if not checks["lowers_mse"]:
        failed.append(f"mean dimension MSE {m_cal['mean_mse']} calibrated vs {m_raw['mean_mse']} raw: not lower")
    if not checks["keeps_pearson"]:
        worse = ", ".join(f"{d} (upper bound {m_cal[d]['pearson']['high']} < raw {m_raw[d]['pearson']['value']})"
                          for d, ok in keeps.items() if not ok)
        failed.append(f"Pearson lowered beyond its interval: {worse}" if n_boot > 0 else
                      "no Pearson interval (n_boot=0): the rule cannot tell, so it keeps the raw probabilities")
    if not checks["beats_mean_baseline"]:
        failed.append(f"calibrated MSE {m_cal['mean_mse']} does not beat the mean baseline's {m_base['mean_mse']}")
    if failed:
        out["reason"] = "; ".join(failed) + f" ({n} sessions, {n_c} clients)"
    else:
        out["choice"] = "content-free"
        out["reason"] = (f"calibration lowers the mean dimension MSE from {m_raw['mean_mse']} to {m_cal['mean_mse']} "
                         f"(mean baseline {m_base['mean_mse']}) and keeps Pearson within its interval "
                         f"({n} sessions, {n_c} clients)")
    return out


def _num(e: dict) -> str:
    if e.get("value") is None:
        return "n/a"
    ci = f" [{e['low']:.2f}, {e['high']:.2f}]" if e.get("low") is not None else ""
    return f"{e['value']:+.2f}{ci}"


def format_choice(choice: dict) -> str:
    """One short paragraph for a screen: the choice, why, and the figures."""
    m = choice.get("measurement") or {}
    lines = [f"calibration: {choice['choice']} -- {choice['reason']}"]
    if "none" in m:
        for arm in ("none", "content-free"):
            a = m[arm]
            r = ", ".join(f"{d} {_num(a[d]['pearson'])}" for d in a if d != "mean_mse")
            lines.append(f"  {arm:<13} mean dimension MSE {a['mean_mse']}; Pearson {r}")
        lines.append(f"  mean baseline: mean dimension MSE {m['mean_baseline']['mean_mse']} ({m['baseline_source']}; "
                     f"intervals over {m['unit']})")
    return "\n".join(lines)
