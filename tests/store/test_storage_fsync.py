"""Durability against power cuts, not just process kills: every acknowledged write was fsynced.

A SIGKILL keeps the page cache, so ``test_store_durability`` would pass with every ``os.fsync``
removed. Here :class:`crashdisk.CrashDisk` models a disk that keeps only what was fsynced (file
data at its file's last fsync, folder entries at the folder's last fsync). For each repository
write (label saves through the journal and through snapshots, a multi-label submit, users,
collections, multi-file imports and predictions) the test reopens the store from the disk's
durable state:

- at the acknowledgement (the call returned): the store holds the write;
- at every moment during the call (before each fsync): the store opens and holds either the state
  before the call or the state after it, never a part (labels with their audit, all sessions of
  an import or none);
- for a transaction that crashed after its commit point: a second power cut at any moment of the
  recovery still ends with the whole transaction.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from care_model.core.records import SHARED
from crashdisk import CrashDisk
from factories import make_label, make_prediction, make_session
from store import Repository
from store.formats.common import ImportBatch, RatingRecord
from store.journal import JournaledStorage
from store.storage import TXN_FILE


def digest(repo: Repository) -> dict:
    """Everything a write can change, in comparable form."""
    ids = repo.session_ids()
    return {
        "sessions": ids,
        "ratings": {sid: repo.get_session(sid).ratings for sid in ids},
        "labels": [(lab.session_id, lab.item, lab.annotator, lab.version, lab.score,
                    lab.status) for lab in repo.labels()],
        "predictions": sorted(p.id for sid in ids for p in repo.predictions(sid, history=True)),
        "users": sorted((u["username"], u["role"]) for u in repo.users()),
        "runs": sorted((d["id"], d["version"]) for d in repo.collection("runs").all()),
        "audit": sorted((e["entity"], e["entity_id"], e["action"]) for e in repo.audit()),
    }


def reopen(folder: Path) -> dict:
    with Repository(folder, create=False) as repo:
        return digest(repo)


class PowerCuts:
    """Runs writes on a store over one CrashDisk and keeps an image of the disk at every fsync."""

    def __init__(self, store: Path, scratch: Path):
        self.store, self.scratch = store, scratch
        self.disk = CrashDisk(store, before_fsync=self._before_fsync)
        self.images: list[Path] = []
        self.checked = self.recoveries = 0
        self._n = 0
        self._cutting = False

    def _before_fsync(self, n: int) -> None:
        if self._cutting:
            self.images.append(self._cut())

    def _cut(self) -> Path:
        self._n += 1
        return self.disk.image(self.scratch / f"cut-{self._n:04d}")

    def check(self, repo: Repository, write) -> None:
        before = digest(repo)
        self.images.clear()
        self._cutting = True
        try:
            write(repo)
        finally:
            self._cutting = False
        acked = self._cut()
        after = digest(repo)
        assert after != before, "the write changed nothing: the check would prove nothing"
        assert reopen(acked) == after, f"{write.__name__}: an acknowledged write was not durable"
        recovered = False
        for image in self.images:
            committed = (image / TXN_FILE).exists()
            if committed and not recovered:
                self._crash_during_recovery(image, after)
                recovered = True
            state = reopen(image)
            assert state in (before, after), f"{write.__name__}: a power cut at {image.name} left a partial write"
            if committed:
                assert state == after, f"{write.__name__}: a transaction past its commit point was lost"
            self.checked += 1

    def _crash_during_recovery(self, image: Path, after: dict) -> None:
        """A second power cut at every fsync of the recovery of ``image`` (a copy of it), and of a
        transaction right after it that rewrites every session file: a leftover intent record
        must not roll that one forward half-staged."""
        copy = image.with_name(image.name + "-recovering")
        shutil.copytree(image, copy)
        cuts: list[Path] = []
        with CrashDisk(copy,
                       before_fsync=lambda n: cuts.append(disk.image(copy.with_name(f"{copy.name}-{n}")))) as disk:
            with Repository(copy, create=False) as repo:
                cuts.append(disk.image(copy.with_name(f"{copy.name}-recovered")))
                recovered = len(cuts)
                assert digest(repo) == after
                rate_every_session(repo)
                rated = digest(repo)
        assert recovered > 1, "recovery of a committed transaction wrote nothing durable"
        for k, cut in enumerate(cuts):
            state = reopen(cut)
            assert state == after if k < recovered else state in (after, rated), \
                f"a power cut at {cut.name}, after recovering {image.name}, lost or split a transaction"
        self.recoveries += 1


def rate_every_session(repo: Repository) -> None:
    """One transaction over every session's session.json."""
    ratings = [RatingRecord(sid, "counselor", {i: 3 for i in range(1, 13)}, "test") for sid in repo.session_ids()]
    repo.import_batch(ImportBatch(ratings=ratings))


@pytest.fixture
def cuts(tmp_path, monkeypatch):
    monkeypatch.setattr(JournaledStorage, "MAX_LOG_LINES", 3)  # snapshots as well as journal appends
    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.add_sessions([make_session("s1"), make_session("s2")])
    return PowerCuts(store, tmp_path / "cuts")


def test_every_acknowledged_write_survives_a_power_cut(cuts):
    def save(item, score, version=0):
        def save_label(repo):
            repo.save_label(make_label("s1", item, score=score), actor="ann", expected_version=version)
        return save_label

    def submit(repo):
        labs = [(make_label("s2", i, score=2, status="submitted"), 0) for i in (1, 2)]
        repo.save_labels(labs, actor="ann")

    def add_user(repo):
        repo.add_user("expert1", "long-enough-pw", "annotator", actor="admin")

    def put_run(repo):
        repo.collection("runs").put({"id": "run-1", "status": "running"}, actor="admin")

    def import_two_sessions(repo):  # a multi-file transaction creating new folders
        repo.add_sessions([make_session("s3"), make_session("s4")])

    def import_one_session(repo):  # a single new file in a new folder
        repo.add_sessions([make_session("s5")])

    def predict_two_sessions(repo):  # a multi-file transaction over existing files
        repo.add_predictions([make_prediction("s1", 1), make_prediction("s3", 1)])

    def predict_three_sessions(repo):  # the same files and one more: a stale intent must not apply
        repo.add_predictions([make_prediction("s1", 2), make_prediction("s3", 2), make_prediction("s4", 2)])

    def rate(repo):
        repo.set_ratings("s2", "client", {str(i): 4 for i in range(1, 13)})

    writes = [save(i, i % 5 + 1) for i in range(1, 6)] + [save(1, 5, version=1), submit, add_user, put_run,
                                                         import_two_sessions, import_one_session,
                                                         predict_two_sessions, predict_three_sessions, rate,
                                                          rate_every_session, save(2, 1, version=1)]
    with cuts.disk, Repository(cuts.store) as repo:
        for write in writes:
            cuts.check(repo, write)
        assert repo.get_label("s1", 1, SHARED).version == 2
    assert cuts.checked > 3 * len(writes), "too few crash points: the disk layer did not see the fsyncs"
    assert cuts.recoveries >= 2, "no power cut landed after a transaction's commit point"
