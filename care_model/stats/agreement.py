"""Agreement statistics: the numbers behind "do raters (and the model) agree?" (kappa, exact and
within-one agreement, MAE, per rater pair and per expert). Intervals and the bootstrap are in
:mod:`care_model.stats.estimates`, Krippendorff's alpha and the ICC in :mod:`care_model.stats.reliability`;
both are re-exported here, so ``from care_model.stats.agreement import icc`` keeps working.

Everything here is pure (numpy, scipy, scikit-learn, krippendorff; no torch, no tinydb) and
returns dataclasses with ``to_dict()`` (JSON-ready: floats, ints, strings, None; never NaN) and
``to_rows()`` (flat dicts for CSV export). A statistic that cannot be computed is ``None`` with
a ``reason`` string, never NaN.

What comes from where
---------------------
- Weighted Cohen's kappa: ``sklearn.metrics.cohen_kappa_score(weights="quadratic",
  labels=scale)``. For bootstrap resamples the same formula is evaluated on resampled confusion
  matrices (:func:`kappa_from_confusion`, checked against sklearn in the tests), which is
  hundreds of times faster than calling sklearn per resample.

Public API::

    (re-exported: Estimate, wilson_interval, proportion, mean_t_interval, resample_indices, resample_counts,
     percentile_interval, bootstrap_estimate from care_model.stats.estimates; krippendorff_alpha, icc from
     care_model.stats.reliability)
    weighted_kappa(a, b, *, labels=(1, 2, 3, 4, 5), weights="quadratic") -> float | None
    kappa_from_confusion(conf, weights="quadratic") -> ndarray  (NaN where undefined)
    score_agreement(a, b, *, labels=(1..5), groups=None, n_boot=0, seed=0, confidence=0.95)
        -> PairAgreement                     # exact, within-one, quadratic kappa, MAE
    scores_by_rater(labels, *, statuses=("submitted",)) -> {rater: {(session_id, item): score}}
    rater_agreement(a, b, *, form, n_boot=0, seed=0, confidence=0.95) -> RaterAgreement
    expert_agreement(labels, *, form, predictions=None, statuses=("submitted",), n_boot=0,
                     seed=0) -> ExpertAgreement
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from care_model.core.errors import ValidationError
from care_model.stats.estimates import (Estimate, boot_method, bootstrap_estimate, clean, mean_t_interval,
    percentile_interval, proportion, ratio_estimate, resample_counts, resample_indices, wilson_interval)
from care_model.stats.reliability import (  # noqa: F401 (re-exported: studio and tests use agreement.icc)
    AlphaResult, ICC_FORMS, ICCForm, ICCResult, icc, krippendorff_alpha)

DEFAULT_LABELS = (1, 2, 3, 4, 5)
RUBRIC_CRITERIA = ("faithfulness", "relevance", "informativeness")
PAIRWISE_OUTCOMES = ("a", "b", "tie", "both_bad")


# ---------------------------------------------------------------------------------------------
# Kappa and two-rater agreement
# ---------------------------------------------------------------------------------------------
def _weight_matrix(k: int, weights: str | None) -> np.ndarray:
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights is None:
        return (i != j).astype(float)
    if weights == "linear":
        return np.abs(i - j).astype(float)
    if weights == "quadratic":
        return ((i - j) ** 2).astype(float)
    raise ValidationError(f"Unknown kappa weights {weights!r}.", "Use None, 'linear' or 'quadratic'.")


def kappa_from_confusion(conf, weights: str | None = "quadratic") -> np.ndarray:
    """Cohen's kappa of confusion matrices ``conf[..., k, k]`` (rows rater A, columns rater B).

    Same formula as sklearn: ``1 - sum(W * O) / sum(W * E)`` with ``E = outer(rows, cols) / N``.
    NaN where undefined (no observations, or no expected disagreement).
    """
    conf = np.asarray(conf, dtype=float)
    k = conf.shape[-1]
    w = _weight_matrix(k, weights)
    n = conf.sum(axis=(-1, -2))
    rows = conf.sum(axis=-1)
    cols = conf.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows[..., :, None] * cols[..., None, :] / n[..., None, None]
        num = (w * conf).sum(axis=(-1, -2))
        den = (w * expected).sum(axis=(-1, -2))
        kappa = 1.0 - num / den
    return np.where((n > 0) & (den > 0), kappa, np.nan)


def weighted_kappa(a: Sequence[int], b: Sequence[int], *, labels: Sequence[int] = DEFAULT_LABELS,
                   weights: str | None = "quadratic") -> float | None:
    """Cohen's kappa between two raters via sklearn; None when undefined (e.g. one shared constant)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b):
        raise ValidationError(f"Two raters need the same number of ratings, got {len(a)} and {len(b)}.",
                              "Pair the ratings by session and item before computing kappa.")
    if len(a) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(list(a), list(b), labels=list(labels), weights=weights,
                                  replace_undefined_by=np.nan)
    return clean(value)


@dataclass
class PairAgreement:
    """Agreement of two raters' scores on the same units."""

    n: int
    exact: Estimate
    within_one: Estimate
    qwk: Estimate
    mae: Estimate

    METRICS = ("exact", "within_one", "qwk", "mae")

    def to_dict(self) -> dict:
        return {"n": self.n, **{m: getattr(self, m).to_dict() for m in self.METRICS}}


def score_agreement(a: Sequence[int], b: Sequence[int], *, labels: Sequence[int] = DEFAULT_LABELS,
                    groups: Sequence | None = None, n_boot: int = 0, seed: int = 0,
                    confidence: float = 0.95) -> PairAgreement:
    """Exact agreement, within-one agreement, quadratic-weighted kappa and MAE of two raters.

    ``groups`` names the cluster of each pair (the session); the bootstrap resamples clusters.
    Without groups every pair is its own cluster.
    """
    a = [int(x) for x in a]
    b = [int(x) for x in b]
    if len(a) != len(b):
        raise ValidationError(f"Two raters need the same number of ratings, got {len(a)} and {len(b)}.",
                              "Pair the ratings by session and item.")
    labels = [int(x) for x in labels]
    pos = {v: i for i, v in enumerate(labels)}
    for v in a + b:
        if v not in pos:
            raise ValidationError(f"Score {v} is not on the scale {labels}.", "Check the scores or pass labels=.")
    n = len(a)
    if n == 0:
        miss = Estimate.missing("no paired ratings")
        return PairAgreement(0, miss, miss, miss, miss)
    groups = list(range(n)) if groups is None else list(groups)
    if len(groups) != n:
        raise ValidationError("groups must name one cluster per rating pair.", "Pass one session id per pair.")
    gid = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    g_idx = np.array([gid[g] for g in groups])
    n_groups = len(gid)
    k = len(labels)
    ai = np.array([pos[v] for v in a])
    bi = np.array([pos[v] for v in b])
    # per-cluster sufficient statistics
    conf = np.zeros((n_groups, k * k))
    np.add.at(conf, (g_idx, ai * k + bi), 1)
    cnt = np.bincount(g_idx, minlength=n_groups).astype(float)
    diff = np.abs(np.asarray(a, float) - np.asarray(b, float))
    exact = np.bincount(g_idx, weights=(diff == 0).astype(float), minlength=n_groups)
    within = np.bincount(g_idx, weights=(diff <= 1).astype(float), minlength=n_groups)
    absdiff = np.bincount(g_idx, weights=diff, minlength=n_groups)

    counts = resample_counts(n_groups, n_boot, seed) if n_boot > 0 and n_groups >= 2 else None
    kappa = weighted_kappa(a, b, labels=labels, weights="quadratic")
    if kappa is None:
        qwk = Estimate.missing("kappa undefined: both raters used a single, identical category", n)
    elif counts is None:
        qwk = Estimate(kappa, n=n)
    else:
        samples = kappa_from_confusion((counts @ conf).reshape(-1, k, k), "quadratic")
        low, high, n_valid = percentile_interval(samples, confidence)
        qwk = (Estimate(kappa, low, high, n, boot_method(n_boot, confidence)) if low is not None else
               Estimate(kappa, n=n, reason=f"only {n_valid} of {n_boot} resamples defined: no interval"))
    return PairAgreement(
        n=n,
        exact=ratio_estimate(exact, cnt, counts, confidence, n, n_boot),
        within_one=ratio_estimate(within, cnt, counts, confidence, n, n_boot),
        qwk=qwk,
        mae=ratio_estimate(absdiff, cnt, counts, confidence, n, n_boot),
    )


def scores_by_rater(labels: Iterable, *, statuses: Sequence[str] = ("submitted",)) -> dict[str, dict[tuple[str, int],
                                                                                                     int]]:
    """``{annotator: {(session_id, item): score}}`` from Label records (or their dicts)."""
    out: dict[str, dict[tuple[str, int], int]] = {}
    for lab in labels:
        d = lab if isinstance(lab, Mapping) else lab.to_dict()
        if d.get("status") not in statuses or d.get("score") is None:
            continue
        out.setdefault(str(d["annotator"]), {})[(str(d["session_id"]), int(d["item"]))] = int(d["score"])
    return out


@dataclass
class RaterAgreement:
    """Two raters compared per item, per dimension (items pooled) and overall."""

    rater_a: str
    rater_b: str
    items: dict[int, PairAgreement]
    dimensions: dict[str, PairAgreement]
    overall: PairAgreement

    def to_dict(self) -> dict:
        return {"rater_a": self.rater_a, "rater_b": self.rater_b,
                "items": {str(k): v.to_dict() for k, v in self.items.items()},
                "dimensions": {k: v.to_dict() for k, v in self.dimensions.items()},
                "overall": self.overall.to_dict()}

    def to_rows(self) -> list[dict]:
        rows = []
        targets = ([(f"item {k}", v) for k, v in self.items.items()]
                   + [(k, v) for k, v in self.dimensions.items()] + [("overall", self.overall)])
        for target, agr in targets:
            for metric in PairAgreement.METRICS:
                est: Estimate = getattr(agr, metric)
                rows.append({"rater_a": self.rater_a, "rater_b": self.rater_b, "target": target,
                             "metric": metric, "value": est.value, "low": est.low, "high": est.high,
                             "n": est.n, "reason": est.reason})
        return rows


def rater_agreement(a: Mapping[tuple[str, int], int], b: Mapping[tuple[str, int], int], *, form,
                    names: tuple[str, str] = ("a", "b"), n_boot: int = 0, seed: int = 0,
                    confidence: float = 0.95, clusters: Mapping[str, str] | None = None) -> RaterAgreement:
    """Agreement of two raters' ``{(session_id, item): score}`` on the keys both rated.

    Per item, per dimension of ``form`` (its items pooled) and overall; the bootstrap resamples
    ``clusters[session_id]`` (the session's client), else sessions (the first element of each key).
    """
    labels = form.scale.points
    common = sorted(set(a) & set(b), key=lambda key: (str(key[0]), int(key[1])))

    def agree(keys):
        return score_agreement([a[key] for key in keys], [b[key] for key in keys], labels=labels,
                               groups=[(clusters or {}).get(key[0]) or key[0] for key in keys],
                               n_boot=n_boot, seed=seed, confidence=confidence)

    items = {i: agree([key for key in common if int(key[1]) == i]) for i in form.item_ids}
    dims = {d.key: agree([key for key in common if int(key[1]) in d.item_ids]) for d in form.dimensions}
    return RaterAgreement(names[0], names[1], items, dims, agree(common))


@dataclass
class ExpertAgreement:
    """Expert-vs-expert (every pair of raters), expert-vs-model, and Krippendorff's alpha."""

    pairs: list[RaterAgreement]
    alpha: dict[str, "AlphaResult"]  # "overall" and per dimension, ordinal, across the experts
    raters: list[str]

    def to_dict(self) -> dict:
        return {"raters": self.raters, "pairs": [p.to_dict() for p in self.pairs],
                "alpha": {k: v.to_dict() for k, v in self.alpha.items()}}

    def to_rows(self) -> list[dict]:
        rows = [r for p in self.pairs for r in p.to_rows()]
        for target, res in self.alpha.items():
            rows.append({"rater_a": "all experts", "rater_b": "", "target": target,
                         "metric": f"krippendorff_alpha_{res.level}", "value": res.alpha, "low": None,
                         "high": None, "n": res.n_units, "reason": res.reason})
        return rows


def expert_agreement(labels: Iterable, *, form, predictions: Iterable | None = None,
                     statuses: Sequence[str] = ("submitted",), model_name: str = "model",
                     n_boot: int = 0, seed: int = 0) -> ExpertAgreement:
    """Agreement among experts who coded the same sessions independently, and with the model.

    Labels in the shared (``@shared``) and adjudicated (``@adjudicated``) slots are not
    individual experts and are left out of the expert-vs-expert statistics. With
    ``predictions`` (one per session and item), each expert is also compared with the model.
    """
    by_rater = {r: s for r, s in scores_by_rater(labels, statuses=statuses).items() if not r.startswith("@")}
    raters = sorted(by_rater)
    pairs = [rater_agreement(by_rater[x], by_rater[y], form=form, names=(x, y), n_boot=n_boot, seed=seed)
             for x, y in itertools.combinations(raters, 2)]
    if predictions is not None:
        model_scores = {}
        for p in predictions:
            d = p if isinstance(p, Mapping) else p.to_dict()
            if d.get("score") is not None:
                model_scores[(str(d["session_id"]), int(d["item"]))] = int(d["score"])
        pairs += [rater_agreement(by_rater[x], model_scores, form=form, names=(x, model_name), n_boot=n_boot, seed=seed)
                  for x in raters]
    alpha = {}
    units = sorted({key for s in by_rater.values() for key in s}, key=lambda key: (key[0], key[1]))
    for target, item_ids in [("overall", set(form.item_ids))] + [(d.key, set(d.item_ids)) for d in form.dimensions]:
        keys = [key for key in units if key[1] in item_ids]
        matrix = [[by_rater[r].get(key) for key in keys] for r in raters]
        alpha[target] = krippendorff_alpha(matrix, level="ordinal", value_domain=form.scale.points)
    return ExpertAgreement(pairs, alpha, raters)


__all__ = [
    "Estimate", "wilson_interval", "proportion", "mean_t_interval", "resample_indices", "resample_counts",
    "percentile_interval", "bootstrap_estimate", "weighted_kappa", "kappa_from_confusion", "PairAgreement",
    "score_agreement", "scores_by_rater", "RaterAgreement", "rater_agreement", "ExpertAgreement",
    "expert_agreement", "AlphaResult", "krippendorff_alpha", "ICCForm", "ICCResult", "icc",
]
