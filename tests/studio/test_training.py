"""studio.training.TrainingManager against a run record left by an app that is gone (a reboot):
its PID now names an unrelated process, which must not be signalled, and the run is marked over."""
from __future__ import annotations

import subprocess

import pytest

from care_model.training import procs
from care_model.core.records import now_iso
from care_model.training.run import RUNS
from care_model.training.runs import write_json
from store import Repository
from studio.access import access_of
from studio.training import TrainingManager


@pytest.fixture
def stale(tmp_path):
    """A store whose only run is 'running' under a PID that, since a reboot, is an unrelated process."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    repo = Repository(tmp_path / "store")
    repo.add_user("admin", "password123", "admin")
    run_dir = tmp_path / "store" / "runs" / "old"
    run_dir.mkdir(parents=True)
    before_reboot = {**procs.identify(stranger.pid), "boot_id": "00000000-0000-0000-0000-000000000000"}
    write_json(run_dir / "process.json", {**before_reboot, "cmd": ["python", "-m", "care_model.jobs.retrain"]})
    repo.collection(RUNS).put({"id": "old", "status": "running", "pid": stranger.pid, "run_dir": str(run_dir),
                               "created_at": now_iso(), "started_by": "admin"}, actor="admin")
    yield repo, stranger
    repo.close()
    if stranger.poll() is None:
        stranger.kill()
        stranger.wait()


def test_a_reused_pid_after_a_reboot_marks_the_run_failed(stale):
    repo, stranger = stale
    mgr = TrainingManager(repo)
    assert mgr.poll()["status"] == "failed"
    doc = repo.collection(RUNS).require("old")
    assert "belongs to another process" in doc["error"] and "Resume the run" in doc["error"]
    assert mgr.current() is None and mgr.status()["running"] is False
    assert stranger.poll() is None


def test_cancelling_a_stale_run_signals_nobody(stale, monkeypatch):
    repo, stranger = stale
    sent = []
    real_killpg = procs.os.killpg
    monkeypatch.setattr(procs.os, "killpg", lambda pid, sig: (sent.append(pid), real_killpg(pid, sig)))
    mgr = TrainingManager(repo)
    assert mgr.cancel(access_of(repo, "admin"))["cancel_requested"]["by"] == "admin"
    assert sent == [] and stranger.poll() is None, "the unrelated process group was signalled"
    assert mgr.poll()["status"] == "cancelled"
    assert stranger.poll() is None
