"""Which process is a run's: its PID, its start time and the boot it started in (Linux ``/proc``).

A PID alone is not an identity. After a reboot, or once the process has exited and PIDs have
wrapped around, the same number belongs to an unrelated process, and a manager that trusts it
keeps a dead run "running" forever or signals someone else's process group. A record made by
:func:`identify` right after the start holds the PID, the process's start time in clock ticks
since boot (field 22 of ``/proc/PID/stat``) and the boot id (``/proc/sys/kernel/random/boot_id``);
:func:`state` says ``running`` only when all three still match a live (non-zombie) process, and
:func:`signal_group` signals nothing else.
"""
from __future__ import annotations

import os
from pathlib import Path

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    try:
        return BOOT_ID_FILE.read_text(encoding="ascii").strip()
    except OSError:  # pragma: no cover - not Linux
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks since boot) of a live PID, or None if there is none."""
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = raw.rsplit(") ", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])


def identify(pid: int) -> dict:
    """The identity record of a process that is running now (call it right after starting it)."""
    st = _stat(pid)
    return {"pid": int(pid), "start_ticks": st[1] if st else None, "boot_id": boot_id()}


def state(record: dict | None) -> str:
    """``running``; ``exited`` (nothing has that PID, or only a zombie); ``reused`` (another
    process has the PID: started at another time or in another boot); ``unknown`` (a record
    without start time or boot id, e.g. written by an older version: never trusted)."""
    if not record or not record.get("pid"):
        return "exited"
    st = _stat(record["pid"])
    if st is None or st[0] == "Z":
        return "exited"
    if record.get("start_ticks") is None or record.get("boot_id") is None:
        return "unknown"
    if record["boot_id"] != boot_id() or record["start_ticks"] != st[1]:
        return "reused"
    return "running"


def signal_group(record: dict | None, sig: int) -> bool:
    """Send ``sig`` to the record's process group if, and only if, the record still names its process."""
    if state(record) != "running":
        return False
    try:
        os.killpg(int(record["pid"]), sig)
    except OSError:
        return False
    return True
