"""Admin actions as pure functions: users, assignments, import (with background predictions), export.

Each takes the :class:`~studio.access.Access` of the person asking and refuses anyone but an
admin (:class:`~care_model.core.errors.PermissionDenied`) before touching anything.
"""
from __future__ import annotations


from care_model.core.errors import ValidationError

from .access import Access


def _admin(access: Access, action: str) -> None:
    access.require("admin", action=action)


def list_users(repo, access: Access) -> list[dict]:
    _admin(access, "listing users")
    return [{"username": u["username"], "role": u["role"], "active": u.get("active", True)} for u in repo.users()]


def add_user(repo, access: Access, username: str, password: str, role: str) -> dict:
    _admin(access, "adding users")
    u = repo.add_user(username, password, role, actor=access.username)
    return {"username": u["username"], "role": u["role"]}


def set_role(repo, access: Access, username: str, role: str) -> dict:
    _admin(access, "changing roles")
    u = repo.set_role(username, role, actor=access.username)
    return {"username": u["username"], "role": u["role"]}


def set_active(repo, access: Access, username: str, active: bool) -> dict:
    """Deactivate (or reactivate) a user: a deactivated user can neither log in nor call the API
    (their open pages are refused at the next request). Audited. An admin cannot lock themself out."""
    _admin(access, "activating or deactivating users")
    if not active and username == access.username:
        raise ValidationError("You cannot deactivate your own account.", "Ask another admin to do it.")
    u = repo.set_active(username, bool(active), actor=access.username)
    return {"username": u["username"], "role": u["role"], "active": u["active"]}


def reset_password(repo, access: Access, username: str, password: str) -> dict:
    """Set a new password for a user (audited without the hash); their old password stops working."""
    _admin(access, "resetting passwords")
    u = repo.set_password(username, password, actor=access.username)
    return {"username": u["username"], "role": u["role"], "active": u.get("active", True)}


def parse_ids(text_or_list) -> list[str]:
    if isinstance(text_or_list, (list, tuple)):
        return [str(s).strip() for s in text_or_list if str(s).strip()]
    return [s for s in (text_or_list or "").replace(",", " ").split() if s]


def assign_sessions(repo, access: Access, session_ids, usernames, mode: str = "shared") -> dict:
    _admin(access, "assigning sessions")
    sids, users = parse_ids(session_ids), parse_ids(usernames)
    if not sids or not users:
        raise ValidationError("Nothing to assign.", "Give at least one session id and one user.")
    n = repo.assign(sids, users, actor=access.username, mode=mode)
    return {"sessions": len(sids), "users": users, "mode": mode, "new_assignments": n}


def import_files(repo, access: Access, jobs, paths: list[str], fmt: str, *, predict: bool = True,
                 speaker_map: str = "", language: str | None = None) -> dict:
    """Import files (all or nothing); new sessions without predictions are queued for prediction."""
    _admin(access, "importing data")
    from store.formats import parse_speaker_map, read_files

    if not paths:
        raise ValidationError("No files to import.", "Upload at least one file.")
    batch = read_files(paths, fmt, speaker_map=parse_speaker_map(speaker_map) or None if speaker_map else None,
                       language=language or None)
    report = repo.import_batch(batch, actor=access.username)
    out = report.to_dict()
    predicted = {p.session_id for p in batch.predictions}
    queued = []
    if predict and jobs is not None:
        for sid in report.added:
            if sid not in predicted:
                queued.append(jobs.submit(sid, actor=access.username)["id"])
    out["added_ids"] = list(report.added)
    out["predict_jobs"] = queued
    if report.added:  # the de-identification scan on import: findings wait in the Admin tab for review
        from care_model.jobs.deid import scan_sessions

        found = scan_sessions(repo, list(report.added), actor=access.username)
        out["deid_findings"] = {sid: len(f) for sid, f in found.items() if f}
    return out


def export_store(repo, access: Access, session_ids=None, override: bool = False) -> str:
    """Write a JSONL export (owner-only permissions) to a fresh private temp folder; returns its
    path, which only ``access``'s user may download from the app (:mod:`studio.downloads`).
    Transcripts leave the store here, so the de-identification gate applies: sessions without a
    scan of their current text are scanned now, and any with unreviewed findings refuse the
    export unless ``override`` (audited)."""
    _admin(access, "exporting the store")
    from care_model.jobs.deid import require_reviewed, scan_missing
    from store.export import export_jsonl

    from .downloads import private_path

    ids = parse_ids(session_ids) or repo.session_ids()
    scan_missing(repo, ids, actor=access.username)
    require_reviewed(repo, ids, override_by=access.username if override else None, purpose="Export")
    path = private_path(access.username, "export", "jsonl")
    export_jsonl(repo, path, parse_ids(session_ids) or None)
    return str(path)


# ----- logins (studio.login_guard) ---------------------------------------------------------
def login_locks(repo, access: Access) -> list[dict]:
    """Current login locks: who (a user name key or an address), failures, until (UTC)."""
    import time

    _admin(access, "listing login locks")
    return [{"who": d["key"], "failures": d["failures"],
             "until": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d["locked_until"]))}
            for d in repo.login_locks()]


def unlock_login(repo, access: Access, who: str) -> dict:
    """Lift the lock of a user name (or ``addr:ADDRESS``); audited."""
    _admin(access, "unlocking logins")
    who = (who or "").strip()
    if not who:
        raise ValidationError("No user name or address to unlock.", "Give a user name, or addr:ADDRESS.")
    return {"who": who, "cleared": repo.unlock_login(who, actor=access.username)}


def end_sessions(repo, access: Access, username: str) -> dict:
    """Log a user out everywhere (``*``: every user but yourself): their open pages and API clients
    are refused at their next request. Audited."""
    _admin(access, "logging users out")
    names = [u["username"] for u in repo.users() if u["username"] != access.username] if username.strip() == "*" \
        else [username]
    for name in names:
        repo.end_sessions(name, actor=access.username)
    return {"logged_out": names}


def jobs_table(jobs, repo, access: Access) -> list[dict]:
    """Predict jobs the user may see (admins and adjudicators: all; annotators: their sessions')."""
    if jobs is None:
        return []
    from .access import visible_sessions

    allowed = None if access.is_staff else set(visible_sessions(repo, access))
    return [j for j in jobs.jobs() if allowed is None or j["session_id"] in allowed]
