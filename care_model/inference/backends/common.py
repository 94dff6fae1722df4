"""What every backend shares: the prompt from the project's prompt code, and raw outputs ->
predictions (parsing, evidence linking, option probabilities -> expected score).

Evidence: under grounded decoding a prediction's ``evidence`` is the turns its quotes were decoded
from (:func:`care_model.text.grounding.decoded_evidence`); under free decoding each quote and
``[12]`` reference is looked up in the transcript (:class:`care_model.text.evidence.TranscriptIndex`).

Pure module: no torch, no vllm, no tinydb (a tokenizer object is passed in).
"""
from __future__ import annotations

import uuid
from typing import Iterable, Mapping

from care_model.text.evidence import TranscriptIndex
from care_model.text.grounding import decoded_evidence
from care_model.text.parse import parse_answer
from care_model.text.prompt import SessionPrompt, build_session_prompt
from care_model.core.records import Prediction, Session, now_iso
from care_model.core.wai import load_form

LOW_OPTION_MASS = 0.2
# free greedy decoding, then the quote check (care_model.text.evidence) marks quotes not in the transcript
FREE_DECODING = "free+quote-check"


def build_prompt(tokenizer, session: Session, config, *, model_max: int | None = None,
                 items: Iterable | None = None, builder=build_session_prompt, **extra) -> SessionPrompt:
    """The session's item prompts, rendered with the model's chat template and fitted to
    ``config.max_prompt_tokens`` (or the model's own limit when smaller). ``builder``:
    :func:`care_model.text.prompt.build_session_prompt`, or another builder with the same arguments
    (e.g. care_model.text.drafting.build_draft_prompt with ``targets=``)."""
    limit = config.max_prompt_tokens
    if model_max:
        limit = min(limit, int(model_max))
    return builder(
        session,
        render_chat=lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
        count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        max_prompt_tokens=limit, reserve_tokens=config.max_new_tokens,
        perspective=config.perspective, items=items, **extra)


def to_predictions(session: Session, prompt: SessionPrompt, outputs: Mapping, *, model_version: str, config,
                   scores_only: bool, decoding: str = "free", rows: Mapping | None = None,
                   extra_warnings: Iterable[str] = ()) -> list[Prediction]:
    """One :class:`Prediction` per item of ``outputs`` (``{item: ItemOutput}``), in item order.

    ``decoding`` labels items decoded without constraints ("free"; the vLLM backend:
    "free+quote-check"); items with a grounded-decoding row in ``rows`` are labelled "grounded" and
    keep the row's candidate turns. ``extra_warnings`` (e.g. grounding's) go on every prediction.
    """
    rows = rows or {}
    form = load_form(session.form)
    index = TranscriptIndex(session.turns)
    stamp = now_iso()
    preds = []
    for item in sorted(outputs):
        out = outputs[item]
        warnings = list(prompt.warnings) + list(extra_warnings)
        if out.option_mass < LOW_OPTION_MASS:
            warnings.append(f"the model put only {out.option_mass:.0%} of its probability on an option number "
                            "at the score position; the expected score is less reliable")
        pred = Prediction(
            id=uuid.uuid4().hex, session_id=session.id, item=item, model_version=model_version,
            score=out.argmax_score, expected_score=round(out.expected_score, 4),
            probs=[round(p, 6) for p in out.option_probs], raw_output=out.text,
            prompt_hash=prompt.item_hash(item), mode="scores_only" if scores_only else "full",
            perspective=config.perspective, warnings=warnings, created_at=stamp,
            parse_status="scores_only" if scores_only else "ok",
            decoding="grounded" if item in rows else decoding)
        if item in rows:
            pred.candidate_turns = list(rows[item].candidate_turns)
            pred.truncated = rows[item].truncated or not out.finished
        if not scores_only:
            parsed = parse_answer(out.text, form=form, language=session.language)
            pred.score, pred.rationale = parsed.score, parsed.rationale
            if not parsed.ok:
                pred.parse_status, pred.parse_error = "failed", parsed.error
            else:
                warnings.extend(parsed.warnings)
                if not out.finished or pred.truncated:
                    pred.truncated = True
                    warnings.append(f"the rationale was cut at {config.max_new_tokens} tokens")
            if pred.rationale:
                ev = index.link(pred.rationale)  # free decoding: search the transcript for each quote
                pred.evidence, pred.unsupported_quotes = ev.turn_indices, ev.unsupported
                if item in rows:  # grounded: the turns the quotes were decoded from, not a search
                    pred.evidence = decoded_evidence(rows[item])
        preds.append(pred)
    return preds
