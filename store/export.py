"""Export a store as JSONL: one session per line with all its predictions and labels; and the
audit trail (:func:`export_audit`), one entry per line.

The file is the ``jsonl`` import format, so ``import --format jsonl`` reads it back losslessly
(every field of every record: ids, versions, statuses, timestamps). Written to a temporary file
and renamed, so a failed export never leaves half a file behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from care_model.core.errors import CareError, ImportFormatError, ValidationError
from care_model.core.records import Label, Prediction, Session

from .files import replace_file
from .repository import Repository


def session_lines(repo: Repository, session_ids: Iterable[str] | None = None) -> Iterable[str]:
    for sid in session_ids if session_ids is not None else repo.session_ids():
        doc = repo.get_session(sid).to_dict()
        doc["predictions"] = [p.to_dict() for p in repo.predictions(sid, history=True)]
        doc["labels"] = [lab.to_dict() for lab in repo.labels(sid)]
        yield json.dumps(doc, ensure_ascii=False)


def export_jsonl(repo: Repository, out: Path | str, session_ids: Iterable[str] | None = None) -> int:
    """Write the export to ``out``; returns the number of sessions written."""
    lines = list(session_lines(repo, session_ids))
    out = Path(out)
    replace_file(out, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    os.chmod(out, 0o600)  # transcripts are health data: readable by the owner only
    return len(lines)


def audit_entries(repo: Repository, *, session_id: str = "", user: str = "", action: str = "") -> list[dict]:
    """Audit entries, oldest first, filtered by session (its labels), by who made them (or the user
    account they concern) and by action (a case-insensitive substring, e.g. ``submit``)."""
    session_id, user, action = session_id.strip(), user.strip(), action.strip().casefold()
    if session_id and not repo.has_session(session_id):
        raise ValidationError(f"No session {session_id!r} in the store.",
                              "Check the id, or leave the session filter out.")
    out = repo.audit(session_id=session_id or None)
    if user:
        out = [e for e in out if e.get("who") == user or (e.get("entity") == "user" and e.get("entity_id") == user)]
    if action:
        out = [e for e in out if action in str(e.get("action", "")).casefold()]
    return out


def export_audit(repo: Repository, out: Path | str, **filters) -> int:
    """Write the (filtered) audit trail as JSONL to ``out`` (``"-"``: standard output), owner-only;
    returns the number of entries. Entries hold whole before/after documents (never password hashes)."""
    import sys

    lines = [json.dumps(e, ensure_ascii=False, default=str) for e in audit_entries(repo, **filters)]
    data = "\n".join(lines) + ("\n" if lines else "")
    if str(out) == "-":
        sys.stdout.write(data)
    else:
        replace_file(Path(out), data.encode("utf-8"))
        os.chmod(out, 0o600)
    return len(lines)



def records_from_lines(lines: Iterable[str], source: str):
    sessions, predictions, labels = [], [], []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            sess = Session.from_dict({k: v for k, v in d.items() if k not in ("predictions", "labels")})
            sess.validate()
            preds = [Prediction.from_dict(p) for p in d.get("predictions") or []]
            labs = [Label.from_dict(lab) for lab in d.get("labels") or []]
        except CareError as exc:
            raise ImportFormatError(f"{source}, line {no}: {exc.problem}", exc.fix) from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise ImportFormatError(f"{source}, line {no}: not a session record ({exc}).",
                                    "Each line must be a Session.to_dict() object with optional "
                                    "'predictions' and 'labels' lists.") from exc
        sessions.append(sess)
        for rec in preds + labs:  # records nested under a session belong to it
            rec.session_id = rec.session_id or sess.id
        predictions += preds
        labels += labs
    if not sessions:
        raise ImportFormatError(f"{source} holds no sessions.", "Import or export some sessions first.")
    return sessions, predictions, labels
