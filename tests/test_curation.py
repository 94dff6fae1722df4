"""care_model.curation: the curated-set rule, the snapshot's content hash, the client split."""
from __future__ import annotations

import json

import pytest

from care_model.curation import (CURATION_RULE, curate_item, new_curated_sessions, read_snapshot, split_by_client,
                                 take_snapshot, write_snapshot)
from care_model.errors import TrainingError, ValidationError
from care_model.records import ADJUDICATED, SHARED
from store import Repository

from factories import make_label, make_session

ALL = {i: 4 for i in range(1, 13)}


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "store")
    r.add_sessions([make_session("s1", client="c-1", ratings=ALL), make_session("s2", client="c-1"),
                    make_session("s3", client="c-2", ratings={i: 2 for i in range(1, 13)}),
                    make_session("s4", client="c-3"), make_session("s5", client="")])
    yield r
    r.close()


def save(repo, label, actor="ann"):
    cur = repo.get_label(label.session_id, label.item, label.annotator)
    return repo.save_label(label, actor=actor, expected_version=cur.version if cur else 0)


def test_rule_adjudicated_then_shared_then_lower_median(repo):
    save(repo, make_label("s1", 1, 2, annotator="ann", status="submitted", rationale="a"))
    save(repo, make_label("s1", 1, 5, annotator="bob", status="submitted", rationale="b"))
    save(repo, make_label("s1", 1, 3, annotator="cat", status="submitted", rationale="c"))
    assert curate_item(repo.labels("s1")).score == 3                      # median of 2, 3, 5
    assert curate_item(repo.labels("s1")).source == "median_of_3"
    save(repo, make_label("s1", 1, 4, annotator=SHARED, status="submitted", rationale="shared"))
    assert curate_item(repo.labels("s1")).source == "shared"
    save(repo, make_label("s1", 1, 1, annotator=ADJUDICATED, status="draft"))
    assert curate_item(repo.labels("s1")).score == 4                      # a draft adjudication does not count
    save(repo, make_label("s1", 1, 1, annotator=ADJUDICATED, status="submitted", rationale="final"))
    chosen = curate_item(repo.labels("s1"))
    assert (chosen.score, chosen.rationale, chosen.source) == (1, "final", "adjudicated")


def test_two_disagreeing_experts_give_the_lower_score_and_its_rationale(repo):
    save(repo, make_label("s1", 2, 5, annotator="ann", status="submitted", rationale="high"))
    save(repo, make_label("s1", 2, 2, annotator="bob", status="submitted", rationale="low"))
    chosen = curate_item(repo.labels("s1"))
    assert (chosen.score, chosen.rationale) == (2, "low")
    assert sorted(chosen.label_ids) == ["s1|2|ann", "s1|2|bob"]


def test_drafts_and_discarded_are_not_curated(repo):
    save(repo, make_label("s1", 1, 2, status="draft"))
    save(repo, make_label("s2", 1, 2, status="discarded"))
    snap = take_snapshot(repo)
    assert snap.labels == {} and snap.n_items == 0
    with pytest.raises(TrainingError, match="curated set is empty"):
        split_by_client(snap)


def test_hash_depends_on_content_not_on_saves(repo):
    save(repo, make_label("s1", 1, 4, status="submitted", rationale="r"))
    first = take_snapshot(repo)
    # save the same content again: new version and timestamp, same hash
    lab = repo.get_label("s1", 1, SHARED)
    repo.save_label(lab, actor="someone-else", expected_version=lab.version)
    assert take_snapshot(repo).hash == first.hash
    lab = repo.get_label("s1", 1, SHARED)
    lab.rationale = "r2"
    repo.save_label(lab, actor="ann", expected_version=lab.version)
    assert take_snapshot(repo).hash != first.hash


def test_snapshot_file_roundtrip_and_tamper_check(repo, tmp_path):
    for item in (1, 2):
        save(repo, make_label("s1", item, 4, status="submitted"))
    save(repo, make_label("s3", 1, 2, status="submitted", rationale="说实话"))
    snap = take_snapshot(repo)
    path = write_snapshot(snap, tmp_path / "run" / "snapshot.jsonl")
    back = read_snapshot(path)
    assert back.hash == snap.hash and back.rule == CURATION_RULE
    assert [lab.to_dict() for lab in back.labels["s1"]] == [lab.to_dict() for lab in snap.labels["s1"]]
    assert back.sessions["s3"].turns == snap.sessions["s3"].turns
    assert "说实话" in path.read_text(encoding="utf-8")                     # stored readable (ensure_ascii=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    row["labels"][0]["score"] = 1
    path.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n", encoding="utf-8")
    with pytest.raises(TrainingError, match="changed after it was taken"):
        read_snapshot(path)


def test_self_reports_fill_in_only_when_asked_and_are_marked(repo):
    save(repo, make_label("s1", 1, 5, status="submitted"))
    assert set(take_snapshot(repo).labels) == {"s1"}
    snap = take_snapshot(repo, self_reports=True)
    assert set(snap.labels) == {"s1", "s3"}                                # s3 has self-ratings; s1 keeps its label
    assert len(snap.labels["s1"]) == 1 and len(snap.labels["s3"]) == 12
    assert {lab.source for lab in snap.labels["s3"]} == {"self_report"}
    assert snap.labels["s3"][0].score == 2 and "rated this item 2" in snap.labels["s3"][0].rationale
    assert snap.header()["self_reports"] is True and "demo" in snap.rule
    assert snap.hash != take_snapshot(repo).hash


def test_split_never_puts_a_client_on_both_sides(repo):
    for sid in ("s1", "s2", "s3", "s4", "s5"):
        save(repo, make_label(sid, 1, 3, status="submitted"))
    snap = take_snapshot(repo)
    for seed in range(20):
        split = split_by_client(snap, 0.3, seed)
        assert split.train and split.validation
        assert sorted(split.train + split.validation) == ["s1", "s2", "s3", "s4", "s5"]
        clients = lambda ids: {snap.client_of(s) for s in ids}  # noqa: E731
        assert not clients(split.train) & clients(split.validation)
        assert ("s1" in split.train) == ("s2" in split.train)              # c-1's two sessions stay together
    assert split_by_client(snap, 0.3, 7) == split_by_client(snap, 0.3, 7)  # deterministic
    assert split_by_client(snap, 0.0).validation == []
    with pytest.raises(ValidationError):
        split_by_client(snap, 1.0)


def test_one_client_cannot_be_split(repo):
    save(repo, make_label("s1", 1, 3, status="submitted"))
    save(repo, make_label("s2", 1, 3, status="submitted"))
    with pytest.raises(TrainingError, match="only one client"):
        split_by_client(take_snapshot(repo), 0.2)


def test_new_curated_sessions_counts_saves_after_a_time(repo):
    save(repo, make_label("s1", 1, 3, status="submitted"))
    mark = repo.get_label("s1", 1, SHARED).updated_at
    save(repo, make_label("s2", 1, 3, status="submitted"))
    save(repo, make_label("s3", 1, 3, status="draft"))
    assert new_curated_sessions(repo, None) == ["s1", "s2"]
    assert new_curated_sessions(repo, mark) == ["s2"]
