"""The journaled TinyDB storage of one store file: data in memory, a snapshot plus a journal on disk.

:class:`TrackingTable` tells the storage which documents a TinyDB write touched, so that
:class:`JournaledStorage` can append only those to the file's journal; :class:`CareDB` is the
TinyDB that uses it. The :class:`~store.storage.FileSet` decides when to append and when to
write a snapshot (see :mod:`store.storage`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from .files import dumps, fsync_dir, open_private, read_json


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

    def __init__(self, path, fileset):  # fileset: the store.storage.FileSet that persists writes
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
        with open_private(self.log_path, os.O_WRONLY | os.O_APPEND) as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        if new_file:
            fsync_dir(self.log_path.parent)
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
