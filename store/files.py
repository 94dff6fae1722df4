"""Durable file primitives of the store: fsynced folders, atomic replaces, the JSON encoding.

Every file the store writes goes through here: a new folder's name is fsynced in its parent, a
file is replaced by writing a temporary file in the same folder, fsyncing it, ``os.replace`` and
fsyncing the folder (see :mod:`store.storage` for why).

Store files hold transcripts and password hashes, so they are private to the OS account that runs
the store: folders are created 0700 and files 0600 whatever the umask (:data:`DIR_MODE`,
:data:`FILE_MODE`); :func:`make_private` fixes a store made before that (see
:meth:`store.repository.Repository`), and :data:`PRIVATE_UMASK` is the umask the repository sets
for what else the process writes into a store (training runs, cross-validation folders).
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from care_model.core.errors import StoreFormatError

TMP_SUFFIX = ".tmp-care"
DIR_MODE, FILE_MODE = 0o700, 0o600
PRIVATE_UMASK = 0o077


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
        new.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(new, DIR_MODE)  # mkdir's mode is masked by the umask; this is exact
        fsync_dir(new.parent)


def dumps(data) -> bytes:
    """JSON as stored: UTF-8, ``ensure_ascii=False`` (Chinese stays readable and small)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def open_private(path: Path, flags: int):
    """``os.open`` of a store file with owner-only permissions when it is created (binary file object)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    mode = "ab" if flags & os.O_APPEND else ("r+b" if flags & os.O_RDWR else "wb")
    return os.fdopen(fd, mode)


def write_durable(path: Path, payload: bytes) -> None:
    with open_private(path, os.O_WRONLY | os.O_TRUNC) as fh:
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


def make_private(root: Path) -> dict:
    """Make every folder under ``root`` 0700 and every file 0600 (symlinks are left alone); returns
    how many were changed, for the message a store made before issue 19 gets when it is opened."""
    fixed = {"folders": 0, "files": 0}
    for path in [Path(root), *Path(root).rglob("*")]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        want, kind = (DIR_MODE, "folders") if stat.S_ISDIR(st.st_mode) else (FILE_MODE, "files")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & want)
            fixed[kind] += 1
    return fixed
