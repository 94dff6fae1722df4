"""A disk that forgets what was not fsynced: what a store folder would hold after a power cut.

The SIGKILL tests keep the page cache, so they pass even with every ``os.fsync`` removed. This
layer models the disk instead (the POSIX contract, as ext4 and XFS honour it):

- a file's *data* is durable as it was at its last ``fsync`` of that file (never fsynced and new:
  empty; never fsynced but there before recording began: as it was then);
- a folder's *entries* (creations, renames, unlinks) are durable as they were at its last
  ``fsync`` of the folder itself (a new file's name survives only once its folder is fsynced).

:class:`CrashDisk` (a context manager) wraps ``os.fsync`` (the real call still runs) and, at each call, records the
file's content or the folder's entries by inode. :meth:`CrashDisk.image` writes the durable
state into a fresh folder: the store as it would reopen after a crash at that moment. The hook
``before_fsync`` lets a test take an image at every point where the durable state is about to
change, i.e. after a crash at any moment of a write. Inodes referenced by a record are kept open
so that their numbers cannot be reused by later files.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

REAL_FSYNC = os.fsync


class CrashDisk:
    def __init__(self, root: Path, before_fsync: Callable[[int], None] | None = None):
        self.root = Path(root)
        self.root_ino = os.stat(self.root).st_ino
        self.data: dict[int, bytes] = {}      # inode -> durable bytes
        self.entries: dict[int, dict[str, int]] = {}  # folder inode -> durable {name: inode}
        self.is_dir: dict[int, bool] = {}
        self.fsyncs = 0
        self.before_fsync = before_fsync
        self._held: dict[int, int] = {}        # inode -> an fd that keeps it allocated
        self._previous = None
        for folder, dirs, files in os.walk(self.root):  # the starting state counts as durable
            self._record_folder(folder)
            for name in files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                self._hold(path, st)
                self.data[st.st_ino] = Path(path).read_bytes()

    def __enter__(self) -> "CrashDisk":
        """Record from now on: ``os.fsync`` goes through this disk until the block ends."""
        self._previous, os.fsync = os.fsync, self._fsync
        return self

    def __exit__(self, *exc) -> None:
        os.fsync = self._previous
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    # ----- recording ---------------------------------------------------------------------
    def _hold(self, path: str, st: os.stat_result) -> None:
        if st.st_ino not in self._held:
            flags = os.O_RDONLY | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0)
            self._held[st.st_ino] = os.open(path, flags)
        self.is_dir[st.st_ino] = stat.S_ISDIR(st.st_mode)

    def _record_folder(self, folder: str) -> None:
        listing = {}
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            self._hold(path, st)
            listing[name] = st.st_ino
        self.entries[os.stat(folder).st_ino] = listing

    def _fsync(self, fd: int) -> None:
        proc_path = f"/proc/self/fd/{fd}"
        target = os.readlink(proc_path)
        if target != str(self.root) and not target.startswith(f"{self.root}/"):
            return REAL_FSYNC(fd)  # another folder (a test reopening an image): not this disk
        if self.before_fsync is not None:
            self.before_fsync(self.fsyncs)
        self.fsyncs += 1
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            self._record_folder(target)
        else:
            self._hold(proc_path, st)
            with open(proc_path, "rb") as fh:  # the same inode, even if renamed or unlinked since
                self.data[st.st_ino] = fh.read()
        REAL_FSYNC(fd)

    # ----- the crash -----------------------------------------------------------------------
    def image(self, dest: Path) -> Path:
        """Write what the disk holds after a power cut now into ``dest`` (a new folder)."""

        def build(folder_ino: int, out: Path) -> None:
            out.mkdir(parents=True)
            for name, ino in self.entries.get(folder_ino, {}).items():
                if self.is_dir[ino]:
                    build(ino, out / name)
                else:
                    (out / name).write_bytes(self.data.get(ino, b""))

        build(self.root_ino, Path(dest))
        return Path(dest)
