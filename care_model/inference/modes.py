"""The Predictor's two extra modes over the engine: score-conditioned drafts and calibration.

* :func:`draft_session` -- rationales written for target scores (:mod:`care_model.text.drafting`),
  all target items of a session in one shared-prefix batch, through the same engine and decoding
  as the model's own predictions; returned as ``mode="draft"`` predictions.
* :func:`calibrate_predictions` -- contextual calibration (:mod:`care_model.text.calibration`): the
  content-free distributions of the session's form/language/perspective (computed once per model
  version and cached), then ``probs_calibrated`` and the calibrated ``expected_score`` on each
  prediction.
* :func:`draft_into_store` -- the ``--draft-for`` side of the predict command.
* :func:`grounding_rows` -- grounded decoding's row states for a session's items (predictions and
  drafts); :func:`calibrated_score_rule` makes them write the calibrated argmax.

Both run through the Predictor's backend (``Predictor.run_prompt``: our engine, vLLM or a server), so
drafts and calibration work the same under ``--backend vllm`` and ``--backend openai``. torch is only
used through the engine.
"""
from __future__ import annotations

import hashlib
import sys
from typing import Iterable, Mapping

from care_model.text.calibration import CalibrationCache, cache_key, calibrate, content_free_session, expected_score
from care_model.text.drafting import build_draft_prompt, check_targets, draft_rationale, targets_for
from care_model.core.errors import CareError, ValidationError
from care_model.text.evidence import TranscriptIndex
from care_model.text.grounding import decoded_evidence
from care_model.inference.backends.common import FREE_DECODING, to_predictions
from care_model.core.records import DRAFT_MODE, DRAFT_SOURCES, Prediction, Session
from care_model.core.wai import load_form

_CACHE: CalibrationCache | None = None


def calibration_cache() -> CalibrationCache:
    """The process-wide cache, backed by ``calibration.json`` in the model cache folder."""
    global _CACHE
    if _CACHE is None:
        from care_model.inference.model_files import cache_dir

        _CACHE = CalibrationCache(cache_dir() / "calibration.json")
    return _CACHE


# ---------------------------------------------------------------------- calibration
def content_free_probs(predictor, form, language: str, cache: CalibrationCache | None = None) -> dict[int, list[float]]:
    """``{item: P(option)}`` for the content-free transcript (cached per model version, form,
    language, perspective and the exact content-free prompt)."""
    session = content_free_session(form.id, language)
    prompt = predictor.session_prompt(session)
    digest = hashlib.sha256(prompt.prompt_hash.encode()).hexdigest()[:12]
    key = cache_key(predictor.model_version, form.id, language, predictor.config.perspective, digest)

    def compute():  # through the predictor's backend (the engine or vLLM)
        outs = predictor.run_prompt(prompt, max_new_tokens=1, scores_only=True, language=language)
        return {item: list(out.option_probs) for item, out in outs.items()}

    return (cache or calibration_cache()).get(key, compute)


def calibrate_predictions(predictor, session: Session, preds: list[Prediction], *,
                          cache: CalibrationCache | None = None) -> list[Prediction]:
    """Set ``probs_calibrated``, ``calibration`` and the calibrated ``expected_score`` in place."""
    form = load_form(session.form)
    prior = content_free_probs(predictor, form, session.language, cache)
    for p in preds:
        if not p.probs or p.item not in prior:
            continue
        cal = calibrate(p.probs, prior[p.item])
        p.probs_calibrated = [round(x, 6) for x in cal]
        p.calibration = "content-free"
        p.expected_score = round(expected_score(cal, form.scale.points), 4)
    return preds


# ---------------------------------------------------------------------- drafting
def draft_session(predictor, session: Session, targets: Mapping, *, source: str = "client",
                  progress=None) -> list[Prediction]:
    """Rationales for ``targets`` ({item: score}) of ``session``, one ``mode="draft"`` prediction
    per target item (in item order), each recording ``drafted_for_score`` and ``draft_source``."""
    if source not in DRAFT_SOURCES:
        raise ValidationError(f"Unknown draft source {source!r}.", f"Use one of {', '.join(DRAFT_SOURCES)}.")
    report = progress or (lambda f, m: None)
    report(0.0, "loading the model" if not predictor.loaded else "building prompts")
    form = load_form(session.form)
    targets = check_targets(targets, form)
    config = predictor.config
    prompt = predictor.session_prompt(session, list(targets), builder=build_draft_prompt, targets=targets)
    # the same quote grounding as predictions; the score line is the target, whatever the model prefers
    rows, warnings = grounding_rows(predictor.decoder(), session, prompt.suffixes, config)
    for item, row in rows.items():
        row.fixed_score = targets[item]
    # items without a row (rows: "grounded")
    decoding = FREE_DECODING if config.backend in ("vllm", "openai") else "free"
    outputs = predictor.run_prompt(prompt, language=session.language, constraints=rows or None,
                                   progress=lambda f, m: report(0.02 + 0.96 * f, m))
    preds = to_predictions(session, prompt, outputs, model_version=predictor.model_version, config=config,
                           scores_only=False, decoding=decoding, rows=rows, extra_warnings=warnings)
    index = TranscriptIndex(session.turns)
    for pred in preds:
        rationale = draft_rationale(pred.raw_output, session.language)
        ev = index.link(rationale) if rationale else None
        pred.score = pred.drafted_for_score = targets[pred.item]
        pred.mode, pred.draft_source, pred.rationale = DRAFT_MODE, source, rationale
        pred.probs, pred.expected_score = None, None  # the score was given, not predicted
        pred.evidence, pred.unsupported_quotes = (ev.turn_indices, ev.unsupported) if ev else ([], [])
        if ev and pred.item in rows:  # grounded: the turns the quotes were decoded from
            pred.evidence = decoded_evidence(rows[pred.item])
        pred.parse_status = "ok" if rationale else "failed"
        pred.parse_error = "" if rationale else "The model wrote no reason for the given score."
        pred.warnings = [w for w in pred.warnings if "probability on an option number" not in w]
    report(1.0, "done")
    return preds


def draft_into_store(repo, predictor, session_ids: Iterable[str] | None, source: str, *,
                     show_progress: bool = True) -> dict:
    """``predict --draft-for SOURCE``: a draft per item that has a target, stored next to (never
    instead of) the model's own suggestions; items without a target are skipped with a message."""
    from tqdm import tqdm

    ids = list(session_ids) if session_ids else repo.session_ids()
    counts = {"model_version": predictor.model_version, "draft_for": source, "sessions": 0, "drafts": 0,
              "skipped_items": 0, "no_reason": 0}
    for sid in tqdm(ids, desc=f"drafting for the {source} score", unit="session", disable=not show_progress,
                    file=sys.stderr):
        session = repo.get_session(sid)
        targets, messages = targets_for(session, source, repo.labels(sid) if source == "expert" else ())
        for msg in messages:
            print(f"{sid}: {msg}", file=sys.stderr)
        counts["skipped_items"] += len(messages)
        if not targets:
            continue
        preds = draft_session(predictor, session, targets, source=source)
        repo.add_predictions(preds)
        counts["sessions"] += 1
        counts["drafts"] += len(preds)
        counts["no_reason"] += sum(p.parse_status == "failed" for p in preds)
    return counts


def grounding_rows(model, session: Session, items: Iterable, config) -> tuple[dict, list[str]]:
    """Grounded decoding's row states for ``items`` ({} with free decoding): each item may quote its
    ``config.candidate_turns`` most relevant client turns, and as many counselor turns after a lead-in
    naming the counselor (:mod:`care_model.inference.relevance`). ``model``:
    :meth:`~care_model.inference.predictor.Predictor.decoder` (the engine or the vLLM backend); ``config``: its
    :class:`~care_model.inference.predictor.PredictConfig` (``decoding``, ``candidate_turns``, ``perspective``)."""
    if config.decoding == "free":
        return {}, []
    if config.decoding != "grounded":
        raise CareError(f"Unknown decoding {config.decoding!r}.", "Use 'grounded' or 'free'.")
    if int(config.candidate_turns) < 1:
        raise CareError(f"candidate_turns must be at least 1 (got {config.candidate_turns}).",
                        "Pass --candidate-turns 8 (or another positive number).")
    from care_model.inference.relevance import candidate_turns
    from care_model.text.grounding import GroundingConfig, build_rows
    from care_model.text.grounding_vocab import vocabulary_for

    form = load_form(session.form)
    texts = {i: form.item_text(i, config.perspective, session.language) for i in items}
    cands, warnings = candidate_turns(session, texts, k=config.candidate_turns)
    # a quote after "the counselor says" continues one of the item's most relevant counselor turns
    # (care_model.text.grounding: "Whose words")
    if any(t.speaker == "counselor" and str(t.text).strip() for t in session.turns):
        others, _ = candidate_turns(session, texts, k=config.candidate_turns, speaker="counselor")
        cands = {i: list(c) + [t for t in others.get(i, []) if t not in c] for i, c in cands.items()}
    vocab = vocabulary_for(model.tokenizer, model.stop_token_ids)
    rows = build_rows(vocab, session.turns, cands, model.option_token_ids(session.language),
                      language=session.language, config=GroundingConfig(k=config.candidate_turns))
    return rows, warnings


def calibrated_score_rule(predictor, session: Session, rows: dict) -> None:
    """With contextual calibration, a grounded row writes the argmax of the *calibrated* distribution."""
    from care_model.text.calibration import CalibratedArgmax

    form = load_form(session.form)
    prior, points = content_free_probs(predictor, form, session.language), form.scale.points
    for item, row in rows.items():
        if item in prior:
            row.score_rule = CalibratedArgmax(prior[item], points)
