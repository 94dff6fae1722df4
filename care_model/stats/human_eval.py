"""Human evaluation statistics: rubric ratings of rationales and pairwise preferences.

Pure (numpy; no torch, no tinydb). Dataclasses with ``to_dict()`` (JSON-ready, never NaN) and
``to_rows()``; intervals from :mod:`care_model.stats.agreement`.

- Rubric means: t-based interval (mean +- t_{0.975, n-1} * sd / sqrt(n)), treating each rating as
  one observation. Below :data:`MIN_RATINGS` ratings there is no interval (reason "too few
  ratings"); otherwise an interval reaching past the 1-5 scale is bounded to it, and its method
  says so ("t 95%, bounded to 1-5"): a mean of 1-5 ratings cannot lie outside the scale.
- Bradley-Terry strengths: the MM algorithm of Hunter (2004), ties as half a win for each side.
  The maximum-likelihood estimate exists only when the "beat at least once" graph is strongly
  connected (Hunter's Assumption 1); otherwise the strengths are None with the reason, unless a
  ``pseudo_count`` of ties between every pair is added to regularise.

Public API::

    rubric_summary(ratings, *, criteria=None, pass_threshold=3, scale=(1, 5), confidence=0.95)
        -> RubricSummary
    bradley_terry(judgments_or_wins, *, systems=None, pseudo_count=0.0, tol=1e-10,
                  max_iter=10000) -> BradleyTerryResult
    pairwise_summary(judgments, *, confidence=0.95, pseudo_count=0.0) -> PairwiseSummary
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from care_model.stats.agreement import PAIRWISE_OUTCOMES, RUBRIC_CRITERIA, Estimate, mean_t_interval, proportion
from care_model.core.errors import ValidationError


MIN_RATINGS = 3  # fewer ratings of a system and criterion: no interval ("too few ratings")


def bounded_mean(scores: Sequence[int], scale: tuple[int, int], confidence: float) -> Estimate:
    """The mean with its t interval, bounded to ``scale`` (said in ``method``), or without an
    interval below :data:`MIN_RATINGS` ratings (said in ``reason``)."""
    est = mean_t_interval(scores, confidence)
    if est.n < MIN_RATINGS:
        return Estimate(est.value, n=est.n, method="t",
                        reason=f"too few ratings for an interval (n={est.n}; needs {MIN_RATINGS})")
    low, high = max(float(scale[0]), est.low), min(float(scale[1]), est.high)
    method = est.method + (f", bounded to {scale[0]}-{scale[1]}" if (low, high) != (est.low, est.high) else "")
    return Estimate(est.value, low, high, est.n, method)


# ---------------------------------------------------------------------------------------------
# Human evaluation: rubric ratings
# ---------------------------------------------------------------------------------------------
@dataclass
class RubricRow:
    system: str
    criterion: str
    n: int
    mean: Estimate
    pass_rate: Estimate

    def to_dict(self) -> dict:
        return {"system": self.system, "criterion": self.criterion, "n": self.n,
                "mean": self.mean.to_dict(), "pass_rate": self.pass_rate.to_dict()}


@dataclass
class RubricSummary:
    pass_threshold: int
    confidence: float
    rows: list[RubricRow]

    def get(self, system: str, criterion: str) -> RubricRow | None:
        return next((r for r in self.rows if r.system == system and r.criterion == criterion), None)

    def to_dict(self) -> dict:
        return {"pass_threshold": self.pass_threshold, "confidence": self.confidence,
                "mean_interval": f"t-based, bounded to the scale; none below {MIN_RATINGS} ratings",
                "pass_rate_interval": "Wilson score",
                "rows": [r.to_dict() for r in self.rows]}

    def to_rows(self) -> list[dict]:
        return [{"system": r.system, "criterion": r.criterion, "n": r.n,
                 "mean": r.mean.value, "mean_low": r.mean.low, "mean_high": r.mean.high,
                 "pass_rate": r.pass_rate.value, "pass_low": r.pass_rate.low, "pass_high": r.pass_rate.high}
                for r in self.rows]


def rubric_summary(ratings: Iterable[Mapping], *, criteria: Sequence[str] | None = None, pass_threshold: int = 3,
                   scale: tuple[int, int] = (1, 5), confidence: float = 0.95) -> RubricSummary:
    """Per system and criterion: mean with a t interval, pass rate (score >= threshold) with Wilson.

    ``ratings``: dicts with ``system``, ``criterion`` and ``score`` (1-5); other keys (rater,
    session, item) are ignored. ``criteria`` defaults to faithfulness, relevance,
    informativeness, plus any other criterion present.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for pos, r in enumerate(ratings):
        try:
            system, criterion, score = str(r["system"]), str(r["criterion"]), r["score"]
        except KeyError as exc:
            raise ValidationError(f"Rubric rating #{pos} lacks {exc.args[0]!r}.",
                                  "Give each rating a system, a criterion and a score.") from exc
        if isinstance(score, bool) or not isinstance(score, (int, float)) or float(score) != int(score) \
                or not scale[0] <= int(score) <= scale[1]:
            raise ValidationError(f"Rubric rating #{pos} ({system}, {criterion}) has score {score!r}.",
                                  f"Use a whole number from {scale[0]} to {scale[1]}.")
        groups.setdefault((system, criterion), []).append(int(score))
    order = list(criteria or RUBRIC_CRITERIA)
    order += sorted({c for _, c in groups} - set(order))
    rows = []
    for system in sorted({s for s, _ in groups}):
        for criterion in order:
            scores = groups.get((system, criterion))
            if not scores:
                continue
            passed = sum(1 for s in scores if s >= pass_threshold)
            rows.append(RubricRow(system, criterion, len(scores), bounded_mean(scores, scale, confidence),
                                  proportion(passed, len(scores), confidence)))
    return RubricSummary(pass_threshold, confidence, rows)


# ---------------------------------------------------------------------------------------------
# Human evaluation: pairwise preferences and Bradley-Terry
# ---------------------------------------------------------------------------------------------
def _normalise_judgment(pos: int, j: Mapping) -> tuple[str, str, str]:
    try:
        a, b, outcome = str(j["system_a"]), str(j["system_b"]), str(j["outcome"])
    except KeyError as exc:
        raise ValidationError(f"Pairwise judgment #{pos} lacks {exc.args[0]!r}.",
                              "Give each judgment system_a, system_b and outcome.") from exc
    if a == b:
        raise ValidationError(f"Pairwise judgment #{pos} compares {a!r} with itself.", "Compare two different systems.")
    if outcome == a:
        outcome = "a"
    elif outcome == b:
        outcome = "b"
    if outcome not in PAIRWISE_OUTCOMES:
        raise ValidationError(f"Pairwise judgment #{pos} has outcome {outcome!r}.",
                              f"Use one of {', '.join(PAIRWISE_OUTCOMES)} or the winning system's name.")
    return a, b, outcome


@dataclass
class BradleyTerryResult:
    systems: list[str]
    strength: dict[str, float] | None  # sums to 1
    log_strength: dict[str, float] | None  # centred at 0
    n_comparisons: float
    iterations: int
    converged: bool
    pseudo_count: float
    reason: str = ""

    def win_probability(self, a: str, b: str) -> float | None:
        if self.strength is None:
            return None
        return self.strength[a] / (self.strength[a] + self.strength[b])

    def to_dict(self) -> dict:
        return {"systems": self.systems, "strength": self.strength, "log_strength": self.log_strength,
                "n_comparisons": self.n_comparisons, "iterations": self.iterations, "converged": self.converged,
                "pseudo_count": self.pseudo_count, "reason": self.reason}

    def to_rows(self) -> list[dict]:
        return [{"system": s, "strength": None if self.strength is None else self.strength[s],
                 "log_strength": None if self.log_strength is None else self.log_strength[s]} for s in self.systems]


def bradley_terry(judgments_or_wins, *, systems: Sequence[str] | None = None, pseudo_count: float = 0.0,
                  tol: float = 1e-10, max_iter: int = 10000) -> BradleyTerryResult:
    """Bradley-Terry strengths by Hunter's (2004) MM algorithm.

    Input: pairwise judgments (dicts with system_a, system_b, outcome; ties = half a win each,
    "both_bad" left out) or a square matrix ``wins[i][j]`` = times i beat j (with ``systems``).
    ``pseudo_count`` adds that many ties between every pair (a mild prior that guarantees a
    finite estimate).
    """
    if isinstance(judgments_or_wins, np.ndarray) or (
            isinstance(judgments_or_wins, (list, tuple)) and judgments_or_wins
            and isinstance(judgments_or_wins[0], (list, tuple, np.ndarray))):
        wins = np.asarray(judgments_or_wins, dtype=float)
        if wins.ndim != 2 or wins.shape[0] != wins.shape[1]:
            raise ValidationError("A wins matrix must be square.", "Pass wins[i][j] = times system i beat system j.")
        names = list(systems) if systems is not None else [str(i) for i in range(wins.shape[0])]
        if len(names) != wins.shape[0]:
            raise ValidationError("systems must name every row of the wins matrix.", "Pass one name per row.")
    else:
        triples = [_normalise_judgment(pos, j) for pos, j in enumerate(judgments_or_wins)]
        names = list(systems) if systems is not None else sorted({s for a, b, _ in triples for s in (a, b)})
        index = {s: i for i, s in enumerate(names)}
        wins = np.zeros((len(names), len(names)))
        for a, b, outcome in triples:
            if a not in index or b not in index:
                raise ValidationError(f"System {a if a not in index else b!r} is not in systems.", "List every system.")
            i, j = index[a], index[b]
            if outcome == "a":
                wins[i, j] += 1
            elif outcome == "b":
                wins[j, i] += 1
            elif outcome == "tie":
                wins[i, j] += 0.5
                wins[j, i] += 0.5
    m = len(names)
    wins = wins.copy()
    np.fill_diagonal(wins, 0)
    if pseudo_count > 0:
        wins += pseudo_count / 2 * (1 - np.eye(m))
    n_pair = wins + wins.T
    total = float(n_pair.sum() / 2)
    if m < 2:
        return BradleyTerryResult(names, None, None, total, 0, False, pseudo_count, "fewer than two systems")
    from scipy.sparse.csgraph import connected_components

    n_comp, _ = connected_components((wins > 0).astype(int), directed=True, connection="strong")
    if n_comp > 1:
        return BradleyTerryResult(
            names, None, None, total, 0, False, pseudo_count,
            "no finite maximum-likelihood estimate: some systems never beat (or never lose to) the others "
            "(the 'beat at least once' graph is not strongly connected); add comparisons or pass pseudo_count=0.5")
    w = wins.sum(axis=1)
    p = np.full(m, 1.0 / m)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        denom = (n_pair / (p[:, None] + p[None, :])).sum(axis=1)
        new = w / denom
        new /= new.sum()
        delta = float(np.max(np.abs(np.log(new) - np.log(p))))
        p = new
        if delta < tol:
            converged = True
            break
    logp = np.log(p)
    logp -= logp.mean()
    return BradleyTerryResult(names, {s: float(v) for s, v in zip(names, p)},
                              {s: float(v) for s, v in zip(names, logp)}, total, it, converged, pseudo_count,
                              "" if converged else f"MM did not converge in {max_iter} iterations")


@dataclass
class PairRow:
    system_a: str
    system_b: str
    n: int  # all judgments of this pair
    wins_a: int
    wins_b: int
    ties: int
    both_bad: int
    win_rate_a: Estimate  # (wins_a + ties/2) / (wins_a + wins_b + ties), Wilson
    both_bad_rate: Estimate  # both_bad / n, Wilson

    def to_dict(self) -> dict:
        return {"system_a": self.system_a, "system_b": self.system_b, "n": self.n, "wins_a": self.wins_a,
                "wins_b": self.wins_b, "ties": self.ties, "both_bad": self.both_bad,
                "win_rate_a": self.win_rate_a.to_dict(), "both_bad_rate": self.both_bad_rate.to_dict()}


@dataclass
class PairwiseSummary:
    confidence: float
    pairs: list[PairRow]
    bradley_terry: BradleyTerryResult | None  # with more than two systems

    def to_dict(self) -> dict:
        return {"confidence": self.confidence, "ties": "count half a win for each side",
                "pairs": [p.to_dict() for p in self.pairs],
                "bradley_terry": None if self.bradley_terry is None else self.bradley_terry.to_dict()}

    def to_rows(self) -> list[dict]:
        rows = [{"system_a": p.system_a, "system_b": p.system_b, "n": p.n, "wins_a": p.wins_a, "wins_b": p.wins_b,
                 "ties": p.ties, "both_bad": p.both_bad, "win_rate_a": p.win_rate_a.value,
                 "win_low": p.win_rate_a.low, "win_high": p.win_rate_a.high,
                 "both_bad_rate": p.both_bad_rate.value} for p in self.pairs]
        return rows


def pairwise_summary(judgments: Iterable[Mapping], *, confidence: float = 0.95,
                     pseudo_count: float = 0.0) -> PairwiseSummary:
    """Win rates per system pair (ties half, "both bad" apart) with Wilson intervals, and
    Bradley-Terry strengths when more than two systems were compared."""
    triples = [_normalise_judgment(pos, j) for pos, j in enumerate(judgments)]
    tally: dict[tuple[str, str], dict[str, int]] = {}
    for a, b, outcome in triples:
        if a > b:  # canonical order: alphabetical
            a, b = b, a
            outcome = {"a": "b", "b": "a"}.get(outcome, outcome)
        t = tally.setdefault((a, b), {"a": 0, "b": 0, "tie": 0, "both_bad": 0})
        t[outcome] += 1
    pairs = []
    for (a, b), t in sorted(tally.items()):
        n = sum(t.values())
        compared = t["a"] + t["b"] + t["tie"]
        win = (proportion(t["a"] + 0.5 * t["tie"], compared, confidence) if compared
               else Estimate.missing("every judgment was 'both bad'"))
        pairs.append(PairRow(a, b, n, t["a"], t["b"], t["tie"], t["both_bad"], win,
                             proportion(t["both_bad"], n, confidence)))
    systems = sorted({s for a, b, _ in triples for s in (a, b)})
    bt = bradley_terry([{"system_a": a, "system_b": b, "outcome": o} for a, b, o in triples],
                       systems=systems, pseudo_count=pseudo_count) if len(systems) > 2 else None
    return PairwiseSummary(confidence, pairs, bt)



__all__ = ["RubricRow", "RubricSummary", "rubric_summary", "BradleyTerryResult", "bradley_terry", "PairRow",
           "PairwiseSummary", "pairwise_summary"]
