"""Schema versions of a store folder and the path from each old version to the current one.

Each step ``MIGRATIONS[v]`` upgrades a store from version ``v`` to ``v + 1`` in place. Before
the first step the old files are copied to ``backup-v<from>-<time>/`` inside the store folder,
and ``meta.json`` is rewritten only after the last step succeeded, so an interrupted migration
simply runs again.

- Version 0: a prototype layout, one stock TinyDB file ``care.json`` with tables ``sessions``,
  ``predictions``, ``labels`` and ``users`` (what TinyDB's default storage writes).
- Version 1: the sharded layout described in :mod:`store.repository`.
- Version 2: every label records ``score_source`` (:data:`care_model.core.records.SCORE_SOURCES`);
  labels stored before get ``"expert"`` (``"adjudicated"`` in the adjudication slot), since
  until then every label's score was an expert's own judgement.
- Version 3: every label records ``rationale_source`` and ``rationale_edit_distance``
  (:mod:`care_model.core.provenance`). A label stored before is ``"accepted"`` (distance 0) when it
  recorded ``accepted_suggestion`` or its rationale equals (up to whitespace) a stored model
  suggestion or draft of its item; otherwise ``"unknown"`` (an expert's text or an edit of model
  text that was since replaced: it cannot be told).
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from care_model.core.errors import StoreFormatError
from care_model.core.provenance import normalise
from care_model.core.records import default_score_source

from .files import dumps, read_json, replace_file
from .layout import session_key
from .storage import FileSet

CURRENT = 3


def _v0_to_v1(root: Path) -> None:
    legacy = root / "care.json"
    if not legacy.exists():
        return
    data = read_json(legacy)

    def table(name):
        return list((data.get(name) or {}).values())

    sessions = table("sessions")
    keys = {s["id"]: session_key(s["id"]) for s in sessions}
    for s in sessions:
        replace_file(root / "sessions" / keys[s["id"]] / "session.json", dumps({"session": {"1": s}}))
    for part, name in (("predictions", "predictions"), ("labels", "labels")):
        grouped: dict[str, dict] = {}
        for doc in table(name):
            if doc["session_id"] not in keys:
                raise StoreFormatError(f"Legacy {name} record for unknown session {doc['session_id']!r}.",
                                       "Remove the orphan record from care.json and open the store again.")
            rows = grouped.setdefault(doc["session_id"], {})
            rows[str(len(rows) + 1)] = doc
        for sid, rows in grouped.items():
            replace_file(root / "sessions" / keys[sid] / f"{part}.json", dumps({name: rows}))
    users = {str(i + 1): u for i, u in enumerate(table("users"))}
    if users:
        replace_file(root / "users.json", dumps({"users": users}))
    legacy.rename(root / "care.json.migrated")


def _v1_to_v2(root: Path) -> None:
    files = FileSet(root)  # through the journaled storage: a label file's journal holds recent saves
    for path in sorted(root.glob("sessions/*/labels.json")):
        table = files.db(str(path.relative_to(root))).table("labels")
        todo = [doc for doc in table.all() if not doc.get("score_source")]
        with files.transaction():
            for doc in todo:
                table.update({"score_source": default_score_source(doc.get("annotator", ""))}, doc_ids=[doc.doc_id])


def _v2_to_v3(root: Path) -> None:
    files = FileSet(root)
    for path in sorted(root.glob("sessions/*/labels.json")):
        table = files.db(str(path.relative_to(root))).table("labels")
        todo = [doc for doc in table.all() if not doc.get("rationale_source")]
        if not todo:
            continue
        model_texts: dict[int, set[str]] = {}
        preds = path.with_name("predictions.json")
        if preds.exists():
            for doc in files.db(str(preds.relative_to(root))).table("predictions").all():
                if normalise(doc.get("rationale")):
                    model_texts.setdefault(int(doc.get("item", 0)), set()).add(normalise(doc.get("rationale")))
        with files.transaction():
            for doc in todo:
                told = doc.get("accepted_suggestion") or (
                    normalise(doc.get("rationale")) and normalise(doc.get("rationale")) in model_texts.get(
                        int(doc.get("item", 0)), set()))
                table.update({"rationale_source": "accepted" if told else "unknown",
                              "rationale_edit_distance": 0 if told else None}, doc_ids=[doc.doc_id])


MIGRATIONS = {0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}


def migrate(root: Path, from_version: int) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    backup = root / f"backup-v{from_version}-{stamp}"
    backup.mkdir()
    for path in root.iterdir():
        if path.name.startswith("backup-") or path.name == "store.lock":
            continue
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, backup / path.name)
    for version in range(from_version, CURRENT):
        if version not in MIGRATIONS:
            raise StoreFormatError(f"No migration from store schema version {version}.",
                                   "Export with the version that wrote it, then import.")
        MIGRATIONS[version](root)
    meta = read_json(root / "meta.json")
    meta.update(schema_version=CURRENT, migrated_from=from_version, migrated_at=stamp, backup=backup.name)
    replace_file(root / "meta.json", dumps(meta))
