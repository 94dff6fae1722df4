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
  all-MiniLM-L6-v2 embeddings (through the ``similarity`` function the caller passes, e.g.
  :func:`care_model.inference.embeddings.cosine_similarities`; none: left out). An empty model
  rationale scores 0 on every measure.
- **95% intervals** for every metric: percentile bootstrap over **clients** (all of a client's
  sessions are resampled together, because a client's sessions, and the 12 items of a session,
  are dependent; a session without a client id is its own client; with one client, its sessions
  are resampled), seeded, ``n_boot`` resamples (0 = none). Corpus BLEU is bootstrapped from
  per-session n-gram statistics.

The dimension correlations live in :mod:`care_model.stats.correlations`, the rationale similarity in
:mod:`care_model.stats.text_metrics`, intervals and the bootstrap in :mod:`care_model.stats.estimates`,
the report and the comparison of two reports in :mod:`care_model.stats.evaluation_report`,
cross-validation folds (split by client, stratified on a score) in :mod:`care_model.stats.folds`, the
curated-set rule (:func:`~care_model.text.curation.curated_labels`) in :mod:`care_model.text.curation`.

Public API::

    latest_predictions(predictions, model_version) -> list[Prediction]
    check_form(form, sessions) -> Form        # the one form of the sessions (or the given one)
    evaluate_predictions(sessions, predictions, labels, *, form=None, with_text_metrics=True,
                         n_boot=1000, seed=0, confidence=0.95, score_field="score",
                         require_all_items=True, similarity=None) -> EvaluationReport
    care evaluate (--input export.jsonl | --store DIR) ...   # care_model.jobs.evaluate
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from care_model.core.errors import ValidationError
from care_model.core.records import Label, Prediction, Session
from care_model.core.wai import Form, load_form
from care_model.stats.agreement import rater_agreement
from care_model.stats.correlations import Correlation, dimension_correlations
from care_model.stats.estimates import Estimate, cluster_counts, ratio_estimate
from care_model.stats.evaluation_report import EvaluationReport
from care_model.stats.text_metrics import text_metrics

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


def check_form(form, sessions: list[Session]) -> Form:
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
                         similarity: Callable[[Sequence[str], Sequence[str]], Sequence[float]] | None = None
                         ) -> EvaluationReport:
    """Evaluate one model version's predictions on ``sessions``.

    ``predictions``: the latest prediction per (session, item) of one model version (see
    :func:`latest_predictions`). ``labels``: the curated label per (session, item) (see
    :func:`care_model.text.curation.curated_labels`); discarded ones are ignored. ``score_field``: "score" (the
    generated
    option, the paper's choice) or "expected_score" (probability-weighted) for the dimension
    means; agreement with experts always uses "score". What the data do not allow (no
    self-reports, no labels, no expert rationales) is left out and said in ``notes``.
    ``similarity(hyps, refs) -> cosines``: the embedding similarity of the rationales (None: that
    metric is left out); see :func:`care_model.stats.text_metrics.text_metrics`.
    """
    sessions = [s if isinstance(s, Session) else Session.from_dict(s) for s in sessions]
    by_id: dict[str, Session] = {}
    for s in sessions:
        if s.id in by_id:
            raise ValidationError(f"Session {s.id!r} is given twice.", "Pass each session once.")
        by_id[s.id] = s
    form = check_form(form, sessions)
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
                "require_all_items": require_all_items, "bootstrap_unit": "client"}
    clusters = {sid: s.client_id or f"session:{sid}" for sid, s in by_id.items()}

    # parse rate, clustered by session
    per_session: dict[str, dict[int, Prediction]] = {}
    for (sid, item), p in pred_by_key.items():
        per_session.setdefault(sid, {})[item] = p
    def texted(p: Prediction) -> bool:
        return p.mode != "scores_only" and p.parse_status != "scores_only"

    ok = np.array([sum(texted(p) and p.parse_status == "ok" for p in per_session[s].values()) for s in pred_sessions],
                  float)
    tot = np.array([sum(texted(p) for p in per_session[s].values()) for s in pred_sessions], float)
    counts = None
    if n_boot > 0 and len(pred_sessions) >= 2:
        counts, unit = cluster_counts([clusters[s] for s in pred_sessions], n_boot, seed)
        settings["bootstrap_unit"] = "client" if unit == "clients" else "session (one client)"
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
        correlations = dimension_correlations(pred_dims, client, n_boot=n_boot, seed=seed, confidence=confidence,
                                              clusters=clusters)
        missing = [sid for sid in pred_sessions if sid not in client]
        if missing:
            notes.append(f"{len(missing)} predicted session(s) have no client self-report and are not in the "
                         f"correlations.")
    counselor_corr: dict[str, Correlation] = {}
    if client and counselor:
        counselor_corr = dimension_correlations(counselor, client, n_boot=n_boot, seed=seed, confidence=confidence,
                                                what=("counselor", "self-reported"), clusters=clusters)

    # agreement with the curated expert labels
    expert = None
    label_scores = {k: int(lab.score) for k, lab in lab_by_key.items() if lab.score is not None}
    model_scores = {k: int(p.score) for k, p in pred_by_key.items() if p.score is not None}
    if not lab_by_key:
        notes.append("No expert labels: agreement with experts and rationale similarity left out.")
    elif label_scores:
        expert = rater_agreement(label_scores, model_scores, form=form, names=("experts", model_version or "model"),
                                 n_boot=n_boot, seed=seed, confidence=confidence, clusters=clusters)
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
                                languages=[by_id[k[0]].language for k in keys], groups=[clusters[k[0]] for k in keys],
                                similarity=similarity, n_boot=n_boot, seed=seed, confidence=confidence)
        else:
            notes.append("No expert rationale to compare with: rationale similarity left out.")

    return EvaluationReport(model_version, form.id, len(pred_sessions), len(pred_by_key), len(lab_by_key), parse_rate,
                            correlations, counselor_corr, expert, text, notes, settings)
