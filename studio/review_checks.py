"""Checking a reviewer's draft: strict input checks (:func:`clean_draft`) and the checks shown
while an expert works on an item (:func:`checks`; the ``blocking`` ones prevent submitting).
"""
from __future__ import annotations

from care_model.core.errors import ValidationError
from care_model.core.records import CHANGE_REASONS, Label
from care_model.core.wai import load_form
from care_model.text.evidence import TranscriptIndex

from .accept import readable
from .validate import RATIONALE_LIMIT


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def strict_int(value, what: str, fix: str) -> int:
    if type(value) is not int:  # 3.5, True and "4" are refused, not rounded or parsed
        raise ValidationError(f"{what} must be a whole number, not {type(value).__name__} {value!r:.40}.", fix)
    return value


def clean_draft(draft: dict, n_turns: int | None = None) -> dict:
    """Check a draft from the UI or the API: strict types (no coercion), the score on the scale,
    the rationale a string within :data:`studio.validate.RATIONALE_LIMIT`, known reasons."""
    score = draft.get("score")
    if score is not None:
        strict_int(score, "The score", "Send a whole number from 1 to 5 (or null to clear it).")
        load_form().check_score(score)
    evidence = [strict_int(e, f"Evidence turn {e!r:.40}", "Pick turns by their numbers.")
                for e in draft.get("evidence") or []]
    rationale = draft.get("rationale")
    if type(rationale) is not str:
        raise ValidationError(f"The rationale must be text, not {type(rationale).__name__}.",
                              "Send a string (empty for none).")
    if len(rationale) > RATIONALE_LIMIT:
        raise ValidationError(f"The rationale is {len(rationale):,} characters; the limit is {RATIONALE_LIMIT:,}.",
                              f"Shorten it to {RATIONALE_LIMIT:,} characters or fewer.")
    reasons = draft.get("change_reasons") or []
    bad = [r for r in reasons if type(r) is not str or r not in CHANGE_REASONS]
    if bad:
        raise ValidationError(f"Unknown change reason(s) {bad!r:.200}.", f"Use {', '.join(CHANGE_REASONS)}.")
    return {"score": score, "rationale": rationale, "evidence": sorted(set(evidence)),
            "change_reasons": list(dict.fromkeys(reasons))}


def same_content(label: Label | dict | None, draft: dict) -> bool:
    if label is None:
        return False
    get = label.get if isinstance(label, dict) else (lambda k: getattr(label, k))
    return (get("score") == draft["score"] and (get("rationale") or "") == draft["rationale"]
            and sorted(get("evidence") or []) == sorted(draft["evidence"])
            and list(get("change_reasons") or []) == list(draft["change_reasons"]))


def checks(draft: dict, pred: dict | None, index: TranscriptIndex | None, *, saved: bool,
           score_locked: bool = False) -> list[dict]:
    """Problems of one item as the expert works: ``blocking`` ones prevent submitting.
    ``score_locked`` (client-anchored: the score is the client's, fixed): no check about the score
    differing from the model's, since the expert cannot change it."""
    out = []

    def add(code, message, blocking=True):
        out.append({"code": code, "message": message, "blocking": blocking})

    if not saved:
        add("unreviewed", "Not reviewed yet: confirm the rationale (key c) or edit it." if score_locked
            else "Not reviewed yet: set a score (or accept the model's) and save.")
    if draft.get("score") is None:
        add("no_score", "No score chosen.")
    if not _norm(draft.get("rationale")):
        add("empty_rationale", "The rationale is empty.")
    if (not score_locked and pred and pred.get("score") is not None and draft.get("score") is not None
            and draft["score"] != pred["score"]
            and _norm(draft.get("rationale")) == _norm(pred.get("rationale"))):
        add("rationale_untouched",
            f"Score changed from the model's {pred['score']} to {draft['score']} but the rationale is still the "
            "model's.")
    if index is not None and _norm(draft.get("rationale")):
        for quote in index.link(draft["rationale"]).unsupported:
            add("quote_not_found", f"Not in the transcript: \u201c{quote}\u201d")
    if saved and not score_locked and readable(pred) and not draft.get("change_reasons") and not (
            draft.get("score") == pred.get("score") and _norm(draft.get("rationale")) == _norm(pred.get("rationale"))):
        add("no_reason", "Changed from the model's suggestion: say why (change reasons).", blocking=False)
    return out


def blocking(check_list: list[dict]) -> list[str]:
    return [c["message"] for c in check_list if c["blocking"]]
