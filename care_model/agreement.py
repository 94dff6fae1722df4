"""Agreement statistics: the numbers behind "do raters (and the model) agree?"; the intervals and
bootstrap that :mod:`care_model.evaluate` and :mod:`care_model.human_eval` share.

Everything here is pure (numpy, scipy, scikit-learn, krippendorff; no torch, no tinydb) and
returns dataclasses with ``to_dict()`` (JSON-ready: floats, ints, strings, None; never NaN) and
``to_rows()`` (flat dicts for CSV export). A statistic that cannot be computed is ``None`` with
a ``reason`` string, never NaN.

What comes from where
---------------------
- Krippendorff's alpha: the ``krippendorff`` package. It reproduces Krippendorff (2011),
  "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units example with missing
  values: nominal 0.743, ordinal 0.815, interval 0.849 (ratio 0.797). For the ordinal level the
  scale's full value domain (1..5) is passed, so an unused middle category still counts in the
  rank distances the way the 2011 paper defines them (its metric sums the marginal frequencies
  of the values *between* two ranks; an unused value contributes 0, so passing the domain does
  not change the result, it only fixes the order of the categories).
- Weighted Cohen's kappa: ``sklearn.metrics.cohen_kappa_score(weights="quadratic",
  labels=scale)``. For bootstrap resamples the same formula is evaluated on resampled confusion
  matrices (:func:`kappa_from_confusion`, checked against sklearn in the tests), which is
  hundreds of times faster than calling sklearn per resample.
- ICC: Shrout & Fleiss (1979) from the two-way ANOVA mean squares (numpy), all six forms, with
  their F-based confidence intervals (Shrout & Fleiss 1979; McGraw & Wong 1996). ICC(2,k)'s
  interval is the Spearman-Brown step-up of ICC(2,1)'s, as in Shrout & Fleiss and R's psych.
  Reproduces the Shrout & Fleiss Table 2 data: ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71,
  ICC(1,4)=.44, ICC(2,4)=.62, ICC(3,4)=.91, and psych::ICC's intervals for those data.
- Proportions (pass rates, win rates): Wilson score interval (Wilson 1927; Newcombe 1998). Win
  rates count a tie as half a win, so the "successes" may be a half-integer; the Wilson formula
  is used with that fractional count.
- Bootstrap: percentile intervals over *clusters* (sessions): resample whole sessions with
  replacement, recompute the statistic, take the 2.5th and 97.5th percentiles. Resamples where
  the statistic is undefined (a constant resample, fewer than 3 sessions for a correlation) are
  skipped; if more than half are undefined, no interval is given.

Public API::

    Estimate(value, low=None, high=None, n=0, method="", reason="")
    wilson_interval(successes, n, confidence=0.95) -> (low, high)
    proportion(successes, n, confidence=0.95) -> Estimate                # Wilson
    mean_t_interval(values, confidence=0.95) -> Estimate
    resample_indices(n_units, n_resamples, seed) -> ndarray[int] (n_resamples, n_units)
    resample_counts(n_units, n_resamples, seed) -> ndarray[float] (n_resamples, n_units)
    percentile_interval(samples, confidence=0.95) -> (low, high, n_valid) | (None, None, n_valid)
    bootstrap_estimate(statistic, n_units, *, n_resamples=1000, seed=0, confidence=0.95,
                       value=None, n=None) -> Estimate
    weighted_kappa(a, b, *, labels=(1, 2, 3, 4, 5), weights="quadratic") -> float | None
    kappa_from_confusion(conf, weights="quadratic") -> ndarray  (NaN where undefined)
    score_agreement(a, b, *, labels=(1..5), groups=None, n_boot=0, seed=0, confidence=0.95)
        -> PairAgreement                     # exact, within-one, quadratic kappa, MAE
    scores_by_rater(labels, *, statuses=("submitted",)) -> {rater: {(session_id, item): score}}
    rater_agreement(a, b, *, form, n_boot=0, seed=0, confidence=0.95) -> RaterAgreement
    expert_agreement(labels, *, form, predictions=None, statuses=("submitted",), n_boot=0,
                     seed=0) -> ExpertAgreement
    krippendorff_alpha(data, *, level="ordinal", value_domain=None) -> AlphaResult
    icc(ratings, *, confidence=0.95) -> ICCResult
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from .errors import ValidationError

DEFAULT_LABELS = (1, 2, 3, 4, 5)
RUBRIC_CRITERIA = ("faithfulness", "relevance", "informativeness")
PAIRWISE_OUTCOMES = ("a", "b", "tie", "both_bad")


# ---------------------------------------------------------------------------------------------
# Estimates and intervals
# ---------------------------------------------------------------------------------------------
def _clean(x):
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
        self.value, self.low, self.high = _clean(self.value), _clean(self.low), _clean(self.high)
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
    _check_confidence(confidence)
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _check_confidence(confidence: float) -> None:
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
    _check_confidence(confidence)
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


def percentile_interval(samples, confidence: float = 0.95):
    """Percentile interval of the finite entries of ``samples``; (None, None, n_valid) when more
    than half of them are undefined (NaN/None)."""
    _check_confidence(confidence)
    arr = np.asarray([np.nan if s is None else s for s in np.ravel(samples)], dtype=float)
    valid = arr[np.isfinite(arr)]
    if len(arr) == 0 or len(valid) < 0.5 * len(arr) or len(valid) < 2:
        return None, None, int(len(valid))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(valid, [alpha, 1 - alpha])
    return float(low), float(high), int(len(valid))


def _boot_method(n_resamples: int, confidence: float, unit: str = "sessions") -> str:
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
    value = _clean(value)
    n = n_units if n is None else n
    if value is None:
        return Estimate.missing("not computable on these data", n)
    if n_resamples <= 0 or n_units < 2:
        return Estimate(value, n=n, reason="" if n_resamples <= 0 else "fewer than 2 units: no interval")
    samples = [statistic(ix) for ix in resample_indices(n_units, n_resamples, seed)]
    low, high, n_valid = percentile_interval(samples, confidence)
    if low is None:
        return Estimate(value, n=n, method=_boot_method(n_resamples, confidence, unit),
                        reason=f"only {n_valid} of {n_resamples} resamples defined: no interval")
    return Estimate(value, low, high, n, _boot_method(n_resamples, confidence, unit))


def _ratio_estimate(num: np.ndarray, den: np.ndarray, counts: np.ndarray | None, confidence: float,
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
    return Estimate(value, low, high, n, _boot_method(n_resamples, confidence))


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
    return _clean(value)


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
        qwk = (Estimate(kappa, low, high, n, _boot_method(n_boot, confidence)) if low is not None else
               Estimate(kappa, n=n, reason=f"only {n_valid} of {n_boot} resamples defined: no interval"))
    return PairAgreement(
        n=n,
        exact=_ratio_estimate(exact, cnt, counts, confidence, n, n_boot),
        within_one=_ratio_estimate(within, cnt, counts, confidence, n, n_boot),
        qwk=qwk,
        mae=_ratio_estimate(absdiff, cnt, counts, confidence, n, n_boot),
    )


def scores_by_rater(labels: Iterable, *, statuses: Sequence[str] = ("submitted",)) -> dict[str, dict[tuple[str, int], int]]:
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
                    confidence: float = 0.95) -> RaterAgreement:
    """Agreement of two raters' ``{(session_id, item): score}`` on the keys both rated.

    Per item, per dimension of ``form`` (its items pooled) and overall; the bootstrap resamples
    sessions (the first element of each key).
    """
    labels = form.scale.points
    common = sorted(set(a) & set(b), key=lambda key: (str(key[0]), int(key[1])))

    def agree(keys):
        return score_agreement([a[key] for key in keys], [b[key] for key in keys], labels=labels,
                               groups=[key[0] for key in keys], n_boot=n_boot, seed=seed, confidence=confidence)

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


# ---------------------------------------------------------------------------------------------
# Krippendorff's alpha
# ---------------------------------------------------------------------------------------------
@dataclass
class AlphaResult:
    level: str
    alpha: float | None
    n_units: int  # units with at least two values (pairable)
    n_raters: int
    n_values: int  # pairable values
    reason: str = ""

    def to_dict(self) -> dict:
        return {"level": self.level, "alpha": _clean(self.alpha), "n_units": self.n_units,
                "n_raters": self.n_raters, "n_values": self.n_values, "reason": self.reason}

    def to_rows(self) -> list[dict]:
        return [self.to_dict()]


def krippendorff_alpha(data, *, level: str = "ordinal", value_domain: Sequence | None = None) -> AlphaResult:
    """Krippendorff's alpha of a raters x units matrix (None or NaN = missing).

    ``data`` may also be a mapping ``{unit: {rater: value}}``. ``level``: nominal, ordinal,
    interval or ratio. ``value_domain``: the possible values in order (the scale points);
    defaults to the values observed.
    """
    import krippendorff

    if level not in ("nominal", "ordinal", "interval", "ratio"):
        raise ValidationError(f"Unknown level of measurement {level!r}.", "Use nominal, ordinal, interval or ratio.")
    if isinstance(data, Mapping):
        units = list(data)
        raters = sorted({r for u in units for r in data[u]})
        data = [[data[u].get(r) for u in units] for r in raters]
    matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in data], dtype=float)
    if matrix.ndim != 2:
        raise ValidationError("Krippendorff's alpha needs a raters x units matrix.",
                              "Pass a list of rows, one per rater, with one value (or None) per unit.")
    n_raters = matrix.shape[0]
    per_unit = np.sum(np.isfinite(matrix), axis=0) if matrix.size else np.zeros(0)
    pairable = per_unit >= 2
    n_units, n_values = int(pairable.sum()), int(per_unit[pairable].sum())
    if n_units == 0:
        return AlphaResult(level, None, 0, n_raters, 0, "no unit has values from two raters")
    observed = np.unique(matrix[:, pairable][np.isfinite(matrix[:, pairable])])
    if len(observed) < 2:
        return AlphaResult(level, None, n_units, n_raters, n_values,
                           "every value is the same: no variation, alpha is undefined")
    domain = None if value_domain is None else np.asarray(sorted(value_domain), dtype=float)
    if domain is not None:
        outside = sorted(set(observed.tolist()) - set(domain.tolist()))
        if outside:
            raise ValidationError(f"Values {outside} are outside the value domain {domain.tolist()}.",
                                  "Check the ratings or pass the scale's full value domain.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=domain)
    return AlphaResult(level, _clean(value), n_units, n_raters, n_values)


# ---------------------------------------------------------------------------------------------
# ICC (Shrout & Fleiss 1979)
# ---------------------------------------------------------------------------------------------
ICC_FORMS = {
    "ICC(1,1)": "one-way random, single rater",
    "ICC(2,1)": "two-way random, absolute agreement, single rater",
    "ICC(3,1)": "two-way mixed, consistency, single rater",
    "ICC(1,k)": "one-way random, mean of k raters",
    "ICC(2,k)": "two-way random, absolute agreement, mean of k raters",
    "ICC(3,k)": "two-way mixed, consistency, mean of k raters",
}


@dataclass
class ICCForm:
    name: str
    description: str
    value: float | None
    low: float | None
    high: float | None
    f: float | None
    df1: float
    df2: float
    p: float | None

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "value": _clean(self.value),
                "low": _clean(self.low), "high": _clean(self.high), "F": _clean(self.f),
                "df1": _clean(self.df1), "df2": _clean(self.df2), "p": _clean(self.p)}


@dataclass
class ICCResult:
    n_targets: int
    n_raters: int
    n_dropped: int  # targets left out for missing ratings (listwise)
    confidence: float
    anova: dict[str, float]  # MSR (between targets), MSC (between raters), MSE (residual), MSW (within targets)
    forms: dict[str, ICCForm]

    def __getitem__(self, name: str) -> ICCForm:
        return self.forms[name]

    def to_dict(self) -> dict:
        return {"n_targets": self.n_targets, "n_raters": self.n_raters, "n_dropped": self.n_dropped,
                "confidence": self.confidence, "anova": {k: _clean(v) for k, v in self.anova.items()},
                "forms": {k: v.to_dict() for k, v in self.forms.items()}}

    def to_rows(self) -> list[dict]:
        return [{**f.to_dict(), "n_targets": self.n_targets, "n_raters": self.n_raters} for f in self.forms.values()]


def icc(ratings, *, confidence: float = 0.95) -> ICCResult:
    """All six Shrout & Fleiss ICCs of an ``n_targets x n_raters`` matrix, with F-based intervals.

    Targets with a missing rating (None/NaN) are dropped (listwise), as the ANOVA needs a
    complete design; ``n_dropped`` says how many.
    """
    _check_confidence(confidence)
    y = np.array([[np.nan if v is None else float(v) for v in row] for row in ratings], dtype=float)
    if y.ndim != 2:
        raise ValidationError("ICC needs a targets x raters matrix.", "Pass one row per target, one column per rater.")
    complete = np.all(np.isfinite(y), axis=1)
    n_dropped = int((~complete).sum())
    y = y[complete]
    n, k = y.shape if y.size else (0, y.shape[1] if y.ndim == 2 else 0)
    if n < 2 or k < 2:
        raise ValidationError(f"ICC needs at least 2 fully rated targets and 2 raters; got {n} and {k}"
                              f" ({n_dropped} targets dropped for missing ratings).",
                              "Have at least two raters rate the same targets.")
    grand = y.mean()
    ss_total = float(((y - grand) ** 2).sum())
    ss_rows = float(k * ((y.mean(axis=1) - grand) ** 2).sum())
    ss_cols = float(n * ((y.mean(axis=0) - grand) ** 2).sum())
    ss_err = ss_total - ss_rows - ss_cols
    ss_within = ss_total - ss_rows
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = max(ss_err, 0.0) / ((n - 1) * (k - 1))
    msw = max(ss_within, 0.0) / (n * (k - 1))
    a = 1 - confidence

    def div(x, y_):
        return x / y_ if y_ != 0 else float("nan")

    # point estimates
    v11 = div(msr - msw, msr + (k - 1) * msw)
    v21 = div(msr - mse, msr + (k - 1) * mse + k * (msc - mse) / n)
    v31 = div(msr - mse, msr + (k - 1) * mse)
    v1k = div(msr - msw, msr)
    v2k = div(msr - mse, msr + (msc - mse) / n)
    v3k = div(msr - mse, msr)

    df_r, df_w, df_e = n - 1, n * (k - 1), (n - 1) * (k - 1)
    f1 = div(msr, msw)
    f3 = div(msr, mse)
    fppf = stats.f.ppf

    def one_way(f, df1, df2):
        if not math.isfinite(f):
            return (float("nan"),) * 4
        fl = f / fppf(1 - a / 2, df1, df2)
        fu = f * fppf(1 - a / 2, df2, df1)
        return (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1), 1 - 1 / fl, 1 - 1 / fu

    l11, u11, l1k, u1k = one_way(f1, df_r, df_w)
    l31, u31, l3k, u3k = one_way(f3, df_r, df_e)
    # ICC(2,1): Satterthwaite df for the denominator (Shrout & Fleiss 1979, eq. for case 2)
    l21 = u21 = l2k = u2k = float("nan")
    fj = div(msc, mse)
    if math.isfinite(v21) and math.isfinite(fj):
        rho = v21
        num = (k - 1) * (n - 1) * (k * rho * fj + n * (1 + (k - 1) * rho) - k * rho) ** 2
        den = (n - 1) * k ** 2 * rho ** 2 * fj ** 2 + (n * (1 + (k - 1) * rho) - k * rho) ** 2
        v = num / den if den > 0 else float("nan")
        if math.isfinite(v) and v > 0:
            f_star = fppf(1 - a / 2, n - 1, v)
            f_star2 = fppf(1 - a / 2, v, n - 1)
            l21 = n * (msr - f_star * mse) / (f_star * (k * msc + (k * n - k - n) * mse) + n * msr)
            u21 = n * (f_star2 * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_star2 * msr)
            l2k = k * l21 / (1 + (k - 1) * l21)
            u2k = k * u21 / (1 + (k - 1) * u21)

    p1 = float(stats.f.sf(f1, df_r, df_w)) if math.isfinite(f1) else None
    p3 = float(stats.f.sf(f3, df_r, df_e)) if math.isfinite(f3) else None
    rows = {
        "ICC(1,1)": (v11, l11, u11, f1, df_r, df_w, p1),
        "ICC(2,1)": (v21, l21, u21, f3, df_r, df_e, p3),
        "ICC(3,1)": (v31, l31, u31, f3, df_r, df_e, p3),
        "ICC(1,k)": (v1k, l1k, u1k, f1, df_r, df_w, p1),
        "ICC(2,k)": (v2k, l2k, u2k, f3, df_r, df_e, p3),
        "ICC(3,k)": (v3k, l3k, u3k, f3, df_r, df_e, p3),
    }
    forms = {name: ICCForm(name, ICC_FORMS[name], *map(_clean, vals[:4]), vals[4], vals[5], vals[6])
             for name, vals in rows.items()}
    return ICCResult(n, k, n_dropped, confidence, {"MSR": msr, "MSC": msc, "MSE": mse, "MSW": msw}, forms)


__all__ = [
    "Estimate", "wilson_interval", "proportion", "mean_t_interval", "resample_indices", "resample_counts",
    "percentile_interval", "bootstrap_estimate", "weighted_kappa", "kappa_from_confusion", "PairAgreement",
    "score_agreement", "scores_by_rater", "RaterAgreement", "rater_agreement", "ExpertAgreement",
    "expert_agreement", "AlphaResult", "krippendorff_alpha", "ICCForm", "ICCResult", "icc",
]
