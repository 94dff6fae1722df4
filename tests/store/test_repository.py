"""The repository's behaviour on a real store folder."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from care_model.core.errors import AuthError, ConflictError, NotFoundError, StoreFormatError, ValidationError
from care_model.core.records import ADJUDICATED, SHARED, Label
from store import Repository
from store.files import dumps

from factories import make_label, make_prediction, make_session


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "store")
    r.add_sessions([make_session("s1", ratings={i: 4 for i in range(1, 13)}), make_session("s2", language="zh")])
    yield r
    r.close()


def files_of(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "store.lock"}


def test_reimport_same_content_creates_no_duplicates(repo):
    report = repo.add_sessions([make_session("s1", ratings={i: 4 for i in range(1, 13)}), make_session("s3")])
    assert report.added == ["s3"] and report.skipped == ["s1"]
    renamed = make_session("s1")
    renamed.id = "s1-copy"
    report = repo.add_sessions([renamed])
    assert report.added == [] and "same turns" in report.warnings[0]
    assert repo.session_ids() == ["s1", "s2", "s3"]


def test_conflicting_import_is_all_or_nothing(repo):
    before = files_of(repo.root)
    changed = make_session("s1", texts=["different", "turns"])
    with pytest.raises(ValidationError, match="already in the store with different turns.*Fix"):
        repo.add_sessions([make_session("s9"), changed])
    assert files_of(repo.root) == before
    assert not repo.has_session("s9")
    bad_rating = SimpleNamespace(sessions=[make_session("s8")], predictions=[], labels=[], warnings=[],
                                 ratings=[SimpleNamespace(session_id="nope", rater="client", ratings={},
                                                          where="r.csv:3")])
    with pytest.raises(ValidationError, match="r.csv:3: rating for unknown session 'nope'"):
        repo.import_batch(bad_rating)
    assert files_of(repo.root) == before and not repo.has_session("s8")


def test_ratings_are_validated_and_set(repo):
    with pytest.raises(ValidationError, match="outside the wai-sr scale"):
        repo.set_ratings("s2", "client", {**{i: 3 for i in range(1, 12)}, 12: 9})
    with pytest.raises(ValidationError, match=r"Missing items \[12\]"):
        repo.set_ratings("s2", "client", {i: 3 for i in range(1, 12)})
    repo.set_ratings("s2", "counselor", {i: 2 for i in range(1, 13)})
    assert repo.get_session("s2").ratings["counselor"][7] == 2


def test_labels_never_overwrite_predictions(repo):
    repo.add_predictions([make_prediction("s1", i, score=2) for i in range(1, 13)])
    pred = repo.open_session("s1").predictions[3]
    lab = make_label("s1", 3, score=5)
    lab.prediction_id = pred.id
    repo.save_label(lab, actor="alice", expected_version=0)
    view = repo.open_session("s1")
    assert view.predictions[3].score == 2 and view.predictions[3].rationale == pred.rationale
    assert view.labels[0].score == 5 and view.labels[0].prediction_id == pred.id


def test_newer_prediction_of_a_version_is_the_current_one_and_history_is_kept(repo):
    repo.add_predictions([make_prediction("s1", 1, score=2, pid="a")])
    repo.add_predictions([make_prediction("s1", 1, score=4, pid="b")])
    repo.add_predictions([make_prediction("s1", 1, score=1, version="m2", pid="c")])
    assert repo.open_session("s1", model_version="m1").predictions[1].score == 4
    assert repo.open_session("s1").model_version == "m2"
    assert [p.id for p in repo.predictions("s1", "m1", history=True)] == ["a", "b"]
    assert repo.predicted_versions("s1") == {"m1": 1, "m2": 1}
    with pytest.raises(ValidationError, match="append-only"):
        repo.add_predictions([make_prediction("s1", 2, pid="a")])


def test_label_versions_conflicts_and_audit(repo):
    first = repo.save_label(make_label("s1", 4, score=3, rationale="v1"), actor="alice", expected_version=0)
    assert (first.version, first.created_by, first.updated_by) == (1, "alice", "alice")
    second = repo.save_label(make_label("s1", 4, score=2, rationale="v2"), actor="bob", expected_version=1)
    assert second.version == 2 and second.created_by == "alice" and second.updated_by == "bob"
    with pytest.raises(ConflictError) as info:
        repo.save_label(make_label("s1", 4, score=5, rationale="stale"), actor="carol", expected_version=1)
    assert "bob" in str(info.value) and info.value.current.rationale == "v2"
    assert repo.get_label("s1", 4, SHARED).rationale == "v2"
    trail = repo.audit(entity_id=first.id)
    assert [(e["who"], e["before"] and e["before"]["rationale"], e["after"]["rationale"]) for e in trail] == [
        ("alice", None, "v1"), ("bob", "v1", "v2")]


@pytest.mark.parametrize("change, message", [
    (dict(score=6), "outside the wai-sr scale"),
    (dict(item=13), "Unknown item 13"),
    (dict(status="final"), "Unknown label status"),
    (dict(status="submitted", score=None), "cannot be submitted without a score"),
    (dict(evidence=[99]), r"Evidence turns \[99\] are not in session"),
    (dict(change_reasons=["vibes"]), "Unknown change reason"),
])
def test_bad_labels_are_refused_and_store_untouched(repo, change, message):
    before = files_of(repo.root)
    lab = make_label("s1", 2)
    for k, v in change.items():
        setattr(lab, k, v)
    with pytest.raises(ValidationError, match=message):
        repo.save_label(lab, actor="alice", expected_version=0)
    assert files_of(repo.root) == before


def test_save_labels_is_all_or_nothing(repo):
    good = make_label("s1", 1, status="submitted")
    bad = make_label("s1", 2, status="submitted")
    bad.score = None
    with pytest.raises(ValidationError):
        repo.save_labels([(good, 0), (bad, 0)], actor="alice")
    assert repo.labels("s1") == []
    saved = repo.save_labels([(make_label("s1", i, status="submitted"), 0) for i in range(1, 13)], actor="alice")
    assert len(saved) == 12 and len(repo.labels(status="submitted")) == 12


def test_users_store_only_salted_hashes_and_roles_are_checked(repo):
    repo.add_user("alice", "correct horse", "annotator", actor="admin")
    repo.add_user("bob", "correct horse", "admin", actor="admin")
    raw = (repo.root / "users.json").read_bytes() + (repo.root / "users.json.log").read_bytes()
    assert b"correct horse" not in raw
    hashes = [u["password"] for u in json.loads((repo.root / "users.json").read_bytes()).get("users", {}).values()]
    lines = [json.loads(line) for line in (repo.root / "users.json.log").read_bytes().splitlines()]
    hashes += [c[2]["password"] for line in lines for c in line["changes"] if c[0] == "users" and c[2]]
    assert len(set(hashes)) == len(hashes) >= 2, "same password, different salts"
    assert repo.check_password("alice", "correct horse") and not repo.check_password("alice", "wrong")
    assert not repo.check_password("nobody", "correct horse")
    with pytest.raises(ValidationError, match="Unknown role"):
        repo.add_user("carol", "password99", "superuser")
    with pytest.raises(ValidationError, match="already exists"):
        repo.add_user("alice", "password99", "annotator")
    repo.set_role("alice", "adjudicator", actor="bob")
    assert repo.role_of("alice") == "adjudicator"
    repo.set_active("alice", False, actor="bob")
    assert not repo.check_password("alice", "correct horse")
    with pytest.raises(AuthError):
        repo.role_of("alice")
    assert [e["action"] for e in repo.audit(entity_id="alice")] == ["create", "set_role", "deactivate"]
    assert all("password" not in (e["after"] or {}) for e in repo.audit(entity_id="alice"))


def test_assignments(repo):
    repo.add_user("alice", "password1", "annotator")
    repo.add_user("bob", "password1", "annotator")
    assert repo.assign(["s1", "s2"], ["alice"], actor="admin") == 2
    assert repo.assign(["s1"], ["bob"], actor="admin", mode="independent") == 1
    assert repo.assignments() == {"s1": {"annotators": ["alice", "bob"], "mode": "independent"},
                                  "s2": {"annotators": ["alice"], "mode": "shared"}}
    repo.unassign("s1", "alice", actor="admin")
    assert repo.assignments()["s1"]["annotators"] == ["bob"]
    with pytest.raises(NotFoundError):
        repo.assign(["s1"], ["ghost"], actor="admin")


def test_collections_are_versioned_and_audited(repo):
    mv = repo.collection("model_versions")
    doc = mv.put({"id": "v1", "status": "candidate"}, actor="admin")
    assert doc["version"] == 1
    mv.put({**doc, "status": "active"}, actor="admin", expected_version=1, action="promote")
    with pytest.raises(ConflictError):
        mv.put({**doc, "status": "retired"}, actor="other", expected_version=1)
    assert mv.require("v1")["status"] == "active"
    assert [e["action"] for e in mv.audit()] == ["create", "promote"]
    sharded = repo.collection("ratings", shard="campaign-1")
    sharded.put({"id": "r1", "faithfulness": 4}, actor="rater")
    assert repo.shards("ratings") == ["campaign-1"]
    with pytest.raises(NotFoundError):
        mv.require("nope")


def test_store_reopens_with_everything(tmp_path, repo):
    repo.add_predictions([make_prediction("s2", i) for i in range(1, 13)])
    repo.save_label(make_label("s2", 1, annotator=ADJUDICATED), actor="judge", expected_version=0)
    repo.add_user("alice", "password1", "annotator")
    stats = repo.stats()
    repo.close()
    with Repository(repo.root) as again:
        assert again.stats() == stats
        assert stats["sessions"] == 2 and stats["predictions"] == 12 and stats["labels"] == 1 and stats["users"] == 1
        assert again.get_session("s2").turns[0].text.startswith("这周过得怎么样")


def test_schema_version_and_migration_from_the_single_file_prototype(tmp_path):
    legacy = tmp_path / "old"
    legacy.mkdir()
    s = make_session("legacy-1").to_dict()
    (legacy / "meta.json").write_bytes(dumps({"format": "care-review-store", "schema_version": 0}))
    old_label = Label(session_id="legacy-1", item=2, annotator=SHARED, score=3, version=1).to_dict()
    del old_label["score_source"]  # the prototype's labels had none
    (legacy / "care.json").write_bytes(dumps({
        "sessions": {"1": s},
        "labels": {"1": old_label},
        "users": {"1": {"username": "old", "role": "admin", "password": "x"}},
    }))
    with Repository(legacy) as repo:
        assert repo.meta["schema_version"] == 3 and repo.meta["migrated_from"] == 0
        assert repo.session_ids() == ["legacy-1"] and repo.get_label("legacy-1", 2, SHARED).score == 3
        assert repo.get_label("legacy-1", 2, SHARED).score_source == "expert"
        assert repo.get_user("old")["role"] == "admin"
    assert (legacy / repo.meta["backup"] / "care.json").exists()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "meta.json").write_bytes(dumps({"format": "care-review-store", "schema_version": 99}))
    with pytest.raises(StoreFormatError, match="schema version 99.*Upgrade"):
        Repository(newer)


def test_migration_v1_to_v2_gives_stored_labels_a_score_source(tmp_path):
    """A version-1 store (labels without score_source, some only in a file's journal) opens as
    version 2: expert labels say "expert", adjudicated ones "adjudicated"; a backup is kept."""
    from tinydb import Query

    from care_model.core.records import ADJUDICATED
    from store.files import read_json
    from store.storage import FileSet

    root = tmp_path / "v1"
    with Repository(root) as repo:
        repo.add_sessions([make_session("s1"), make_session("s2", client="c-2")])
        for sid, annotator in (("s1", SHARED), ("s1", ADJUDICATED), ("s2", "ann")):
            repo.save_label(Label(session_id=sid, item=1, annotator=annotator, score=2), actor="x", expected_version=0)
    files = FileSet(root)
    for path in root.glob("sessions/*/labels.json"):
        table = files.db(str(path.relative_to(root))).table("labels")
        for doc in table.all():
            table.update(lambda d: d.pop("score_source"), doc_ids=[doc.doc_id])  # as version 1 stored them
    meta = read_json(root / "meta.json")
    (root / "meta.json").write_bytes(dumps({**meta, "schema_version": 1}))
    assert all("score_source" not in d for p in root.glob("sessions/*/labels.json")
               for d in FileSet(root).db(str(p.relative_to(root))).table("labels").all())
    with Repository(root) as repo:
        assert repo.meta["schema_version"] == 3 and repo.meta["migrated_from"] == 1
        got = {(lab.session_id, lab.annotator): lab.score_source for lab in repo.labels()}
        assert got == {("s1", SHARED): "expert", ("s1", ADJUDICATED): "adjudicated", ("s2", "ann"): "expert"}
        assert (root / repo.meta["backup"] / "meta.json").exists()
    with Repository(root) as repo:  # stored, not just defaulted on reading
        raw = (FileSet(root).db(f"sessions/{repo._keys['s1']}/labels.json").table("labels")
               .search(Query().annotator == SHARED))
    assert raw[0]["score_source"] == "expert"
