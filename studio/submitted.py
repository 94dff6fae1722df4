"""Submitted sessions are read-only until their submitter or an admin reopens them.

A session's coding slot is *submitted* when every item of the form has a label with status
``submitted`` (:func:`studio.review.submit_session` submits all at once). Saving an item of it is
refused (:func:`read_only`); :func:`reopen_session` turns every item back into a draft, each
change audited with the action ``reopen``. Pure functions over the repository (no Gradio).
"""
from __future__ import annotations

from dataclasses import replace

from care_model.core.errors import PermissionDenied, ValidationError
from care_model.core.wai import load_form

from .access import Access, require_session


def submitter(labels, item_ids) -> str | None:
    """Who submitted the session (every item of the slot submitted), else None."""
    by_item = {lab.item: lab for lab in labels}
    if not item_ids or any(i not in by_item or by_item[i].status != "submitted" for i in item_ids):
        return None
    return by_item[item_ids[-1]].updated_by


def may_reopen(access: Access, submitted_by: str | None) -> bool:
    return access.role == "admin" or access.username == submitted_by


def read_only(session_id: str, submitted_by: str | None) -> PermissionDenied:
    return PermissionDenied(f"Session {session_id!r} was submitted by {submitted_by} and is read-only.",
                            f"Reopen it first (/reopen_session; {submitted_by} or an admin may), then edit it.")


def reopen_session(repo, access: Access, session_id: str) -> dict:
    """Make a submitted session editable again: every item of the user's slot becomes a draft,
    each change audited as ``reopen``. Only its submitter or an admin may."""
    sa = require_session(repo, access, session_id, edit=True)
    form = load_form(repo.get_session(sa.session_id).form)
    labels = repo.labels(sa.session_id, annotator=sa.slot)
    who = submitter(labels, form.item_ids)
    if who is None:
        raise ValidationError(f"Session {sa.session_id!r} is not submitted.", "Edit it; there is nothing to reopen.")
    if not may_reopen(access, who):
        raise PermissionDenied(f"{access.username} may not reopen {sa.session_id!r}: {who} submitted it.",
                               f"Ask {who} or an admin to reopen it.")
    saved = repo.save_labels([(replace(lab, status="draft"), lab.version) for lab in labels],
                             actor=access.username, action="reopen")
    return {"status": "reopened", "session_id": sa.session_id, "submitted_by": who,
            "versions": {str(lab.item): lab.version for lab in saved},
            "message": f"Reopened {sa.session_id} (submitted by {who}); its items are drafts again."}
