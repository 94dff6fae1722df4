"""care_model.text.curation: the curated-set rule, the snapshot's content hash, the client split."""
from __future__ import annotations

import json

import pytest

from care_model.text.curation import (CLIENT_ANCHORED, EXPERT_JUDGED, curate_item, curated_labels,
    default_curation_mode, resolve_unresolved, score_source_for)
from care_model.text.snapshot import (new_curated_sessions, read_snapshot, snapshot_rule, split_by_client,
                                      take_snapshot,
    write_snapshot)
from care_model.core.errors import TrainingError, ValidationError
from care_model.core.records import ADJUDICATED, SCORE_SOURCES, SHARED, Label
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
    snap = take_snapshot(repo, score_sources=SCORE_SOURCES)
    assert snap.labels == {} and snap.n_items == 0
    with pytest.raises(TrainingError, match="curated set is empty"):
        split_by_client(snap)


def test_hash_depends_on_content_not_on_saves(repo):
    save(repo, make_label("s1", 1, 4, status="submitted", rationale="r"))
    first = take_snapshot(repo, score_sources=SCORE_SOURCES)
    # save the same content again: new version and timestamp, same hash
    lab = repo.get_label("s1", 1, SHARED)
    repo.save_label(lab, actor="someone-else", expected_version=lab.version)
    assert take_snapshot(repo, score_sources=SCORE_SOURCES).hash == first.hash
    lab = repo.get_label("s1", 1, SHARED)
    lab.rationale = "r2"
    repo.save_label(lab, actor="ann", expected_version=lab.version)
    assert take_snapshot(repo, score_sources=SCORE_SOURCES).hash != first.hash


def test_snapshot_file_roundtrip_and_tamper_check(repo, tmp_path):
    for item in (1, 2):
        save(repo, make_label("s1", item, 4, status="submitted"))
    save(repo, make_label("s3", 1, 2, status="submitted", rationale="说实话"))
    snap = take_snapshot(repo, score_sources=SCORE_SOURCES)
    path = write_snapshot(snap, tmp_path / "run" / "snapshot.jsonl")
    back = read_snapshot(path)
    assert back.hash == snap.hash and back.rule == snapshot_rule(SCORE_SOURCES, "curated")
    assert back.score_sources == SCORE_SOURCES and back.rationales == "curated"
    assert [lab.to_dict() for lab in back.labels["s1"]] == [lab.to_dict() for lab in snap.labels["s1"]]
    assert back.sessions["s3"].turns == snap.sessions["s3"].turns
    assert "说实话" in path.read_text(encoding="utf-8")                     # stored readable (ensure_ascii=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    row["labels"][0]["score"] = 1
    path.write_text("\n".join([lines[0], json.dumps(row)] + lines[2:]) + "\n", encoding="utf-8")
    with pytest.raises(TrainingError, match="changed after it was taken"):
        read_snapshot(path)


def anchored(sid, item, score, rationale, annotator=SHARED, status="submitted"):
    return Label(session_id=sid, item=item, annotator=annotator, score=score, rationale=rationale, status=status,
                 score_source="client_self_report", rationale_source="expert")


def test_modes_and_score_sources():
    assert default_curation_mode(make_session("a", ratings=ALL)) == CLIENT_ANCHORED
    assert default_curation_mode(make_session("b")) == EXPERT_JUDGED
    assert score_source_for(CLIENT_ANCHORED, SHARED) == "client_self_report"
    assert score_source_for(CLIENT_ANCHORED, "ann") == "client_self_report"
    assert score_source_for(EXPERT_JUDGED, SHARED) == "expert"
    assert score_source_for(EXPERT_JUDGED, ADJUDICATED) == score_source_for(CLIENT_ANCHORED,
                                                                            ADJUDICATED) == "adjudicated"
    with pytest.raises(ValidationError, match="Unknown curation mode"):
        score_source_for("both", SHARED)


def test_the_store_refuses_a_client_anchored_score_that_is_not_the_clients(repo):
    with pytest.raises(ValidationError,
                       match="anchored to the client's self-reported score 4.*Keep the client's score"):
        save(repo, anchored("s1", 1, 5, "mine"))
    with pytest.raises(ValidationError, match="no client self-report.*expert-judged"):
        save(repo, anchored("s2", 1, 4, "mine"))                           # s2 has no self-report
    with pytest.raises(ValidationError, match="Unknown score source"):
        save(repo, Label(session_id="s1", item=1, annotator=SHARED, score=4, score_source="client"))
    with pytest.raises(ValidationError, match="does not fit the coding slot"):
        save(repo, Label(session_id="s1", item=1, annotator=SHARED, score=4, score_source="adjudicated"))
    assert repo.labels("s1") == repo.labels("s2") == []                     # nothing was written
    assert save(repo, anchored("s1", 1, 4, "mine")).score_source == "client_self_report"
    assert save(repo, make_label("s2", 1, 5)).score_source == "expert"      # the default of an expert's label
    assert save(repo, make_label("s2", 2, 5, annotator=ADJUDICATED)).score_source == "adjudicated"


def test_snapshot_learns_from_the_recipes_score_sources(repo):
    save(repo, anchored("s1", 1, 4, "client-anchored rationale"))
    save(repo, make_label("s2", 1, 2, status="submitted", rationale="expert's own score"))
    save(repo, make_label("s4", 3, 5, annotator=ADJUDICATED, status="submitted", rationale="final"))
    default = take_snapshot(repo)                                          # the paper: client self-reports only
    assert {s: [(c.item, c.score, c.rationale, c.score_source) for c in labs] for s, labs in default.labels.items()} \
        == {"s1": [(1, 4, "client-anchored rationale", "client_self_report")]}
    head = default.header()
    assert head["score_sources"] == ["client_self_report"] and head["rationales"] == "curated"
    assert head["score_source_counts"] == {"client_self_report": 1} and head["items_without_rationale"] == 0
    everything = take_snapshot(repo, score_sources=["expert", "adjudicated", "client_self_report"])
    assert everything.score_sources == SCORE_SOURCES and set(everything.labels) == {"s1", "s2", "s4"}
    assert everything.header()["score_source_counts"] == {"adjudicated": 1, "client_self_report": 1, "expert": 1}
    assert everything.hash != default.hash and "score sources: client_self_report" in default.rule
    experts = take_snapshot(repo, score_sources=["expert"])
    assert set(experts.labels) == {"s2"}
    for bad, msg in (([], "non-empty"), (["client"], "known sources")):
        with pytest.raises(ValidationError, match=msg):
            take_snapshot(repo, score_sources=bad)
    with pytest.raises(ValidationError, match="Unknown rationales policy"):
        take_snapshot(repo, rationales="some")
    with pytest.raises(ValidationError, match="leave client_self_report out"):
        take_snapshot(repo, score_sources=["expert"], rationales="curated_or_none")


def test_curated_or_none_adds_self_reported_scores_without_rationale_and_says_so(repo):
    save(repo, anchored("s1", 1, 4, "client-anchored rationale"))
    save(repo, make_label("s2", 1, 2, status="submitted"))                 # expert-judged, not learned by default
    snap = take_snapshot(repo, rationales="curated_or_none")
    assert set(snap.labels) == {"s1", "s3"}                                # the sessions with self-reports
    s1 = {c.item: c for c in snap.labels["s1"]}
    assert len(s1) == 12 and (s1[1].rationale, s1[1].source) == ("client-anchored rationale", "shared")
    assert all(c.rationale == "" and c.source == "self_report_no_rationale" and c.score == 4
               for i, c in s1.items() if i != 1)
    assert [c.score for c in snap.labels["s3"]] == [2] * 12
    assert {c.score_source for labs in snap.labels.values() for c in labs} == {"client_self_report"}
    head = snap.header()
    assert head["rationales"] == "curated_or_none" and head["items_without_rationale"] == 23
    assert "rationales: curated_or_none" in snap.rule and snap.hash != take_snapshot(repo).hash
    assert set(take_snapshot(repo, session_ids=["s3"], rationales="curated_or_none").labels) == {"s3"}


def test_evaluation_reads_the_same_rule_and_sources(repo):
    save(repo, anchored("s1", 1, 4, "anchored"))
    save(repo, make_label("s2", 1, 5, annotator="ann", status="submitted", rationale="high"))
    save(repo, make_label("s2", 1, 2, annotator="bob", status="submitted", rationale="low"))
    save(repo, make_label("s4", 1, 3, status="submitted"))
    chosen, unresolved = curated_labels(repo.labels())
    assert sorted((c.session_id, c.score_source) for c in chosen) == [("s1", "client_self_report"), ("s4", "expert")]
    assert unresolved == [("s2", 1)]
    resolved = resolve_unresolved(repo.labels(), unresolved)
    assert [(r.score, r.rationale, r.annotator, r.score_source) for r in resolved] == [(2, "low", "median_of_2",
                                                                                        "expert")]
    only_client = curated_labels(repo.labels(), score_sources=["client_self_report"])[0]
    assert [c.session_id for c in only_client] == ["s1"]
    assert resolve_unresolved(repo.labels(), unresolved, score_sources=["client_self_report"]) == []
    snap = take_snapshot(repo, score_sources=SCORE_SOURCES)
    assert {(s, c.item): c.score for s, labs in snap.labels.items() for c in labs} == \
        {(c.session_id, c.item): c.score for c in chosen + resolved}


def test_split_never_puts_a_client_on_both_sides(repo):
    for sid in ("s1", "s2", "s3", "s4", "s5"):
        save(repo, make_label(sid, 1, 3, status="submitted"))
    snap = take_snapshot(repo, score_sources=SCORE_SOURCES)
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
        split_by_client(take_snapshot(repo, score_sources=SCORE_SOURCES), 0.2)


def test_new_curated_sessions_counts_saves_after_a_time(repo):
    save(repo, make_label("s1", 1, 3, status="submitted"))
    mark = repo.get_label("s1", 1, SHARED).updated_at
    save(repo, make_label("s2", 1, 3, status="submitted"))
    save(repo, make_label("s3", 1, 3, status="draft"))
    assert new_curated_sessions(repo, None) == ["s1", "s2"]
    assert new_curated_sessions(repo, mark) == ["s2"]
