"""care_model.training.procs: a process is recognised by PID, start time and boot; nothing else is signalled."""
from __future__ import annotations

import signal
import subprocess

import pytest

from care_model.training import procs


@pytest.fixture
def stranger():
    """An unrelated process in its own process group (what a reused PID would name)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_the_recorded_process_is_running_and_can_be_signalled(stranger):
    record = procs.identify(stranger.pid)
    assert record["start_ticks"] > 0 and record["boot_id"]
    assert procs.state(record) == "running"
    assert procs.signal_group(record, signal.SIGTERM)
    assert stranger.wait(timeout=10) == -signal.SIGTERM
    assert procs.state(record) == "exited"
    assert not procs.signal_group(record, signal.SIGTERM)


@pytest.mark.parametrize("stale", ["earlier start", "other boot", "no identity"])
def test_a_reused_pid_is_never_signalled(stranger, stale):
    real = procs.identify(stranger.pid)
    record = {"earlier start": {**real, "start_ticks": real["start_ticks"] - 1},
              "other boot": {**real, "boot_id": "00000000-0000-0000-0000-000000000000"},
              "no identity": {"pid": stranger.pid}}[stale]  # a record as older versions wrote it
    assert procs.state(record) == ("unknown" if stale == "no identity" else "reused")
    assert not procs.signal_group(record, signal.SIGTERM)
    assert stranger.poll() is None, "the unrelated process was signalled"


def test_no_pid_or_a_zombie_is_not_running():
    assert procs.state(None) == procs.state({"pid": None}) == "exited"
    child = subprocess.Popen(["true"])
    record = procs.identify(child.pid)
    import time
    for _ in range(100):  # exited but not reaped: a zombie keeps its PID
        if procs._stat(child.pid)[0] == "Z":
            break
        time.sleep(0.02)
    assert procs.state(record) == "exited"
    child.wait()
