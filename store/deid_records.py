"""De-identification records of :class:`store.repository.Repository` (a mixin): per session, the
last scan's findings (positions and types, not the matched text), the admin's review, overrides,
and redaction of the transcript (its original kept only if the admin chooses).

Everything is keyed to the transcript's :meth:`DeidMixin.transcript_fingerprint` (a hash of its
turns): a scan or a review of other text than the session holds now is outdated, so a session
whose transcript changed since must be scanned and reviewed again. Records live in the
collections ``deid`` (one document per session, audited), ``deid_overrides`` and
``deid_originals``; a redaction is audited in the session's own trail. The scanning itself is
``care_model.text.deid``; the commands and the gate are ``care_model.jobs.deid``. Store-only
(no scanning here), so ``care store export`` can apply the gate too.
"""
from __future__ import annotations

import hashlib

from care_model.core.errors import DeidentificationRequired, ValidationError
from care_model.core.records import Session, now_iso

DEID, OVERRIDES, ORIGINALS = "deid", "deid_overrides", "deid_originals"
DECISIONS = ("cleared", "redacted")
ALIASES = {"approved": "cleared"}  # the name the publish branch's tests use


def _fingerprint(turns) -> str:
    h = hashlib.sha256()
    for t in turns:
        h.update(f"{t['index']}\x1f{t['speaker']}\x1f{t['text']}\x1e".encode("utf-8"))
    return h.hexdigest()[:16]


class DeidMixin:
    def transcript_fingerprint(self, session_id: str) -> str:
        with self._lock:
            return _fingerprint(self._session_doc(session_id)["turns"])

    def deid_record(self, session_id: str) -> dict | None:
        return self.collection(DEID).get(session_id)

    def put_deid_scan(self, session_id: str, findings: list[dict], fingerprint: str, *, actor: str) -> dict:
        """Record a scan of the transcript with ``fingerprint`` (positions and types only; the review
        of an earlier scan of the same text is kept)."""
        keep = ("turn", "entity", "start", "end", "score", "placeholder")
        coll = self.collection(DEID)
        old = coll.get(session_id) or {}
        review = old.get("review") if (old.get("review") or {}).get("fingerprint") == fingerprint else None
        doc = {"id": session_id, "fingerprint": fingerprint, "scanned_at": now_iso(), "scanned_by": actor,
               "findings": [{k: f[k] for k in keep if k in f} for f in findings], "review": review}
        return coll.put(doc, actor=actor, action="deid_scan")

    def put_deid_review(self, session_id: str, *, reviewer: str, decision: str, note: str = "") -> dict:
        decision = ALIASES.get(decision, decision)
        if decision not in DECISIONS:
            raise ValidationError(f"Unknown review decision {decision!r}.", f"Use one of {', '.join(DECISIONS)}.")
        coll = self.collection(DEID)
        doc = coll.get(session_id)
        current = self.transcript_fingerprint(session_id)
        if doc is None or doc.get("fingerprint") != current:
            raise ValidationError(f"Session {session_id!r} has no scan of its current transcript.",
                                  "Scan it first (Admin tab, De-identification, or `care deid scan`), then review.")
        doc = {**doc, "review": {"by": reviewer, "at": now_iso(), "decision": decision, "note": str(note)[:2000],
                                 "fingerprint": current}}
        return coll.put(doc, actor=reviewer, action=f"deid_review_{decision}")

    def deid_unreviewed(self, session_ids) -> list[str]:
        """Sessions never scanned, scanned before their transcript changed, or with findings whose
        review is missing or was of other text."""
        out = []
        for sid in session_ids:
            doc = self.deid_record(sid)
            current = self.transcript_fingerprint(sid)
            if doc is None or doc.get("fingerprint") != current:
                out.append(sid)
            elif doc.get("findings") and (doc.get("review") or {}).get("fingerprint") != current:
                out.append(sid)
        return out

    def require_deid_reviewed(self, session_ids, *, purpose: str, override_by: str | None = None) -> None:
        """Raise :class:`DeidentificationRequired` unless every session is scanned and reviewed; an
        override by an admin lets them through and is audited (collection ``deid_overrides``)."""
        ids = list(session_ids)
        missing = self.deid_unreviewed(ids)
        if not missing:
            return
        if override_by:
            stamp = now_iso()
            self.collection(OVERRIDES).put({"id": f"{stamp}-{purpose}", "at": stamp, "by": override_by,
                                            "purpose": purpose, "sessions": missing}, actor=override_by,
                                           action="deid_override")
            return
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DeidentificationRequired(
            f"{purpose}: {len(missing)} session(s) are not cleared by the de-identification check: {shown}.",
            "Scan them and review the findings (Admin tab, De-identification; or `care deid scan` then "
            "`care deid review`), redact them, or let an admin override (audited).", sessions=missing)

    def redact_turns(self, session_id: str, texts: dict[int, str], *, actor: str, keep_original: bool) -> dict:
        """Replace the text of turns (index -> new text) in the stored session, audited in the
        session's trail (counts only, no text); the original turns go to ``deid_originals`` if
        ``keep_original``, else they are gone from the store."""
        with self._lock:
            db = self.files.db(self._rel(session_id, "session"))
            doc = dict(db.table("session").get(doc_id=1))
            turns = [dict(t) for t in doc["turns"]]
            changed = 0
            for t in turns:
                if t["index"] in texts and texts[t["index"]] != t["text"]:
                    t["text"] = texts[t["index"]]
                    changed += 1
            if not changed:
                return {"session_id": session_id, "turns_changed": 0, "kept_original": False}
            new_hash = Session.from_dict({**doc, "turns": turns}).content_hash
            stamp = now_iso()
            with self.files.transaction():
                if keep_original:
                    self.collection(ORIGINALS).put({"id": session_id, "turns": doc["turns"], "saved_at": stamp},
                                                   actor=actor, action="deid_keep_original")
                db.table("session").update({"turns": turns, "content_hash": new_hash}, doc_ids=[1])
                self._labels_db(session_id).table("audit").insert(
                    {"at": stamp, "who": actor, "entity": "session", "entity_id": session_id, "action": "redact",
                     "before": None, "after": {"turns_changed": changed, "kept_original": bool(keep_original)}})
            return {"session_id": session_id, "turns_changed": changed, "kept_original": bool(keep_original)}
