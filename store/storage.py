"""Durable, sharded, journaled TinyDB files: the storage layer under the repository.

Why not stock TinyDB: its JSONStorage re-reads and rewrites the whole database on every call
(160-500 ms per write at the curated set's size) and a crash mid-write can leave a corrupt file.
Here a store is a folder of *small* TinyDB files (one per session part, one per global table),
each held in memory by a :class:`JournaledStorage`:

- A write that touches one file appends only the changed documents, as one JSON line, to the
  file's journal (``<file>.log``) and fsyncs it: durable when the call returns, a few hundred
  microseconds, whatever the store's size. :class:`~store.journal.TrackingTable` tells the storage which
  documents TinyDB touched.
- Every few hundred lines, and for changes that span several files, the file is rewritten as a
  snapshot: temp file in the same folder -> fsync -> ``os.replace`` -> fsync the folder. The
  snapshot records the journal sequence number it includes, so a crash between the snapshot and
  the journal's truncation cannot replay stale lines.
- A change that spans several files (an import of 800 sessions, say) goes through
  :meth:`FileSet.transaction`: the new snapshots are staged and fsynced under temporary names,
  then one intent record (``txn.json``) listing the renames is made durable (the commit point),
  then the renames happen. On open, a complete intent record is rolled forward and stray
  temporary files are removed, so a multi-file change is all or nothing.
- On load, a torn last journal line (a crash mid-append, never acknowledged) is dropped.

One process owns a store at a time (:mod:`store.lock`); a second process gets
:class:`StoreLockedError` naming the holder. Within the process, callers serialise through
the repository's lock: TinyDB itself is not thread-safe.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinydb import TinyDB

from .files import TMP_SUFFIX, fsync_dir, make_dirs, replace_file, write_durable
from .journal import CareDB, JournaledStorage

TXN_FILE = "txn.json"


class FileSet:
    """The TinyDB files of one store folder, opened lazily and cached, with transactions."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._dbs: dict[str, TinyDB] = {}
        self._staged: dict[str, JournaledStorage] | None = None
        self._owner: int | None = None
        self._guard = threading.RLock()

    # ----- recovery ------------------------------------------------------------------
    def recover(self) -> dict:
        """Finish or undo what a crash interrupted. Returns what was done (for the log)."""
        report = {"rolled_forward": 0, "removed_temp": 0}
        txn = self.root / TXN_FILE
        if txn.exists():
            try:
                renames = json.loads(txn.read_text(encoding="utf-8"))["renames"]
            except (ValueError, KeyError):
                renames = []  # the intent record itself was torn: the commit never happened
            for tmp_rel, final_rel in renames:
                tmp, final = self.root / tmp_rel, self.root / final_rel
                if tmp.exists():
                    make_dirs(final.parent)
                    os.replace(tmp, final)
                    report["rolled_forward"] += 1
            for folder in {(self.root / f).parent for _, f in renames} | {self.root}:
                if folder.exists():
                    fsync_dir(folder)
            txn.unlink()
            fsync_dir(self.root)
        for tmp in self.root.rglob(f"*{TMP_SUFFIX}"):
            tmp.unlink()
            report["removed_temp"] += 1
        return report

    # ----- access --------------------------------------------------------------------
    def db(self, rel: str) -> TinyDB:
        """The TinyDB for a relative path (``sessions/abc/labels.json``), loaded once."""
        db = self._dbs.get(rel)
        if db is None:
            db = CareDB(self.root / rel, storage=JournaledStorage, fileset=self)
            self._dbs[rel] = db
        return db

    def exists(self, rel: str) -> bool:
        return rel in self._dbs or (self.root / rel).exists()

    def loaded(self) -> list[str]:
        return list(self._dbs)

    # ----- writing -------------------------------------------------------------------
    def _persist(self, storage: JournaledStorage) -> None:
        if self._staged is not None and self._owner == threading.get_ident():
            self._staged[str(storage.path)] = storage
        else:
            try:
                self._commit([storage])
            except BaseException:
                self._rollback([storage])
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All TinyDB writes inside the block reach disk together, or not at all.

        On an exception nothing is written and the touched files are reloaded from disk.
        Nested blocks join the outer one.
        """
        with self._guard:
            if self._staged is not None:
                yield
                return
            staged: dict[str, JournaledStorage] = {}
            self._staged, self._owner = staged, threading.get_ident()
            try:
                yield
                self._staged = None
                self._commit(list(staged.values()))
            except BaseException:
                self._staged = None
                self._rollback(list(staged.values()))
                raise
            finally:
                self._staged, self._owner = None, None

    def _commit(self, storages: list[JournaledStorage]) -> None:
        if not storages:
            return
        if len(storages) == 1:
            st = storages[0]
            if st.can_append():
                st.append()
            else:
                replace_file(st.path, st.snapshot_payload())
                st.snapshot_done()
            return
        renames, folders = [], set()
        for st in storages:
            make_dirs(st.path.parent)
            tmp = st.path.with_name(st.path.name + TMP_SUFFIX)
            write_durable(tmp, st.snapshot_payload())
            renames.append([str(tmp.relative_to(self.root)), str(st.path.relative_to(self.root))])
            folders.add(st.path.parent)
        for folder in folders:
            fsync_dir(folder)
        txn = self.root / TXN_FILE
        write_durable(txn, json.dumps({"renames": renames}).encode("utf-8"))
        fsync_dir(self.root)  # commit point: from here on, recovery rolls forward
        for tmp_rel, final_rel in renames:
            os.replace(self.root / tmp_rel, self.root / final_rel)
        for folder in folders:
            fsync_dir(folder)
        txn.unlink()
        fsync_dir(self.root)
        for st in storages:
            st.snapshot_done()

    def _rollback(self, storages: list[JournaledStorage]) -> None:
        for st in storages:
            st.discard_changes()
        paths = {str(st.path) for st in storages}
        for rel in list(self._dbs):
            if str(self.root / rel) in paths:
                self._dbs.pop(rel)  # reopened from disk on next access (fresh caches too)

    def drop(self, rel: str) -> None:
        """Forget a cached file (after a rollback of something that never existed)."""
        self._dbs.pop(rel, None)
