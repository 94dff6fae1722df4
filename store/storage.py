"""Durable, sharded, journaled TinyDB files: the storage layer under the repository.

Why not stock TinyDB: its JSONStorage re-reads and rewrites the whole database on every call
(160-500 ms per write at the curated set's size) and a crash mid-write can leave a corrupt file.
Here a store is a folder of *small* TinyDB files (one per session part, one per global table),
each held in memory by a :class:`JournaledStorage`:

- A write that touches one file appends only the changed documents, as one JSON line, to the
  file's journal (``<file>.log``) and fsyncs it: durable when the call returns, a few hundred
  microseconds, whatever the store's size. :class:`TrackingTable` tells the storage which
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

One process owns a store at a time (``store.lock`` with ``flock``); a second process gets
:class:`StoreLockedError` naming the holder. Within the process, callers serialise through
the repository's lock: TinyDB itself is not thread-safe.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from care_model.core.errors import StoreFormatError, StoreLockedError

TMP_SUFFIX = ".tmp-care"
TXN_FILE = "txn.json"
LOCK_FILE = "store.lock"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents durably: each new name is fsynced in its parent
    (a file fsynced in a folder whose own entry was never fsynced can vanish in a power cut)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        _fsync_dir(new.parent)


def dumps(data) -> bytes:
    """JSON as stored: UTF-8, ``ensure_ascii=False`` (Chinese stays readable and small)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _write_durable(path: Path, payload: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def replace_file(path: Path, payload: bytes) -> None:
    """Atomically and durably replace ``path`` with ``payload``."""
    make_dirs(path.parent)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    _write_durable(tmp, payload)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreFormatError(
            f"Store file {path} is not valid JSON ({err}).",
            "Restore it from a backup or an export; the store never writes files in place, "
            "so this file was changed outside the application.",
        ) from err


def replace_with(new: dict):
    """A TinyDB ``update`` operation that replaces a whole document by ``new``."""

    def op(doc):
        doc.clear()
        doc.update(new)

    return op


class _Touched(dict):
    """The table dict handed to TinyDB's updaters; records every document id they touch."""

    def __init__(self, data, touched: set):
        super().__init__(data)
        self.touched = touched

    def __getitem__(self, key):
        self.touched.add(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key, value):
        self.touched.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        self.touched.add(key)
        dict.__delitem__(self, key)

    def pop(self, key, *default):
        self.touched.add(key)
        return dict.pop(self, key, *default)

    def clear(self):
        self.touched.update(self.keys())
        dict.clear(self)

    def update(self, *args, **kwargs):  # pragma: no cover - TinyDB does not call it
        other = dict(*args, **kwargs)
        self.touched.update(other)
        dict.update(self, other)


class TrackingTable(Table):
    """A TinyDB table that tells its storage which documents a write touched.

    Same logic as ``Table._update_table`` in TinyDB 4.9, plus the bookkeeping that lets the
    storage append only the changed documents to its journal instead of rewriting the file.
    """

    def _update_table(self, updater):
        tables = self._storage.read()
        if tables is None:
            tables = {}
        raw_table = tables.get(self.name, {})
        touched: set = set()
        table = _Touched({self.document_id_class(k): doc for k, doc in raw_table.items()}, touched)
        updater(table)
        tables[self.name] = {str(k): doc for k, doc in dict.items(table)}
        self._storage.mark_dirty(self.name, {str(k) for k in touched})
        self._storage.write(tables)
        self.clear_cache()


class CareDB(TinyDB):
    table_class = TrackingTable


class JournaledStorage(Storage):
    """A TinyDB storage: data in memory, a snapshot file plus an append-only journal on disk.

    - ``read`` returns the in-memory tables (no disk access).
    - A write that touches one file appends the changed documents as one JSON line to
      ``<file>.log`` and fsyncs it (one small append, durable on return). A torn last line
      (a crash mid-append, never acknowledged) is dropped on the next load.
    - Now and then (or in a multi-file transaction) the whole file is written as a snapshot with
      an atomic replace; the snapshot records the journal sequence number it includes, so older
      journal lines are ignored on load and the journal is truncated.
    """

    SEQ_KEY = "_journal"
    MAX_LOG_LINES = 256
    MAX_LOG_BYTES = 4 << 20

    def __init__(self, path, fileset: "FileSet"):
        self.path = Path(path)
        self.log_path = self.path.with_name(self.path.name + ".log")
        self.fileset = fileset
        self._dirty: dict[str, set[str]] = {}
        self._seq = 0
        self._log_lines = 0
        self._log_bytes = 0
        self._data = self._load()

    # ----- loading -------------------------------------------------------------------
    def _load(self):
        data = read_json(self.path) if self.path.exists() else None
        if data is not None:
            self._seq = int((data.pop(self.SEQ_KEY, None) or {}).get("seq", 0))
        if not self.log_path.exists():
            return data
        raw = self.log_path.read_bytes()
        good = 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn tail: the append never completed, so it was never acknowledged
            try:
                entry = json.loads(line)
            except ValueError:
                break
            good += len(line)
            self._log_lines += 1
            if entry["seq"] <= self._seq:
                continue
            data = data if data is not None else {}
            for table, doc_id, doc in entry["changes"]:
                rows = data.setdefault(table, {})
                if doc is None:
                    rows.pop(doc_id, None)
                else:
                    rows[doc_id] = doc
            self._seq = entry["seq"]
        if good < len(raw):
            with open(self.log_path, "r+b") as fh:  # (a crash before this is durable drops the tail again)
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        self._log_bytes = good
        return data

    # ----- the TinyDB storage interface ------------------------------------------------
    def read(self):
        return self._data

    def write(self, data) -> None:
        self._data = data
        self.fileset._persist(self)

    def close(self) -> None:
        pass

    # ----- persistence -------------------------------------------------------------------
    def mark_dirty(self, table: str, doc_ids: set[str]) -> None:
        self._dirty.setdefault(table, set()).update(doc_ids)

    def can_append(self) -> bool:
        return (self.path.exists() and self._log_lines < self.MAX_LOG_LINES
                and self._log_bytes < self.MAX_LOG_BYTES and bool(self._dirty))

    def append(self) -> None:
        """Append the changed documents as one journal line, durable on return."""
        tables = self._data or {}
        changes = [[t, i, tables.get(t, {}).get(i)] for t, ids in self._dirty.items() for i in sorted(ids)]
        line = dumps({"seq": self._seq + 1, "changes": changes}) + b"\n"
        new_file = not self.log_path.exists()
        with open(self.log_path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        if new_file:
            _fsync_dir(self.log_path.parent)
        self._seq += 1
        self._log_lines += 1
        self._log_bytes += len(line)
        self._dirty.clear()

    def snapshot_payload(self) -> bytes:
        data = dict(self._data or {})
        data[self.SEQ_KEY] = {"seq": self._seq}
        return dumps(data)

    def snapshot_done(self) -> None:
        """After a snapshot is durable: the journal holds nothing newer, so empty it."""
        self._dirty.clear()
        if self._log_bytes:  # (not needed for durability: lines the snapshot holds are skipped by seq)
            with open(self.log_path, "r+b") as fh:
                fh.truncate(0)
                fh.flush()
                os.fsync(fh.fileno())
        self._log_lines = self._log_bytes = 0

    def discard_changes(self) -> None:
        self._dirty.clear()


class StoreLock:
    """An exclusive, process-wide lock on a store folder (released when the process dies)."""

    def __init__(self, root: Path):
        self.path = root / LOCK_FILE
        self._fh = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreLockedError(
                f"The store {self.path.parent} is open in {holder}.",
                "Use that process (for example the running app) or stop it first; two processes "
                "writing one store would corrupt it.",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} ({' '.join(_cmdline())})")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _cmdline() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
        parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
        return [Path(parts[0]).name] + parts[1:4] if parts else ["python"]
    except OSError:  # pragma: no cover - non-Linux
        return ["python"]


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
                    _fsync_dir(folder)
            txn.unlink()
            _fsync_dir(self.root)
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
            _write_durable(tmp, st.snapshot_payload())
            renames.append([str(tmp.relative_to(self.root)), str(st.path.relative_to(self.root))])
            folders.add(st.path.parent)
        for folder in folders:
            _fsync_dir(folder)
        txn = self.root / TXN_FILE
        _write_durable(txn, json.dumps({"renames": renames}).encode("utf-8"))
        _fsync_dir(self.root)  # commit point: from here on, recovery rolls forward
        for tmp_rel, final_rel in renames:
            os.replace(self.root / tmp_rel, self.root / final_rel)
        for folder in folders:
            _fsync_dir(folder)
        txn.unlink()
        _fsync_dir(self.root)
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
