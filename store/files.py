"""Durable file primitives of the store: fsynced folders, atomic replaces, the JSON encoding.

Every file the store writes goes through here: a new folder's name is fsynced in its parent, a
file is replaced by writing a temporary file in the same folder, fsyncing it, ``os.replace`` and
fsyncing the folder (see :mod:`store.storage` for why).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from care_model.core.errors import StoreFormatError

TMP_SUFFIX = ".tmp-care"


def fsync_dir(path: Path) -> None:
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
        fsync_dir(new.parent)


def dumps(data) -> bytes:
    """JSON as stored: UTF-8, ``ensure_ascii=False`` (Chinese stays readable and small)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write_durable(path: Path, payload: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def replace_file(path: Path, payload: bytes) -> None:
    """Atomically and durably replace ``path`` with ``payload``."""
    make_dirs(path.parent)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    write_durable(tmp, payload)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreFormatError(
            f"Store file {path} is not valid JSON ({err}).",
            "Restore it from a backup or an export; the store never writes files in place, "
            "so this file was changed outside the application.",
        ) from err
