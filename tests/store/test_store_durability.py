"""Nothing lost: SIGKILL at random moments, 8 writer threads, stale writers, a second process."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from care_model.core.errors import ConflictError, StoreLockedError
from care_model.core.records import SHARED, Label
from store import Repository

from factories import make_session

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys, itertools
    sys.path.insert(0, {root!r})
    from store import Repository
    from store.journal import JournaledStorage
    from care_model.core.records import Label, Session
    JournaledStorage.MAX_LOG_LINES = 7   # snapshot often, so kills also land mid-snapshot
    repo = Repository({store!r})
    run = int(sys.argv[1])
    for k in itertools.count():
        if k % 9 == 4:   # a multi-file transaction: a new session (3 new files)
            sid = f"run{{run}}-{{k}}"
            repo.add_sessions([Session(id=sid,
                                       turns=[{{"index": 0, "speaker": "client", "text": f"hello {{run}} {{k}}"}}])])
            print(f"SESSION {{sid}}", flush=True)
            continue
        item = k % 12 + 1
        cur = repo.get_label("s1", item, "@shared")
        lab = Label(session_id="s1", item=item, annotator="@shared", score=k % 5 + 1,
                    rationale=f"run {{run}} save {{k}} " + "x" * (k % 300))
        saved = repo.save_label(lab, actor="writer", expected_version=cur.version if cur else 0)
        print(f"ACK {{item}} {{saved.version}} {{lab.rationale[:30]}}", flush=True)
""")


@pytest.mark.parametrize("runs", [12, pytest.param(48, marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path, runs):
    """``runs`` writer processes, each killed at a random moment (12 in `make test`, 48 in `make test-slow`)."""
    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.add_sessions([make_session("s1", n_turns=4)])
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), store=str(store)))
    rng = random.Random(7)
    acked: dict[int, tuple[int, str]] = {}
    sessions_acked: set[str] = set()
    kills = 0
    for run in range(runs):
        proc = subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.6, 1.4))  # interpreter start is ~0.4 s; then it writes flat out
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        for line in out.splitlines():
            if line.startswith("ACK "):
                _, item, version, text = line.split(" ", 3)
                acked[int(item)] = (int(version), text)
            elif line.startswith("SESSION "):
                sessions_acked.add(line.split(" ", 1)[1])
        # Reopen after every kill: the store opens and holds every acknowledged write.
        with Repository(store) as repo:
            for item, (version, text) in acked.items():
                label = repo.get_label("s1", item, SHARED)
                assert label is not None and label.version >= version, (run, item)
                if label.version == version:
                    assert label.rationale.startswith(text)
            assert sessions_acked <= set(repo.session_ids())
            versions = {e["after"]["version"] for e in repo.audit(session_id="s1") if e["entity"] == "label"}
            assert len(versions) >= max(v for v, _ in acked.values())
    assert kills == runs
    assert sum(v for v, _ in acked.values()) > 4 * runs, "the writer must have done real work between kills"


def test_eight_threads_times_one_hundred_saves_all_persist(tmp_path):
    store = tmp_path / "store"
    repo = Repository(store)
    repo.add_sessions([make_session(f"s{i}") for i in range(10)])
    errors = []

    def work(t):
        try:
            for k in range(100):
                sid, item = f"s{k % 10}", k // 10 + 1
                lab = Label(session_id=sid, item=item, annotator=f"expert{t}", score=(k + t) % 5 + 1,
                            rationale=f"thread {t} save {k}")
                repo.save_label(lab, actor=f"expert{t}", expected_version=0)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    repo.close()
    with Repository(store) as again:
        labels = again.labels()
        assert len(labels) == 800
        assert {lab.rationale for lab in labels} == {f"thread {t} save {k}" for t in range(8) for k in range(100)}
        assert len([e for e in again.audit() if e["entity"] == "label"]) == 800


def test_two_stale_writers_exactly_one_wins(tmp_path):
    repo = Repository(tmp_path / "store")
    repo.add_sessions([make_session("s1")])
    base = repo.save_label(Label(session_id="s1", item=5, annotator=SHARED, score=3, rationale="start"),
                           actor="alice", expected_version=0)
    barrier = threading.Barrier(2)
    results = {}

    def writer(name, score):
        barrier.wait()
        try:
            results[name] = repo.save_label(
                Label(session_id="s1", item=5, annotator=SHARED, score=score, rationale=f"by {name}"),
                actor=name, expected_version=base.version)
        except ConflictError as err:
            results[name] = err

    threads = [threading.Thread(target=writer, args=("bob", 2)), threading.Thread(target=writer, args=("carol", 5))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    winners = [n for n, r in results.items() if isinstance(r, Label)]
    losers = [n for n, r in results.items() if isinstance(r, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1
    err = results[losers[0]]
    assert winners[0] in str(err) and err.current.updated_by == winners[0]
    assert err.current.updated_at in str(err) and "Fix:" in str(err)
    stored = repo.get_label("s1", 5, SHARED)
    assert stored.rationale == f"by {winners[0]}" and stored.version == base.version + 1
    repo.close()


def test_second_process_gets_a_clear_error_and_changes_nothing(tmp_path):
    store = tmp_path / "store"
    repo = Repository(store)
    repo.add_sessions([make_session("s1")])
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.name != "store.lock"}
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from store import Repository; Repository({str(store)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "StoreLockedError" in proc.stderr and "process" in proc.stderr and "Fix:" in proc.stderr
    after = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.name != "store.lock"}
    assert after == before
    with pytest.raises(StoreLockedError):
        Repository(store)  # a second handle in the same process is refused too
    repo.close()
    Repository(store).close()  # released on close
