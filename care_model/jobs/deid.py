"""``care deid``: the de-identification check: scan transcripts, review the findings, redact, and the gate.

Examples (CPU, seconds; the store must not be open in the app)::

    care deid --store care_store --actor admin scan                       # every session
    care deid --store care_store --actor admin scan --session sample-en-01
    care deid --store care_store findings --session sample-en-01
    care deid --store care_store --actor admin review --session sample-en-01 --decision cleared --note "no PII"
    care deid --store care_store --actor admin redact --session sample-en-01 [--keep-original]
    care deid --store care_store status                                   # sessions not cleared yet

A real run is the same commands on a real store (about 2 ms per turn after a 1-2 s start).

The functions below are what the app (Admin tab), ``care store export``, the demo and ``publish`` call:
:func:`scan_sessions` records findings per session (audited), :func:`record_review` the admin's
decision, :func:`unreviewed` the sessions not cleared, :func:`require_reviewed` the gate (raises
:class:`~care_model.core.errors.DeidentificationRequired`; an admin's override is audited),
:func:`redact_session` typed placeholders (``[PHONE]``). What is found: :mod:`care_model.text.deid`
(pattern recognizers; NER is off).
"""
from __future__ import annotations

import sys

from care_model.core.errors import CareError, DeidentificationRequired, PermissionDenied  # noqa: F401 - re-exported
from care_model.text.deid import NER_NOTE, redact_text, scan_turns


def _admin(repo, actor: str, what: str) -> None:
    role = repo.role_of(actor)
    if role != "admin":
        raise PermissionDenied(f"{actor} ({role}) may not {what}.", "Ask an admin; only admins clear transcripts.")


def scan_sessions(repo, session_ids=None, *, actor: str) -> dict[str, list[dict]]:
    """Scan the sessions' transcripts (all when None); records the findings per session in the
    store (audited) and returns session id -> findings (each with ``turn`` and the matched ``text``)."""
    ids = list(repo.session_ids() if session_ids is None else session_ids)
    out = {}
    for sid in ids:
        session = repo.get_session(sid)
        found = scan_turns(session.turns)
        repo.put_deid_scan(sid, found, repo.transcript_fingerprint(sid), actor=actor)
        out[sid] = found
    return out


def scan_missing(repo, session_ids, *, actor: str) -> list[str]:
    """Scan the sessions that have no scan of their current transcript; returns their ids."""
    todo = [sid for sid in session_ids if (rec := repo.deid_record(sid)) is None
            or rec.get("fingerprint") != repo.transcript_fingerprint(sid)]
    if todo:
        scan_sessions(repo, todo, actor=actor)
    return todo


def findings(repo, session_id: str) -> list[dict]:
    """The recorded findings of a session with the matched text read from the current transcript
    (empty text when the transcript changed since the scan)."""
    doc = repo.deid_record(session_id) or {}
    current = doc.get("fingerprint") == repo.transcript_fingerprint(session_id)
    turns = {t.index: t.text for t in repo.get_session(session_id).turns}
    return [{**f, "text": turns.get(f["turn"], "")[f["start"]:f["end"]] if current else ""}
            for f in doc.get("findings", [])]


def record_review(repo, session_id: str, *, reviewer: str, decision: str, note: str = "") -> None:
    """The admin's review of a session's current scan: ``cleared`` (nothing identifying, or
    accepted) or ``redacted``; audited."""
    _admin(repo, reviewer, "review de-identification findings")
    repo.put_deid_review(session_id, reviewer=reviewer, decision=decision, note=note)


def unreviewed(repo, session_ids) -> list[str]:
    """Sessions never scanned, or with findings whose review is missing or outdated (the
    transcript changed since)."""
    return repo.deid_unreviewed(list(session_ids))


def require_reviewed(repo, session_ids, *, override_by: str | None = None, purpose: str = "Publishing") -> None:
    """Raise DeidentificationRequired listing the sessions not cleared and the fix; with
    ``override_by`` (an admin) let them through, audited."""
    if override_by:
        _admin(repo, override_by, "override the de-identification check")
    repo.require_deid_reviewed(list(session_ids), purpose=purpose, override_by=override_by)


def redact_session(repo, session_id, *, actor: str, keep_original: bool) -> dict:
    """Replace every finding of the session's current transcript with its typed placeholder
    (``[PHONE]``, ``[EMAIL]``, ``[ADDRESS]``, ...), rescan and record the review as ``redacted``.
    The original turns stay in the store (collection ``deid_originals``) only if ``keep_original``."""
    _admin(repo, actor, "redact transcripts")
    session = repo.get_session(session_id)
    by_turn: dict[int, list] = {}
    for f in scan_turns(session.turns):
        by_turn.setdefault(f["turn"], []).append(f)
    texts = {t.index: redact_text(t.text, by_turn[t.index]) for t in session.turns if t.index in by_turn}
    out = repo.redact_turns(session_id, texts, actor=actor, keep_original=keep_original)
    left = scan_sessions(repo, [session_id], actor=actor)[session_id]
    repo.put_deid_review(session_id, reviewer=actor, decision="redacted",
                         note=f"{sum(len(v) for v in by_turn.values())} findings replaced by placeholders")
    return {**out, "findings_replaced": sum(len(v) for v in by_turn.values()), "findings_left": len(left)}


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="care deid", description="The de-identification check of a store's "
                                 "transcripts (pattern recognizers; " + NER_NOTE + ")",
                                 epilog=__doc__.split("Examples (CPU, seconds; the store must not be open in the "
                                                      "app)::")[1].split("A real run")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="store folder")
    ap.add_argument("--actor", default="", help="your admin user name (scan, review, redact)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("scan", "findings", "review", "redact", "status"):
        p = sub.add_parser(name)
        p.add_argument("--session", action="append", default=None, help="session id (repeatable; default: all)")
        if name == "review":
            p.add_argument("--decision", required=True, choices=("cleared", "redacted"))
            p.add_argument("--note", default="")
        if name == "redact":
            p.add_argument("--keep-original", action="store_true", help="keep the original turns in the store")
    args = ap.parse_args(argv)
    from store import Repository

    try:
        with Repository.open(args.store, create=False) as repo:
            ids = args.session or repo.session_ids()
            if args.cmd == "scan":
                _admin(repo, args.actor, "scan transcripts")
                found = scan_sessions(repo, ids, actor=args.actor)
                for sid, fs in found.items():
                    if fs:
                        print(f"{sid}: {len(fs)} finding(s): {', '.join(sorted({f['entity'] for f in fs}))}")
                print(f"scanned {len(found)} sessions; {sum(1 for f in found.values() if f)} with findings")
            elif args.cmd == "findings":
                for sid in ids:
                    for f in findings(repo, sid):
                        print(f"{sid} turn {f['turn']}: {f['entity']} {f['text']!r} -> {f['placeholder']}")
            elif args.cmd == "review":
                for sid in ids:
                    record_review(repo, sid, reviewer=args.actor, decision=args.decision, note=args.note)
                print(f"recorded {args.decision} for {len(ids)} session(s)")
            elif args.cmd == "redact":
                for sid in ids:
                    print(redact_session(repo, sid, actor=args.actor, keep_original=args.keep_original))
            else:
                left = unreviewed(repo, ids)
                print("\n".join(left) if left else "every session is cleared")
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
