"""The audit trail for admins: every audited change of the store (labels, submits and reopens,
users, assignments, settings, campaigns, model versions, ...), filtered and exported.

Pure functions over ``Repository.audit`` (no Gradio). A row keeps the entry's time, who, what
(entity and id), the action and which fields changed; the export (JSONL) keeps whole entries
(with the before and after documents; user entries never contain password hashes).
"""
from __future__ import annotations

import json

from care_model.core.errors import ValidationError

from .access import Access

COLUMNS = ("at", "who", "entity", "entity_id", "action", "changed")
MAX_ROWS = 5000


def _changed(entry: dict) -> str:
    before, after = entry.get("before") or {}, entry.get("after") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    keys = sorted(k for k in set(before) | set(after)
                  if k not in ("updated_at", "version", "updated_by") and before.get(k) != after.get(k))
    return ", ".join(keys)


def entries(repo, access: Access, *, session_id: str = "", user: str = "", action: str = "") -> list[dict]:
    """Audit entries, newest first, filtered by session (its labels), by who made them (or the
    user they concern) and by action (substring, e.g. ``submit``, ``reopen``, ``deactivate``)."""
    from store.export import audit_entries

    access.require("admin", action="reading the audit trail")
    return audit_entries(repo, session_id=session_id, user=user, action=action)[::-1]


def rows(repo, access: Access, *, session_id: str = "", user: str = "", action: str = "", limit: int = 500) -> dict:
    """``{"rows": [{at, who, entity, entity_id, action, changed}], "total": n}`` (newest first)."""
    if not 1 <= limit <= MAX_ROWS:
        raise ValidationError(f"limit {limit} is out of range.", f"Ask for 1 to {MAX_ROWS} rows.")
    found = entries(repo, access, session_id=session_id, user=user, action=action)
    return {"rows": [{**{k: str(e.get(k, "")) for k in COLUMNS[:-1]}, "changed": _changed(e)} for e in found[:limit]],
            "total": len(found)}


def export(repo, access: Access, *, session_id: str = "", user: str = "", action: str = "") -> str:
    """The filtered entries as a JSONL file only this admin may download (studio.downloads)."""
    from .downloads import private_path

    found = entries(repo, access, session_id=session_id, user=user, action=action)
    path = private_path(access.username, "audit", "jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for e in found:
            f.write(json.dumps(e, ensure_ascii=False, default=str) + "\n")
    return str(path)
