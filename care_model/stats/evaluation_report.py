"""The evaluation report of one model version (:class:`EvaluationReport`, made by
:func:`care_model.stats.evaluate.evaluate_predictions`) and the comparison of two reports
(:func:`compare_reports`). Pure: no torch, no storage.

Public API::

    EvaluationReport(model_version, form_id, n_sessions, n_predictions, n_labels, parse_rate, correlations,
                     counselor_correlations, expert_agreement, text, notes, settings)
    EvaluationReport.to_dict() / .summary_rows() / EvaluationReport.from_dict(d)
    compare_reports(candidate, active) -> dict
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from care_model.stats.agreement import PairAgreement, RaterAgreement
from care_model.stats.correlations import CORRELATION_METRICS, Correlation
from care_model.stats.estimates import Estimate
from care_model.stats.text_metrics import TEXT_METRICS, TextMetrics

LOWER_IS_BETTER = {"mse", "mae"}


@dataclass
class EvaluationReport:
    model_version: str
    form_id: str
    n_sessions: int  # sessions with at least one prediction
    n_predictions: int
    n_labels: int
    parse_rate: Estimate
    correlations: dict[str, Correlation]  # predicted vs client self-report; {} without self-reports
    counselor_correlations: dict[str, Correlation]  # counselor vs client (baseline; model-independent)
    expert_agreement: RaterAgreement | None  # expert labels (a) vs model scores (b); None without labels
    text: TextMetrics | None  # None without expert rationales or when not requested
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model_version": self.model_version, "form_id": self.form_id, "n_sessions": self.n_sessions,
            "n_predictions": self.n_predictions, "n_labels": self.n_labels,
            "parse_rate": self.parse_rate.to_dict(),
            "correlations": {k: v.to_dict() for k, v in self.correlations.items()},
            "counselor_correlations": {k: v.to_dict() for k, v in self.counselor_correlations.items()},
            "expert_agreement": None if self.expert_agreement is None else self.expert_agreement.to_dict(),
            "text": None if self.text is None else self.text.to_dict(),
            "notes": list(self.notes), "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "EvaluationReport":
        ea = d.get("expert_agreement")
        if ea is not None:
            def pa(x):
                return PairAgreement(x["n"], *(Estimate.from_dict(x[m]) for m in PairAgreement.METRICS))
            ea = RaterAgreement(ea["rater_a"], ea["rater_b"], {int(k): pa(v) for k, v in ea["items"].items()},
                                {k: pa(v) for k, v in ea["dimensions"].items()}, pa(ea["overall"]))
        return cls(
            d["model_version"], d["form_id"], d["n_sessions"], d["n_predictions"], d["n_labels"],
            Estimate.from_dict(d["parse_rate"]),
            {k: Correlation.from_dict(v) for k, v in d.get("correlations", {}).items()},
            {k: Correlation.from_dict(v) for k, v in d.get("counselor_correlations", {}).items()},
            ea, None if d.get("text") is None else TextMetrics.from_dict(d["text"]),
            list(d.get("notes", [])), dict(d.get("settings", {})),
        )

    def summary_rows(self) -> list[dict]:
        """Flat rows (section, target, metric, value, low, high, n, reason) for tables and CSV.

        Sections: ``parse``, ``self_report`` (predicted vs client), ``counselor_baseline``
        (counselor vs client), ``experts`` (model vs curated labels: items, dimensions,
        overall), ``rationale`` (text similarity).
        """
        rows = []

        def add(section, target, metric, est: Estimate):
            rows.append({"section": section, "target": target, "metric": metric, "value": est.value,
                         "low": est.low, "high": est.high, "n": est.n, "reason": est.reason})

        add("parse", "all", "parse_rate", self.parse_rate)
        for section, corr in (("self_report", self.correlations), ("counselor_baseline", self.counselor_correlations)):
            for dim, c in corr.items():
                for m in CORRELATION_METRICS:
                    add(section, dim, m, getattr(c, m))
        if self.expert_agreement is not None:
            ea = self.expert_agreement
            targets = ([("overall", ea.overall)] + list(ea.dimensions.items())
                       + [(f"item {k}", v) for k, v in ea.items.items()])
            for target, agr in targets:
                for m in PairAgreement.METRICS:
                    add("experts", target, m, getattr(agr, m))
        if self.text is not None:
            for m in TEXT_METRICS:
                add("rationale", "all", m, getattr(self.text, m))
        return rows


def compare_reports(candidate: EvaluationReport | Mapping, active: EvaluationReport | Mapping) -> dict:
    """Per-metric differences (candidate - active) with a verdict per metric.

    Verdict: "better"/"worse" when both have intervals and they do not overlap (direction: higher
    is better except MSE and MAE), "same" when they overlap; without intervals the point values
    decide ("same" only when equal), and ``basis`` says "point". "n/a" when either is missing.
    Overlapping 95% intervals is a conservative rule: a real but small difference can read
    "same". The counselor baseline does not depend on the model and is left out.
    """
    cand = candidate if isinstance(candidate, EvaluationReport) else EvaluationReport.from_dict(candidate)
    act = active if isinstance(active, EvaluationReport) else EvaluationReport.from_dict(active)
    act_rows = {(r["section"], r["target"], r["metric"]): r for r in act.summary_rows()}
    rows, tally = [], {"better": 0, "worse": 0, "same": 0, "n/a": 0}
    for r in cand.summary_rows():
        if r["section"] == "counselor_baseline":
            continue
        key = (r["section"], r["target"], r["metric"])
        a = act_rows.get(key)
        lower_better = r["metric"] in LOWER_IS_BETTER
        row = {"section": key[0], "target": key[1], "metric": key[2], "candidate": r["value"],
               "active": None if a is None else a["value"], "difference": None,
               "candidate_n": r["n"], "active_n": None if a is None else a["n"],
               "candidate_ci": [r["low"], r["high"]], "active_ci": None if a is None else [a["low"], a["high"]],
               "higher_is_better": not lower_better, "verdict": "n/a", "basis": ""}
        if a is not None and r["value"] is not None and a["value"] is not None:
            diff = r["value"] - a["value"]
            row["difference"] = diff
            both_ci = None not in (r["low"], r["high"], a["low"], a["high"])
            if both_ci and r["low"] <= a["high"] and a["low"] <= r["high"]:
                verdict = "same"
            elif not both_ci and abs(diff) < 1e-12:
                verdict = "same"
            else:
                improved = diff < 0 if lower_better else diff > 0
                verdict = "better" if improved else "worse"
            row["verdict"], row["basis"] = verdict, "ci" if both_ci else "point"
        tally[row["verdict"]] += 1
        rows.append(row)
    return {"candidate": cand.model_version, "active": act.model_version, "rows": rows, "counts": tally}
