"""The store lock: one process owns a store folder at a time (``store.lock`` with ``flock``)."""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from care_model.core.errors import StoreLockedError

LOCK_FILE = "store.lock"


class StoreLock:
    """An exclusive, process-wide lock on a store folder (released when the process dies)."""

    def __init__(self, root: Path):
        self.path = root / LOCK_FILE
        self._fh = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # owner-only, like every store file
        fh = os.fdopen(fd, "a+")
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
