"""Interaction patterns and alliance (the paper's Table 8): one regression per dimension.

``alliance_d = b0 + sum_p b_p * proportion_p + e`` over sessions, with statsmodels OLS and
standard errors clustered by client (``cov_type="cluster"``; CR1 small-sample correction, t
intervals with G-1 degrees of freedom). The proportions of a session sum to 1, so one pattern is
the reference (left out): ``b_p`` is the change in the dimension when all of a session's pairs
move from the reference pattern to ``p`` (a 0.1 shift moves it by ``b_p / 10``). Patterns that no
session shows are left out and named.

Refusals (:class:`InsightsRefusal`, a CareError naming the fix): no session carries codes the
mapping knows; fewer than ``min_sessions`` sessions (default 20) or fewer than 5 sessions per
coefficient remain with both codes and a score; the scores do not vary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from care_model.core.errors import CareError
from care_model.insights.codes import CodeMapping, has_codes, pattern_counts, proportions
from care_model.insights.table import SessionRow, dims_of

MIN_SESSIONS = 20
PER_COEF = 5


class InsightsRefusal(CareError):
    """The data do not allow this view; the message says why and what would."""


@dataclass
class PatternFit:
    dim: str
    n: int
    n_clients: int
    r2: float | None
    terms: list[dict]  # {term, coef, se, low, high, p}
    reference: str
    dropped: list[str] = field(default_factory=list)
    reason: str = ""  # set when this dimension could not be fitted (then terms is empty)
    method: str = ""

    def to_dict(self) -> dict:
        return {"dim": self.dim, "n": self.n, "n_clients": self.n_clients, "r2": self.r2, "terms": self.terms,
                "reference": self.reference, "dropped": self.dropped, "reason": self.reason, "method": self.method}


def session_proportions(rows: Sequence[SessionRow], mapping: CodeMapping) -> dict[str, dict[str, float]]:
    """session id -> pattern proportions, for the sessions with at least one counted pair.

    Raises :class:`InsightsRefusal` when no session carries codes the mapping knows."""
    coded = [r for r in rows if has_codes(r.annotations, mapping)]
    if not coded:
        raise InsightsRefusal(
            f"No session carries per-turn codes that the {mapping.name!r} mapping knows "
            f"(field {mapping.counselor_field!r}), so there are no interaction patterns.",
            "Import sessions with their per-turn codes (AnnoMI CSV, ESConv JSON, or JSONL with "
            "metadata.turn_annotations), or pick the mapping for their corpus (data/codes/).")
    out = {}
    for r in coded:
        props = proportions(pattern_counts(r.annotations, r.speakers, mapping), mapping.patterns)
        if props is not None:
            out[r.session_id] = props
    return out


def ols_clustered(y: np.ndarray, X: np.ndarray, groups: Sequence):
    """statsmodels OLS with standard errors clustered by ``groups``; the fitted results."""
    from statsmodels.regression.linear_model import OLS

    codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    model = OLS(np.asarray(y, float), np.asarray(X, float))
    return model.fit(cov_type="cluster", cov_kwds={"groups": codes, "use_correction": True}, use_t=True)


def fit_patterns(rows: Sequence[SessionRow], mapping: CodeMapping, *, min_sessions: int = MIN_SESSIONS,
                 confidence: float = 0.95, props: dict | None = None) -> list[PatternFit]:
    """One :class:`PatternFit` per dimension (see the module docstring)."""
    props = session_proportions(rows, mapping) if props is None else props
    reference = mapping.reference or mapping.patterns[0]
    fits = []
    for dim in dims_of(rows):
        use = [r for r in rows if r.session_id in props and r.dims.get(dim) is not None]
        present = [p for p in mapping.patterns if any(props[r.session_id][p] > 0 for r in use)]
        terms = [p for p in present if p != reference]
        dropped = [p for p in mapping.patterns if p not in present and p != reference]
        n, k = len(use), len(terms) + 1
        need = max(min_sessions, PER_COEF * k)
        base = dict(dim=dim, n=n, n_clients=len({r.client for r in use}), r2=None, terms=[], reference=reference,
                    dropped=dropped)
        if n < need:
            fits.append(PatternFit(**base, reason=f"{n} sessions with codes and a {dim} score; the regression needs "
                                                  f"at least {need} ({k} coefficients, {PER_COEF} sessions each, "
                                                  f"and never fewer than {min_sessions})."))
            continue
        y = np.array([r.dims[dim] for r in use], float)
        if np.ptp(y) == 0:
            fits.append(PatternFit(**base, reason=f"every session has the same {dim} score ({y[0]:g}): "
                                                  "nothing to explain."))
            continue
        X = np.column_stack([np.ones(n)] + [[props[r.session_id][p] for r in use] for p in terms])
        if np.linalg.matrix_rank(X) < X.shape[1]:
            fits.append(PatternFit(**base, reason="the pattern proportions are collinear in these sessions."))
            continue
        res = ols_clustered(y, X, [r.client for r in use])
        ci = np.asarray(res.conf_int(alpha=1 - confidence))
        out = [{"term": name, "coef": float(res.params[j]), "se": float(res.bse[j]), "low": float(ci[j, 0]),
                "high": float(ci[j, 1]), "p": float(res.pvalues[j])} for j, name in enumerate(["intercept"] + terms)]
        base.update(r2=float(res.rsquared), terms=out)
        fits.append(PatternFit(**base,
                               method=f"statsmodels OLS, SE clustered by client ({base['n_clients']} clients, CR1), "
                                      f"{confidence:.0%} t intervals"))
    if all(f.reason for f in fits):
        raise InsightsRefusal("No dimension could be fitted: " + "; ".join(f"{f.dim}: {f.reason}" for f in fits),
                              "Score more sessions with per-turn codes, or choose scores that vary (--score-field "
                              "expected_score, another model version, or self-reports).")
    return fits


def mean_proportions(props: dict[str, dict[str, float]], patterns: Sequence[str]) -> dict[str, float]:
    if not props:
        return {p: 0.0 for p in patterns}
    return {p: float(np.mean([v[p] for v in props.values()])) for p in patterns}
