"""The repository: sessions, model suggestions, expert labels, users, assignments, audit.

Layout of a store folder (all JSON written with ``ensure_ascii=False``)::

    meta.json                       schema version, created_at
    store.lock                      held by the one process that has the store open
    users.json                      users (salted hashes only) + their audit
    logins.json                     failed-login counts and locks (store.logins) + their audit
    assignments.json                who reviews which session, and how
    sessions/<key>/session.json     the session: turns, language, ids, self-reports
    sessions/<key>/predictions.json model suggestions (append-only, never touched by labels)
    sessions/<key>/labels.json      expert labels + the append-only audit of every label change
    collections/<name>[/<shard>].json   model versions, training runs, evaluations, campaigns, ...

A label save rewrites only that session's ``labels.json`` (a few KB), atomically and durably,
together with its audit entry. The label methods are in :mod:`store.labels`, users and
assignments in :mod:`store.people`, predictions in :mod:`store.predictions` (mixins of
:class:`Repository`). Every public method takes the repository lock, so one Repository can be
shared by the app's worker threads. Returned objects are copies.
"""
from __future__ import annotations

import copy
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable

from tinydb import Query

from care_model.core.errors import NotFoundError, StoreFormatError, ValidationError
from care_model.core.records import LABEL_STATUSES, Label, Prediction, Session, is_suggestion, now_iso
from care_model.core.wai import load_form

from . import migrations
from .collections import Collection, LockedCollection
from .layout import session_key
from .deid_records import DeidMixin
from .labels import LabelsMixin
from .logins import LoginsMixin
from .people import PeopleMixin
from .predictions import PredictionsMixin
from .files import DIR_MODE, PRIVATE_UMASK, dumps, make_dirs, make_private, read_json, replace_file
from .lock import StoreLock
from .storage import FileSet

SCHEMA_VERSION = migrations.CURRENT
Q = Query()


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # same content already stored
    ratings_set: int = 0
    predictions_added: int = 0
    labels_added: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"added": len(self.added), "skipped": len(self.skipped), "ratings_set": self.ratings_set,
                "predictions_added": self.predictions_added, "labels_added": self.labels_added,
                "warnings": self.warnings}


@dataclass
class SessionView:
    """What the review screen needs for one session."""

    session: Session
    predictions: dict[int, Prediction]  # item -> latest suggestion of the chosen model version
    labels: list[Label]
    model_version: str | None


class Repository(LabelsMixin, PeopleMixin, PredictionsMixin, LoginsMixin, DeidMixin):
    """Open with :meth:`open` (or as a context manager); close to release the store lock."""

    def __init__(self, root: Path | str, *, create: bool = True):
        self.root = Path(root)
        os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)  # what this process writes into the store is private too
        existed = (self.root / "meta.json").exists()
        if not self.root.exists():
            if not create:
                raise NotFoundError(f"No store at {self.root}.",
                                    "Check the --store path, or create it by importing data.")
            make_dirs(self.root)
        self._lock = threading.RLock()
        self._store_lock = StoreLock(self.root)
        self._store_lock.acquire()
        try:
            self.files = FileSet(self.root)
            self.recovery = self.files.recover()
            self._init_meta(create)
            self.permissions_fixed = make_private(self.root) if existed else {"folders": 0, "files": 0}
            if existed:
                self._report_permissions()
            else:
                os.chmod(self.root, DIR_MODE)
            self._keys: dict[str, str] = {}
            for folder in sorted((self.root / "sessions").glob("*/")) if (self.root / "sessions").exists() else []:
                rel = f"sessions/{folder.name}/session.json"
                if not (self.root / rel).exists():
                    continue
                doc = self.files.db(rel).table("session").get(doc_id=1)
                if doc is None:
                    raise StoreFormatError(f"Store file {rel} holds no session.",
                                           "Restore it from a backup or an export.")
                self._keys[doc["id"]] = folder.name
                self.files.db(f"sessions/{folder.name}/predictions.json")
                self.files.db(f"sessions/{folder.name}/labels.json")
        except BaseException:
            self._store_lock.release()
            raise
        self._closed = False

    def _report_permissions(self) -> None:
        fixed = self.permissions_fixed
        if fixed["folders"] or fixed["files"]:
            msg = (f"Store {self.root}: made {fixed['files']} files and {fixed['folders']} folders private to this "
                   "account (0600/0700); they were readable by other accounts of this machine.")
            logging.getLogger("store").warning(msg)
            print(msg, file=sys.stderr)

    @classmethod
    def open(cls, root: Path | str, *, create: bool = True) -> "Repository":
        return cls(root, create=create)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._store_lock.release()
                self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _init_meta(self, create: bool) -> None:
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            meta = {"format": "care-review-store", "schema_version": SCHEMA_VERSION, "created_at": now_iso()}
            replace_file(meta_path, dumps(meta))
            self.meta = meta
            return
        meta = read_json(meta_path)
        if meta.get("format") != "care-review-store":
            raise StoreFormatError(f"{self.root} is not a CARE Review Studio store.",
                                   "Point --store at a store folder.")
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreFormatError(
                f"Store {self.root} has schema version {version}; this code reads up to {SCHEMA_VERSION}.",
                "Upgrade CARE Review Studio to open it.",
            )
        if version < SCHEMA_VERSION:
            migrations.migrate(self.root, version)
            meta = read_json(meta_path)
        self.meta = meta

    # ================================================================== sessions
    def _rel(self, session_id: str, part: str) -> str:
        key = self._keys.get(session_id)
        if key is None:
            raise NotFoundError(f"No session {session_id!r} in the store.",
                                "Check the id (care store stats lists counts; the app's queue lists sessions).")
        return f"sessions/{key}/{part}.json"

    def session_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def has_session(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._keys

    def _session_doc(self, session_id: str) -> dict:
        return self.files.db(self._rel(session_id, "session")).table("session").get(doc_id=1)

    def get_session(self, session_id: str) -> Session:
        with self._lock:
            return Session.from_dict(copy.deepcopy(dict(self._session_doc(session_id))))

    def session_summaries(self) -> list[dict]:
        """One light row per session (no turn text), for queues and dashboards."""
        with self._lock:
            rows = []
            for sid in sorted(self._keys):
                doc = self._session_doc(sid)
                rows.append({
                    "id": sid, "language": doc["language"], "source": doc["source"],
                    "client_id": doc.get("client_id", ""), "counselor_id": doc.get("counselor_id", ""),
                    "turns": len(doc["turns"]), "has_client_ratings": "client" in (doc.get("ratings") or {}),
                    "metadata": {k: v for k, v in (doc.get("metadata") or {}).items() if isinstance(v, (str, int, float,
                                                                                                        bool))},
                })
            return rows

    def import_batch(self, batch, *, actor: str = "system") -> ImportReport:
        """Write an import batch (sessions, ratings, predictions, labels) all or nothing.

        Sessions already stored with the same content are skipped; an id that exists with other
        content is an error, and so is a rating for an unknown session.
        """
        report = ImportReport(warnings=list(getattr(batch, "warnings", []) or []))
        with self._lock:
            by_hash = {self._content_hash(sid): sid for sid in self._keys}
            new_sessions: list[Session] = []
            for sess in batch.sessions:
                sess.validate()
                h = sess.content_hash
                if sess.id in self._keys:
                    if self._content_hash(sess.id) != h:
                        raise ValidationError(
                            f"Session {sess.id!r} is already in the store with different turns.",
                            "Import it under a new id, or export and fix the stored one first; the store changed "
                                              "nothing.",
                        )
                    report.skipped.append(sess.id)
                elif h in by_hash:
                    report.skipped.append(sess.id)
                    report.warnings.append(f"Session {sess.id!r} has the same turns as stored session {by_hash[h]!r}; "
                                           "skipped.")
                else:
                    new_sessions.append(sess)
                    by_hash[h] = sess.id
            known = set(self._keys) | {s.id for s in new_sessions}
            for rec in batch.ratings:
                if rec.session_id not in known:
                    raise ValidationError(
                        f"{rec.where}: rating for unknown session {rec.session_id!r}.",
                        "Import the session first (or in the same command), or correct the session_id; the store "
                                          "changed nothing.",
                    )
            added_keys = []
            try:
                with self.files.transaction():
                    stamp = now_iso()
                    for sess in new_sessions:
                        key = session_key(sess.id)
                        self._keys[sess.id] = key
                        added_keys.append(sess.id)
                        doc = sess.to_dict()
                        doc["created_at"] = doc.get("created_at") or stamp
                        doc["content_hash"] = sess.content_hash
                        self.files.db(f"sessions/{key}/session.json").table("session").insert(doc)
                        report.added.append(sess.id)
                    for rec in batch.ratings:
                        report.ratings_set += self._set_ratings_locked(rec.session_id, rec.rater, rec.ratings)
                    if getattr(batch, "predictions", None):
                        report.predictions_added += self._add_predictions_locked(batch.predictions, skip_existing=True)
                    for lab in getattr(batch, "labels", None) or []:
                        if self._import_label_locked(lab, actor):
                            report.labels_added += 1
            except BaseException:
                for sid in added_keys:
                    key = self._keys.pop(sid)
                    for part in ("session", "predictions", "labels"):
                        self.files.drop(f"sessions/{key}/{part}.json")
                raise
            for sid in added_keys:
                self.files.db(self._rel(sid, "predictions"))
                self.files.db(self._rel(sid, "labels"))
        return report

    def add_sessions(self, sessions: Iterable[Session], *, actor: str = "system") -> ImportReport:
        batch = SimpleNamespace(sessions=list(sessions), ratings=[], predictions=[], labels=[], warnings=[])
        return self.import_batch(batch, actor=actor)

    def _content_hash(self, session_id: str) -> str:
        doc = self._session_doc(session_id)
        return doc.get("content_hash") or Session.from_dict(dict(doc)).content_hash

    def _set_ratings_locked(self, session_id: str, rater: str, ratings: dict) -> int:
        if rater not in ("client", "counselor"):
            raise ValidationError(f"Unknown rater {rater!r}.", "Ratings come from 'client' or 'counselor'.")
        db = self.files.db(self._rel(session_id, "session"))
        doc = db.table("session").get(doc_id=1)
        clean = load_form(doc.get("form", "wai-sr")).check_ratings(ratings, require_all=True)
        as_json = {str(k): v for k, v in clean.items()}
        if (doc.get("ratings") or {}).get(rater) == as_json:
            return 0
        new_ratings = dict(doc.get("ratings") or {})
        new_ratings[rater] = as_json
        db.table("session").update({"ratings": new_ratings}, doc_ids=[1])
        return 1

    def set_ratings(self, session_id: str, rater: str, ratings: dict) -> None:
        with self._lock, self.files.transaction():
            self._set_ratings_locked(session_id, rater, ratings)

    # ============================================ predictions (PredictionsMixin, store/predictions.py)

    # ================================================================== labels (LabelsMixin, store/labels.py)
    def open_session(self, session_id: str, *, model_version: str | None = None) -> SessionView:
        """The session with the latest suggestion per item of ``model_version`` (or of the most
        recent version that predicted it) and all its labels."""
        with self._lock:
            session = self.get_session(session_id)
            docs = [d for d in self.files.db(self._rel(session_id, "predictions")).table("predictions").all()
                    if is_suggestion(d)]
            if model_version is None and docs:
                model_version = max(docs, key=lambda d: d["created_at"])["model_version"]
            preds: dict[int, Prediction] = {}
            for d in sorted((d for d in docs if d["model_version"] == model_version), key=lambda d: d["created_at"]):
                preds[int(d["item"])] = Prediction.from_dict(copy.deepcopy(dict(d)))
            labels = [Label.from_dict(copy.deepcopy(dict(d)))
                      for d in self._labels_db(session_id).table("labels").all()]
        return SessionView(session, preds, sorted(labels, key=lambda lab: (lab.item, lab.annotator)), model_version)

    # ============================================ users, assignments (PeopleMixin, store/people.py)

    # ================================================================== collections & audit
    def collection(self, name: str, shard: str | None = None) -> LockedCollection:
        return LockedCollection(Collection(self.files, name, shard), self._lock)

    def shards(self, name: str) -> list[str]:
        folder = self.root / "collections" / name
        with self._lock:
            return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    def audit(self, *, entity_id: str | None = None, session_id: str | None = None) -> list[dict]:
        """The append-only trail of every change, oldest first."""
        with self._lock:
            entries = []
            if session_id is not None:
                sources = [self._rel(session_id, "labels")]
            else:
                sources = [f"sessions/{k}/labels.json" for k in self._keys.values()]
                sources += ["users.json", "assignments.json", "logins.json"]
                if (self.root / "collections").exists():
                    sources += [str(p.relative_to(self.root)) for p in (self.root / "collections").rglob("*.json")]
            for rel in sources:
                if self.files.exists(rel):
                    entries.extend(copy.deepcopy(dict(a)) for a in self.files.db(rel).table("audit").all())
        if entity_id is not None:
            entries = [e for e in entries if e["entity_id"] == entity_id]
        return sorted(entries, key=lambda e: e["at"])

    def stats(self) -> dict:
        with self._lock:
            turns = predictions = labels = 0
            by_status = {s: 0 for s in LABEL_STATUSES}
            for sid in self._keys:
                turns += len(self._session_doc(sid)["turns"])
                predictions += len(self.files.db(self._rel(sid, "predictions")).table("predictions"))
                for d in self._labels_db(sid).table("labels").all():
                    labels += 1
                    by_status[d["status"]] = by_status.get(d["status"], 0) + 1
            return {"sessions": len(self._keys), "turns": turns, "predictions": predictions, "labels": labels,
                    "labels_by_status": by_status, "users": len(self._users().table("users")),
                    "schema_version": self.meta["schema_version"]}
