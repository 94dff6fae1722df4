"""Reliability of several raters: Krippendorff's alpha and the intraclass correlations (ICC).

Pure (numpy, scipy, krippendorff; no torch, no tinydb); results are dataclasses with
``to_dict()`` (JSON-ready, never NaN) and ``to_rows()`` (flat dicts for CSV export).

- Krippendorff's alpha: the ``krippendorff`` package. It reproduces Krippendorff (2011),
  "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units example with missing
  values: nominal 0.743, ordinal 0.815, interval 0.849 (ratio 0.797). For the ordinal level the
  scale's full value domain (1..5) is passed, so an unused middle category still counts in the
  rank distances the way the 2011 paper defines them (its metric sums the marginal frequencies
  of the values *between* two ranks; an unused value contributes 0, so passing the domain does
  not change the result, it only fixes the order of the categories).
- ICC: Shrout & Fleiss (1979) from the two-way ANOVA mean squares (numpy), all six forms, with
  their F-based confidence intervals (Shrout & Fleiss 1979; McGraw & Wong 1996). ICC(2,k)'s
  interval is the Spearman-Brown step-up of ICC(2,1)'s, as in Shrout & Fleiss and R's psych.
  Reproduces the Shrout & Fleiss Table 2 data: ICC(1,1)=.17, ICC(2,1)=.29, ICC(3,1)=.71,
  ICC(1,4)=.44, ICC(2,4)=.62, ICC(3,4)=.91, and psych::ICC's intervals for those data.

Public API::

    krippendorff_alpha(data, *, level="ordinal", value_domain=None) -> AlphaResult
    icc(ratings, *, confidence=0.95) -> ICCResult          # ICCResult.forms: the six ICCForm
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from care_model.core.errors import ValidationError
from care_model.stats.estimates import check_confidence, clean


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
        return {"level": self.level, "alpha": clean(self.alpha), "n_units": self.n_units,
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
    return AlphaResult(level, clean(value), n_units, n_raters, n_values)


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
        return {"name": self.name, "description": self.description, "value": clean(self.value),
                "low": clean(self.low), "high": clean(self.high), "F": clean(self.f),
                "df1": clean(self.df1), "df2": clean(self.df2), "p": clean(self.p)}


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
                "confidence": self.confidence, "anova": {k: clean(v) for k, v in self.anova.items()},
                "forms": {k: v.to_dict() for k, v in self.forms.items()}}

    def to_rows(self) -> list[dict]:
        return [{**f.to_dict(), "n_targets": self.n_targets, "n_raters": self.n_raters} for f in self.forms.values()]


def icc(ratings, *, confidence: float = 0.95) -> ICCResult:
    """All six Shrout & Fleiss ICCs of an ``n_targets x n_raters`` matrix, with F-based intervals.

    Targets with a missing rating (None/NaN) are dropped (listwise), as the ANOVA needs a
    complete design; ``n_dropped`` says how many.
    """
    check_confidence(confidence)
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
    forms = {name: ICCForm(name, ICC_FORMS[name], *map(clean, vals[:4]), vals[4], vals[5], vals[6])
             for name, vals in rows.items()}
    return ICCResult(n, k, n_dropped, confidence, {"MSR": msr, "MSC": msc, "MSE": mse, "MSW": msw}, forms)
