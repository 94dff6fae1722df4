# PLACEHOLDER: replaced by branch access
"""De-identification review of sessions before their transcripts leave the store (placeholder).

The access-hardening work (branch ``access``) builds the real review; until it is merged this
module has its interface only: nothing is stored, and :func:`require_reviewed` always refuses, so
no transcript is ever published unreviewed.
"""
from __future__ import annotations

from care_model.core.errors import CareError


class DeidentificationRequired(CareError):
    """Transcripts were asked for, but their sessions have no de-identification review."""


def scan_sessions(repo, session_ids=None, *, actor: str) -> list[dict]:
    """The review's automatic scan (placeholder: finds nothing, stores nothing)."""
    return []


def record_review(repo, session_id: str, *, reviewer: str, decision: str, note: str = "") -> dict:
    """Record a reviewer's decision (placeholder: refuses, the review is not built yet)."""
    raise DeidentificationRequired("The de-identification review is not built in this version, so no review can be "
                                   "recorded.", "Update to the version with the access-hardening work.")


def require_reviewed(repo, session_ids, *, override_by=None) -> None:
    """Raise unless every session passed the de-identification review (placeholder: always raises)."""
    ids = sorted(session_ids)
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    raise DeidentificationRequired(
        f"Transcripts of {len(ids)} session(s) ({shown}) cannot be published: the de-identification review that "
        "must clear them first is not built in this version.",
        "Publish without --include-transcripts (scores, rationales and evidence turn numbers only), or update to "
        "the version with the de-identification review and review these sessions.")
