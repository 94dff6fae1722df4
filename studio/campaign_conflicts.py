"""Raters never rate themselves: who wrote a curated rationale, and rater picks that skip them.

A campaign target's ``expert`` output is a curated label (``source.label_id``). Its *authors*
are everyone whose save changed that label's rationale (the label's audit trail) and, for an
independently coded label, its coder. :func:`pick_raters` gives a target its ``overlap`` raters in
the campaign's rotation, skipping its authors; when too few others are left it refuses
(:class:`~care_model.core.errors.ValidationError` naming the target and the raters), unless the admin
insists (``allow_self_rating``): then the authors rate it and the campaign records who
(``self_rating``) and the results say so. Pure functions (no Gradio).
"""
from __future__ import annotations

from care_model.core.errors import ValidationError

EXPERT = "expert"


def rationale_authors(repo, session_id: str, label_id: str) -> set[str]:
    """Users who wrote (changed the rationale of) the label ``label_id``."""
    out = set()
    for e in repo.audit(session_id=session_id):
        if e.get("entity_id") != label_id:
            continue
        before, after = e.get("before") or {}, e.get("after") or {}
        if (after.get("rationale") or "") != (before.get("rationale") or ""):
            out.add(e.get("who"))
        annotator = after.get("annotator") or ""
        if annotator and not annotator.startswith("@"):  # an independent coder's own slot
            out.add(annotator)
    return {a for a in out if a}


def target_authors(repo, target: dict) -> set[str]:
    src = (target.get("outputs", {}).get(EXPERT) or {}).get("source") or {}
    return rationale_authors(repo, target["session_id"], src["label_id"]) if src.get("label_id") else set()


def pick_raters(order: list[str], start: int, overlap: int, authors: set[str], *, target: str,
                allow_self_rating: bool) -> tuple[list[str], list[str]]:
    """``overlap`` raters from ``order`` (rotating from ``start``), authors last; returns (raters,
    the authors among them). Refuses when an author would have to rate, unless allowed."""
    rotated = [order[(start + j) % len(order)] for j in range(len(order))]
    others = [r for r in rotated if r not in authors]
    who = (others + [r for r in rotated if r in authors])[:overlap]
    self_raters = sorted(r for r in who if r in authors)
    if self_raters and not allow_self_rating:
        raise ValidationError(
            f"Target {target}: {', '.join(self_raters)} wrote its curated rationale and would rate it "
            f"(only {len(others)} other rater(s) for an overlap of {overlap}).",
            "Add raters who did not write it, lower the overlap, leave out 'expert' or those sessions, "
            "or allow self-rating (recorded in the campaign and its results).")
    return who, self_raters
