"""Versioned, audited document collections for everything that is not a session part.

Model versions, training runs, evaluations, campaigns, settings, ... each live in their own small
TinyDB file (``collections/<name>.json``, or ``collections/<name>/<shard>.json`` for collections
that grow per campaign), with the documents in table ``docs`` and the append-only change log in
table ``audit`` of the same file, so a change and its audit entry are written together.
"""
from __future__ import annotations

import copy
import re
from typing import Callable

from tinydb import Query

from care_model.core.errors import ConflictError, NotFoundError, ValidationError
from care_model.core.records import now_iso

from .journal import replace_with
from .storage import FileSet

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_SHARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def collection_path(name: str, shard: str | None = None) -> str:
    if not _NAME.match(name):
        raise ValidationError(f"Bad collection name {name!r}.", "Use lower-case letters, digits and _.")
    if shard is None:
        return f"collections/{name}.json"
    if not _SHARD.match(shard):
        raise ValidationError(f"Bad shard name {shard!r}.", "Use letters, digits, '.', '_' and '-'.")
    return f"collections/{name}/{shard}.json"


class Collection:
    """Documents with a string ``id`` and a ``version`` that counts saves.

    All calls must run under the repository's lock (the repository hands collections out and
    wraps them, so callers outside the store never see an unlocked one).
    """

    def __init__(self, files: FileSet, name: str, shard: str | None = None):
        self.name = name
        self.shard = shard
        self.rel = collection_path(name, shard)
        self._files = files

    @property
    def _db(self):
        return self._files.db(self.rel)

    def get(self, doc_id: str) -> dict | None:
        doc = self._db.table("docs").get(Query().id == doc_id)
        return copy.deepcopy(dict(doc)) if doc is not None else None

    def require(self, doc_id: str) -> dict:
        doc = self.get(doc_id)
        if doc is None:
            raise NotFoundError(f"No {self.name} record {doc_id!r}.",
                                f"List the {self.name} records to find the right id.")
        return doc

    def all(self, where: Callable[[dict], bool] | None = None) -> list[dict]:
        docs = self._db.table("docs").all()
        return [copy.deepcopy(dict(d)) for d in docs if where is None or where(d)]

    def put(self, doc: dict, *, actor: str, expected_version: int | None = None, action: str | None = None) -> dict:
        """Insert or replace ``doc`` (by its ``id``); returns the stored document.

        With ``expected_version`` the write succeeds only if the stored version still equals it.
        """
        if "id" not in doc or not isinstance(doc["id"], str) or not doc["id"]:
            raise ValidationError(f"A {self.name} record needs a string 'id'.", "Set doc['id'] before saving.")
        table = self._db.table("docs")
        current = table.get(Query().id == doc["id"])
        cur_version = int(current.get("version", 0)) if current is not None else 0
        if expected_version is not None and expected_version != cur_version:
            raise ConflictError(
                f"{self.name} record {doc['id']!r} was changed by {current.get('updated_by', '?') if current else '?'} "
                f"at {current.get('updated_at', '?') if current else '?'} (version {cur_version}, you had "
                                f"{expected_version}).",
                "Reload it and apply your change to the current version.",
                current=copy.deepcopy(dict(current)) if current else None,
            )
        new = copy.deepcopy(dict(doc))
        stamp = now_iso()
        new["version"] = cur_version + 1
        new.setdefault("created_at", current.get("created_at", stamp) if current else stamp)
        new["updated_at"] = stamp
        new["updated_by"] = actor
        with self._files.transaction():
            if current is None:
                table.insert(new)
            else:
                table.update(replace_with(new), doc_ids=[current.doc_id])
            self._db.table("audit").insert({
                "at": stamp, "who": actor, "entity": self.name, "entity_id": new["id"],
                "action": action or ("create" if current is None else "update"),
                "before": copy.deepcopy(dict(current)) if current is not None else None,
                "after": copy.deepcopy(new),
            })
        return copy.deepcopy(new)

    def audit(self) -> list[dict]:
        return [copy.deepcopy(dict(a)) for a in self._db.table("audit").all()]


class LockedCollection:
    """A :class:`Collection` whose every call takes the repository lock."""

    def __init__(self, inner: Collection, lock):
        self._inner, self._lock = inner, lock

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return locked
