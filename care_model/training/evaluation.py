"""Candidate vs baseline on the same held-out sessions: the evaluation step of a retraining run.

Both versions predict the run's validation sessions (never seen in training; split by client)
through :class:`care_model.inference.predictor.Predictor` -- the inference code itself: the same prompt, the
same transcript truncation (``max_prompt_tokens``; ``answer_reserve_tokens`` tokens kept for the
answer), the shared-prefix engine, greedy decoding, the parser and evidence linking. With
``eval_scores_only`` (the CPU recipe) the score is the most probable option at the first
answer position and no rationale is written. Every prediction names the version that made it.

Metrics: :func:`care_model.stats.evaluate.evaluate_predictions` (the paper's protocol: per dimension
Pearson, Spearman and MSE of predicted dimension means against the client's self-report;
agreement with the curated labels; parse rate; rationale similarity when rationales are
written) and :func:`care_model.stats.evaluation_report.compare_reports` for candidate vs baseline.

The predictions are returned, not stored: the training process never opens the store.
"""
from __future__ import annotations

import gc
import time

from care_model.core.records import ADJUDICATED, Label, now_iso


def curated_as_labels(curated: dict) -> list[Label]:
    """Snapshot labels as submitted :class:`Label` records (one per session and item) for evaluate."""
    return [Label(session_id=lab.session_id, item=int(lab.item), annotator=ADJUDICATED, score=int(lab.score),
                  rationale=lab.rationale, evidence=list(lab.evidence), status="submitted")
            for labs in curated.values() for lab in labs]


def predictor_config(config):
    """Inference settings matching the run: the same prompt budget, answer reserve, decoding and backend."""
    from care_model.inference.predictor import PredictConfig

    return PredictConfig(max_new_tokens=int(config.answer_reserve_tokens), decoding=config.decoding,
                         max_prompt_tokens=int(config.max_prompt_tokens), perspective=config.perspective,
                         calibration=getattr(config, "calibration", "none"),
                         backend=getattr(config, "predict_backend", "engine"),
                         base_url=getattr(config, "predict_base_url", ""),
                         served_model=getattr(config, "predict_served_model", ""),
                         api_key_env=getattr(config, "predict_api_key_env", ""),
                         max_concurrency=int(getattr(config, "predict_max_concurrency", 16)))


def predict_version(spec, sessions: list, config, *, progress=None) -> tuple[list, str, float]:
    """(predictions, version id, seconds) of one model version on ``sessions``; the model is freed after."""
    from care_model.inference.models import clear_model_cache
    from care_model.inference.predictor import Predictor

    t0 = time.perf_counter()
    predictor = Predictor(spec, predictor_config(config))
    preds = []
    try:
        for n, session in enumerate(sessions):
            preds += predictor.predict_session(session, scores_only=config.eval_scores_only)
            if progress:
                progress(n + 1, len(sessions))
    finally:
        predictor.close()  # vLLM workers stop here (the next fold trains in this process's memory)
        del predictor
        clear_model_cache()
        gc.collect()
    return preds, preds[0].model_version if preds else "", time.perf_counter() - t0


def evaluate_report(predictions, sessions: dict, curated: dict, config) -> dict:
    """The paper's report on the generated scores, plus the dimension correlations of the expected
    scores (probability-weighted, continuous: they move before the most probable option does)."""
    from care_model.stats.evaluate import evaluate_predictions

    report = evaluate_predictions(list(sessions.values()), predictions, curated_as_labels(curated),
                                  n_boot=config.eval_n_boot, seed=config.seed,
                                  with_text_metrics=not config.eval_scores_only).to_dict()
    expected = evaluate_predictions(list(sessions.values()), predictions, (), n_boot=config.eval_n_boot,
                                    seed=config.seed, score_field="expected_score", with_text_metrics=False)
    report["expected_score_correlations"] = expected.to_dict()["correlations"]
    return report


def headline(report: dict) -> dict:
    """The few numbers a person looks at first: per dimension Pearson and MSE vs self-report, and
    agreement with the curated labels (exact, within one, quadratic kappa, MAE)."""
    out = {}
    for dim, c in (report.get("correlations") or {}).items():
        out[f"{dim}.pearson"] = c["pearson"]["value"]
        out[f"{dim}.mse"] = c["mse"]["value"]
    for dim, c in (report.get("expected_score_correlations") or {}).items():
        out[f"{dim}.pearson_expected"] = c["pearson"]["value"]
        out[f"{dim}.mse_expected"] = c["mse"]["value"]
    overall = ((report.get("expert_agreement") or {}).get("overall")) or {}
    for m in ("exact", "within_one", "qwk", "mae"):
        if m in overall:
            out[f"experts.{m}"] = overall[m]["value"]
    return out


def evaluate_candidate(candidate_spec, baseline_spec, sessions: dict, curated: dict, config, *, progress=None,
                       training=None) -> dict:
    """Predict ``sessions`` with both versions and compare (see the module docstring).

    Returns ``{"sessions", "scores_only", "versions": {"candidate"|"baseline": {"version_id",
    "report", "headline", "seconds"}}, "comparison", "predictions": {name: [dicts]}}``; the candidate's
    entry also has ``calibration``: its own choice on these sessions (care_model.training.calibration_choice;
    ``training``: the training sessions that fit the rule's mean baseline).
    """
    from care_model.training.calibration_choice import candidate_choice
    from care_model.stats.evaluation_report import compare_reports

    ordered = [sessions[s] for s in sorted(sessions)]
    out = {"sessions": sorted(sessions), "scores_only": config.eval_scores_only, "versions": {}, "predictions": {},
           "created_at": now_iso()}
    for name, spec in (("candidate", candidate_spec), ("baseline", baseline_spec)):
        if spec is None:
            continue
        report_progress = (lambda i, n, name=name: progress(name, i, n)) if progress else None
        preds, vid, seconds = predict_version(spec, ordered, config, progress=report_progress)
        report = evaluate_report(preds, sessions, curated, config)
        out["versions"][name] = {"version_id": vid, "report": report, "headline": headline(report),
                                 "seconds": round(seconds, 2)}
        if name == "candidate":
            out["versions"][name]["calibration"] = candidate_choice(vid, preds, ordered, training=training,
                                                                    n_boot=config.eval_n_boot, seed=config.seed)
        out["predictions"][name] = [p.to_dict() for p in preds]
    if len(out["versions"]) == 2:
        out["comparison"] = compare_reports(out["versions"]["candidate"]["report"],
                                            out["versions"]["baseline"]["report"])
    return out
