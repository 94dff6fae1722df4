"""Accepting the model's suggestions (pure: no Gradio, no storage).

* :func:`readable`          did the model give an answer the expert can accept (a score, parsed)?
* :func:`accepted_draft`    the suggestion as the expert's answer
* :func:`equals_suggestion` does a draft equal the suggestion (recorded on the label as
                            ``accepted_suggestion``)?
* :func:`candidates`        the unreviewed items whose suggestion passes the checks, for
                            "Accept all" (which asks first, listing them)
"""
from __future__ import annotations

from care_model.core.errors import ValidationError


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def readable(pred: dict | None) -> bool:
    """True if the model gave a readable suggestion: a score that was parsed from its answer."""
    return bool(pred) and pred.get("score") is not None and pred.get("parse_status") != "failed"


def accepted_draft(pred: dict | None, reasons=()) -> dict:
    """The model's suggestion as the expert's answer (the "accept" shortcut)."""
    if not readable(pred):
        raise ValidationError("There is no readable model suggestion to accept for this item.",
                              "Score it yourself, or predict the session first.")
    return {"score": pred["score"], "rationale": pred.get("rationale") or "",
            "evidence": sorted(set(pred.get("evidence") or [])), "change_reasons": list(reasons)}


def equals_suggestion(draft: dict, pred: dict | None) -> bool:
    """The draft is the suggestion unchanged (score, rationale up to spacing, evidence; no reason)."""
    return (readable(pred) and draft.get("score") == pred["score"]
            and _norm(draft.get("rationale")) == _norm(pred.get("rationale"))
            and sorted(set(draft.get("evidence") or [])) == sorted(set(pred.get("evidence") or []))
            and not draft.get("change_reasons"))


def candidates(items: list[dict], check) -> list[dict]:
    """Items (``{"item", "state", "prediction", ...}``) still unreviewed whose suggestion is
    readable and passes ``check(draft, pred)`` (a list of check dicts) with nothing blocking.
    Returns ``[{"item", "score", "draft"}]`` in item order."""
    out = []
    for it in sorted(items, key=lambda x: x["item"]):
        pred = it.get("prediction")
        if it.get("state") != "unreviewed" or not readable(pred):
            continue
        draft = accepted_draft(pred)
        if any(c["blocking"] for c in check(draft, pred)):
            continue
        out.append({"item": it["item"], "score": pred["score"], "draft": draft})
    return out
