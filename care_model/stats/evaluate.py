"""The CARE evaluation protocol and agreement with experts (pure: no torch, no tinydb).

What is computed
----------------
- **Against the client's self-report** (the paper's headline): per dimension, Pearson r,
  Spearman rho (scipy.stats) and MSE of the predicted dimension mean against the client's own
  WAI-SR dimension mean. A predicted dimension mean needs all of the dimension's items parsed
  (the paper's definition; ``require_all_items=False`` averages what is there). The same
  function compares the counselor's ratings with the client's (the paper's counselor baseline),
  on the same evaluated sessions (those with predictions).
- **Against the curated expert labels**: per item, per dimension (that dimension's items
  pooled) and overall: exact agreement, within-one agreement, quadratic-weighted Cohen's kappa
  (sklearn, labels = the form's scale) and MAE of the predicted item score. Predictions without
  a parsed score are left out of these (the parse rate reports them).
- **Parse rate**: share of predictions whose ``parse_status`` is ``ok``, among those made to
  write text (scores-only predictions, ``mode``/``parse_status`` "scores_only", have nothing to
  parse and are left out of it, and out of the rationale similarity).
- **Rationale similarity** to the expert's rationale (pairs whose expert rationale is not
  empty): corpus BLEU (sacrebleu; ``13a`` tokenizer for English, ``zh`` for Chinese), mean
  ROUGE-1 and ROUGE-L F1 (rouge_score; Chinese through a character tokenizer, since
  rouge_score's default tokenizer drops non-ASCII text) and mean cosine similarity of
  all-MiniLM-L6-v2 embeddings (:mod:`care_model.inference.embeddings`, imported only when used). An empty
  model rationale scores 0 on every measure.
- **95% intervals** for every metric: percentile bootstrap over sessions (whole sessions are
  resampled, because the 12 items of a session are dependent), seeded, ``n_boot`` resamples
  (0 = none). Corpus BLEU is bootstrapped from per-session n-gram statistics.
- **Cross-validation folds** split by client and stratified on a score (StratifiedGroupKFold).

The dimension correlations live in :mod:`care_model.stats.correlations`, the rationale similarity in
:mod:`care_model.stats.text_metrics`, intervals and the bootstrap in :mod:`care_model.stats.estimates`; their
public names are re-exported here.

Public API::

    Correlation, TextMetrics, EvaluationReport                       (dataclasses, to_dict())
    dimension_correlations(pred_dim_means, truth, *, n_boot=1000, seed=0, confidence=0.95)
        -> {dimension: Correlation(pearson, spearman, mse: Estimate, n)}
    text_metrics(hypotheses, references, *, languages="en", groups=None, with_embeddings=True,
                 similarity=None, n_boot=0, seed=0, confidence=0.95) -> TextMetrics
    latest_predictions(predictions, model_version) -> list[Prediction]
    curated_labels(labels) -> (list[Label], unresolved [(session_id, item)])   # from care_model.text.curation
    evaluate_predictions(sessions, predictions, labels, *, form=None, with_text_metrics=True,
                         n_boot=1000, seed=0, confidence=0.95, score_field="score",
                         require_all_items=True, similarity=None) -> EvaluationReport
    EvaluationReport.to_dict() / .summary_rows() / EvaluationReport.from_dict(d)
    compare_reports(candidate, active) -> dict
    cross_validation_folds(sessions, k=5, seed=0, n_bins=5) -> [(train_ids, test_ids)]
    cross_validate(sessions, predictions, labels=(), *, k=5, seed=0, **evaluate_kwargs) -> dict
    resolve_unresolved(labels, unresolved) -> list[Label]   # from care_model.text.curation (the one rule)
    python -m care_model.jobs.evaluate (--input export.jsonl | --store DIR) ...   # care_model.jobs.evaluate
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from care_model.core.errors import ValidationError
from care_model.core.records import Label, Prediction, Session
from care_model.core.wai import Form, load_form
from care_model.stats.agreement import PairAgreement, RaterAgreement, rater_agreement
from care_model.stats.correlations import CORRELATION_METRICS, Correlation, dimension_correlations  # noqa: F401 (re-exported)
from care_model.stats.estimates import Estimate, clean, ratio_estimate, resample_counts
from care_model.stats.text_metrics import TEXT_METRICS, CharTokenizer, TextMetrics, text_metrics  # noqa: F401 (re-exported)
from care_model.text.curation import curated_labels, resolve_unresolved  # noqa: F401 (the curated-set rule, re-exported)

LOWER_IS_BETTER = {"mse", "mae"}


# ---------------------------------------------------------------------------------------------
# Choosing predictions and labels
# ---------------------------------------------------------------------------------------------
def _as_prediction(p) -> Prediction:
    return p if isinstance(p, Prediction) else Prediction.from_dict(p)


def _as_label(lab) -> Label:
    return lab if isinstance(lab, Label) else Label.from_dict(lab)


def latest_predictions(predictions: Iterable, model_version: str) -> list[Prediction]:
    """The latest prediction (by ``created_at``; later in the input wins a tie) per (session,
    item) of ``model_version``."""
    best: dict[tuple[str, int], Prediction] = {}
    for p in map(_as_prediction, predictions):
        if p.model_version != model_version or p.mode == "draft":  # drafts are not the model's suggestions
            continue
        key = (p.session_id, int(p.item))
        if key not in best or (p.created_at or "") >= (best[key].created_at or ""):
            best[key] = p
    return list(best.values())


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
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
            targets = [("overall", ea.overall)] + list(ea.dimensions.items()) + [(f"item {k}", v) for k, v in ea.items.items()]
            for target, agr in targets:
                for m in PairAgreement.METRICS:
                    add("experts", target, m, getattr(agr, m))
        if self.text is not None:
            for m in TEXT_METRICS:
                add("rationale", "all", m, getattr(self.text, m))
        return rows


def _check_form(form, sessions: list[Session]) -> Form:
    if isinstance(form, Form):
        pass
    elif form is None:
        ids = sorted({s.form for s in sessions}) or ["wai-sr"]
        if len(ids) > 1:
            raise ValidationError(f"Sessions use different forms ({', '.join(ids)}).",
                                  "Evaluate the sessions of one form at a time.")
        form = load_form(ids[0])
    else:
        form = load_form(str(form))
    other = sorted({s.form for s in sessions if s.form != form.id})
    if other:
        raise ValidationError(f"Some sessions use form(s) {', '.join(other)}, not {form.id}.",
                              f"Evaluate only {form.id} sessions, or pass the matching form.")
    return form


def evaluate_predictions(sessions: Iterable[Session], predictions: Iterable[Prediction], labels: Iterable[Label] = (),
                         *, form: Form | str | None = None, with_text_metrics: bool = True, n_boot: int = 1000,
                         seed: int = 0, confidence: float = 0.95, score_field: str = "score",
                         require_all_items: bool = True,
                         similarity: Callable[[Sequence[str], Sequence[str]], Sequence[float]] | None = None,
                         with_embeddings: bool = True) -> EvaluationReport:
    """Evaluate one model version's predictions on ``sessions``.

    ``predictions``: the latest prediction per (session, item) of one model version (see
    :func:`latest_predictions`). ``labels``: the curated label per (session, item) (see
    :func:`curated_labels`); discarded ones are ignored. ``score_field``: "score" (the generated
    option, the paper's choice) or "expected_score" (probability-weighted) for the dimension
    means; agreement with experts always uses "score". What the data do not allow (no
    self-reports, no labels, no expert rationales) is left out and said in ``notes``.
    """
    sessions = [s if isinstance(s, Session) else Session.from_dict(s) for s in sessions]
    by_id: dict[str, Session] = {}
    for s in sessions:
        if s.id in by_id:
            raise ValidationError(f"Session {s.id!r} is given twice.", "Pass each session once.")
        by_id[s.id] = s
    form = _check_form(form, sessions)
    if score_field not in ("score", "expected_score"):
        raise ValidationError(f"Unknown score_field {score_field!r}.", "Use 'score' or 'expected_score'.")
    notes: list[str] = []

    preds = [_as_prediction(p) for p in predictions]
    versions = sorted({p.model_version for p in preds})
    if len(versions) > 1:
        raise ValidationError(f"Predictions from several model versions ({', '.join(versions)}).",
                              "Pass the predictions of one model version, e.g. latest_predictions(preds, version).")
    model_version = versions[0] if versions else ""
    pred_by_key: dict[tuple[str, int], Prediction] = {}
    unknown = set()
    for p in preds:
        if p.session_id not in by_id:
            unknown.add(p.session_id)
            continue
        key = (p.session_id, form.check_item(p.item))
        if key in pred_by_key:
            raise ValidationError(f"Two predictions of {model_version} for session {key[0]!r}, item {key[1]}.",
                                  "Pass the latest prediction per session and item (latest_predictions()).")
        pred_by_key[key] = p
    if unknown:
        notes.append(f"{len(unknown)} session id(s) in the predictions are not among the sessions and were left out.")

    lab_by_key: dict[tuple[str, int], Label] = {}
    n_discarded = 0
    for lab in map(_as_label, labels):
        if lab.status == "discarded":
            n_discarded += 1
            continue
        if lab.session_id not in by_id:
            continue
        key = (lab.session_id, form.check_item(lab.item))
        if key in lab_by_key:
            raise ValidationError(f"Two labels for session {key[0]!r}, item {key[1]}.",
                                  "Pass the curated label per session and item (curated_labels()).")
        lab_by_key[key] = lab
    if n_discarded:
        notes.append(f"{n_discarded} discarded label(s) ignored.")

    pred_sessions = sorted({sid for sid, _ in pred_by_key})
    settings = {"n_boot": n_boot, "seed": seed, "confidence": confidence, "score_field": score_field,
                "require_all_items": require_all_items, "bootstrap_unit": "session"}

    # parse rate, clustered by session
    per_session: dict[str, dict[int, Prediction]] = {}
    for (sid, item), p in pred_by_key.items():
        per_session.setdefault(sid, {})[item] = p
    def texted(p: Prediction) -> bool:
        return p.mode != "scores_only" and p.parse_status != "scores_only"

    ok = np.array([sum(texted(p) and p.parse_status == "ok" for p in per_session[s].values()) for s in pred_sessions],
                  float)
    tot = np.array([sum(texted(p) for p in per_session[s].values()) for s in pred_sessions], float)
    counts = resample_counts(len(pred_sessions), n_boot, seed) if n_boot > 0 and len(pred_sessions) >= 2 else None
    if not pred_by_key:
        parse_rate = Estimate.missing("no predictions")
    elif tot.sum() == 0:
        parse_rate = Estimate.missing("scores-only predictions: no text to parse")
    else:
        parse_rate = ratio_estimate(ok, tot, counts, confidence, int(tot.sum()), n_boot)
    if not pred_by_key:
        notes.append("No predictions for these sessions: nothing to evaluate.")

    # dimension means vs the client's self-report
    def pred_value(p: Prediction):
        v = getattr(p, score_field)
        return None if v is None else float(v)

    pred_dims: dict[str, dict[str, float | None]] = {}
    for sid in pred_sessions:
        item_vals = {item: pred_value(p) for item, p in per_session[sid].items()}
        item_vals = {k: v for k, v in item_vals.items() if v is not None}
        pred_dims[sid] = form.dimension_scores(item_vals, require_all=require_all_items)

    def rated(rater):
        return {sid: form.dimension_scores(by_id[sid].ratings[rater], require_all=True)
                for sid in by_id if by_id[sid].ratings.get(rater)}

    client = rated("client")
    counselor = {sid: v for sid, v in rated("counselor").items() if sid in per_session}  # the evaluated sessions
    correlations: dict[str, Correlation] = {}
    if not client:
        notes.append("No session has the client's self-reported WAI: correlations left out.")
    elif pred_dims:
        correlations = dimension_correlations(pred_dims, client, n_boot=n_boot, seed=seed, confidence=confidence)
        missing = [sid for sid in pred_sessions if sid not in client]
        if missing:
            notes.append(f"{len(missing)} predicted session(s) have no client self-report and are not in the correlations.")
    counselor_corr: dict[str, Correlation] = {}
    if client and counselor:
        counselor_corr = dimension_correlations(counselor, client, n_boot=n_boot, seed=seed, confidence=confidence,
                                                what=("counselor", "self-reported"))

    # agreement with the curated expert labels
    expert = None
    label_scores = {k: int(lab.score) for k, lab in lab_by_key.items() if lab.score is not None}
    model_scores = {k: int(p.score) for k, p in pred_by_key.items() if p.score is not None}
    if not lab_by_key:
        notes.append("No expert labels: agreement with experts and rationale similarity left out.")
    elif label_scores:
        expert = rater_agreement(label_scores, model_scores, form=form, names=("experts", model_version or "model"),
                                 n_boot=n_boot, seed=seed, confidence=confidence)
        unparsed = sum(1 for k in label_scores if k in pred_by_key and k not in model_scores)
        if unparsed:
            notes.append(f"{unparsed} labelled item(s) have no parsed model score and are not in the agreement.")
    else:
        notes.append("No expert label has a score: agreement with experts left out.")

    # rationale similarity
    text = None
    if with_text_metrics and lab_by_key:
        keys = sorted(k for k, lab in lab_by_key.items()
                      if k in pred_by_key and texted(pred_by_key[k]) and (lab.rationale or "").strip())
        if keys:
            text = text_metrics([pred_by_key[k].rationale for k in keys], [lab_by_key[k].rationale for k in keys],
                                languages=[by_id[k[0]].language for k in keys], groups=[k[0] for k in keys],
                                with_embeddings=with_embeddings, similarity=similarity, n_boot=n_boot, seed=seed,
                                confidence=confidence)
        else:
            notes.append("No expert rationale to compare with: rationale similarity left out.")

    return EvaluationReport(model_version, form.id, len(pred_sessions), len(pred_by_key), len(lab_by_key), parse_rate,
                            correlations, counselor_corr, expert, text, notes, settings)


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


# ---------------------------------------------------------------------------------------------
# Cross-validation folds
# ---------------------------------------------------------------------------------------------
def cross_validation_folds(sessions: Sequence[tuple[str, str, float | None]], k: int = 5, seed: int = 0,
                           n_bins: int = 5) -> list[tuple[list[str], list[str]]]:
    """k folds split by client (no client in both train and test), stratified on the score.

    ``sessions``: (session_id, client_id, score) with score e.g. the client's mean WAI-SR.
    Scores are cut into ``n_bins`` quantile bins (a None score is its own stratum) and fed to
    sklearn's StratifiedGroupKFold (shuffled with ``seed``). Returns ``k`` pairs of sorted
    session-id lists; the test lists partition the sessions.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not isinstance(k, int) or k < 2:
        raise ValidationError(f"Cross-validation needs k >= 2 folds, got {k!r}.", "Use e.g. k=5 (the paper's setting).")
    ids, clients, scores = [], [], []
    for pos, row in enumerate(sessions):
        try:
            sid, client, score = row
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"Session entry #{pos} is {row!r}.", "Pass (session_id, client_id, score) tuples.") from exc
        if not client:
            raise ValidationError(f"Session {sid!r} has no client id; folds split by client need one.",
                                  "Give every session its (pseudonymous) client id.")
        ids.append(str(sid))
        clients.append(str(client))
        scores.append(clean(score))
    if len(set(ids)) != len(ids):
        raise ValidationError("A session id appears twice in the cross-validation input.", "Pass each session once.")
    n_clients = len(set(clients))
    if n_clients < k:
        raise ValidationError(f"Only {n_clients} client(s) for {k}-fold cross-validation split by client.",
                              f"Use k <= {n_clients} (e.g. --cv {max(2, n_clients)}) or add sessions from more clients.")
    known = np.array([s for s in scores if s is not None], dtype=float)
    if len(known):
        edges = np.unique(np.quantile(known, np.linspace(0, 1, max(1, n_bins) + 1)[1:-1]))
    else:
        edges = np.array([])
    strata = np.array([-1 if s is None else int(np.searchsorted(edges, s, side="right")) for s in scores])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer than k members": groups come first
        for train, test in splitter.split(np.zeros(len(ids)), strata, groups=clients):
            folds.append((sorted(ids[i] for i in train), sorted(ids[i] for i in test)))
    return folds


def cross_validate(sessions: Sequence[Session], predictions: Sequence[Prediction], labels: Sequence[Label] = (), *,
                   k: int = 5, seed: int = 0, **kwargs) -> dict:
    """Metrics per test fold (folds split by client, stratified on the client's mean WAI) of
    predictions already made, and their mean and sd (ddof=1) over folds, as the paper reports.
    Per-fold metrics are point values (no bootstrap)."""
    form = _check_form(kwargs.pop("form", None), list(sessions))
    pred_sids = {p.session_id for p in predictions}
    used = [s for s in sessions if s.id in pred_sids]
    rows_in = []
    for s in used:
        client = s.ratings.get("client")
        rows_in.append((s.id, s.client_id, float(np.mean(list(client.values()))) if client else None))
    folds = cross_validation_folds(rows_in, k=k, seed=seed)
    by_id = {s.id: s for s in used}
    fold_out, values = [], {}
    for i, (_, test) in enumerate(folds):
        test_set = set(test)
        rep = evaluate_predictions([by_id[sid] for sid in test], [p for p in predictions if p.session_id in test_set],
                                   [lab for lab in labels if lab.session_id in test_set], form=form, n_boot=0,
                                   seed=seed, **kwargs)
        fold_out.append({"fold": i, "test_sessions": test, "test_clients": sorted({by_id[s].client_id for s in test}),
                         "report": rep.to_dict()})
        for r in rep.summary_rows():
            values.setdefault((r["section"], r["target"], r["metric"]), []).append(r["value"])
    summary = []
    for (section, target, metric), vals in values.items():
        got = [v for v in vals if v is not None]
        summary.append({"section": section, "target": target, "metric": metric,
                        "mean": float(np.mean(got)) if got else None,
                        "sd": float(np.std(got, ddof=1)) if len(got) > 1 else None, "n_folds": len(got)})
    return {"k": k, "seed": seed, "split": "by client, stratified on the client's mean WAI-SR",
            "folds": fold_out, "summary": summary}
