"""Rationale provenance (care_model.core.provenance) as the review saves it and as training
snapshots and recipes use it, with stored predictions: free suggestions and drafts written for the
client's score."""
from __future__ import annotations

import pytest

from care_model.core.errors import ConfigError, ValidationError
from care_model.core.provenance import classify, levenshtein
from care_model.core.records import SHARED, Prediction
from care_model.text.snapshot import learned_from, read_snapshot, take_snapshot, write_snapshot
from care_model.training.config import RetrainConfig
from store import Repository
from studio import accept, review
from studio.access import Access

from factories import make_session

ADMIN = Access("admin", "admin")
TEXTS = ["How was your week?", "I started running again and it helps me calm down.",
         "What made that possible?", "My sister came along, we agreed to go every Tuesday."]
CLIENT = {i: 1 + i % 5 for i in range(1, 13)}


def model_text(sid, item):
    return f"The client talks about running with a sister in session {sid}; this fits item {item} well."


def draft_text(sid, item):
    return f"Drafted for the client's own score: the weekly runs with the sister show item {item} ({sid})."


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "store")
    r.add_sessions([make_session("ej", texts=TEXTS, client="c-1"),                    # expert-judged
                    make_session("ca", texts=TEXTS[:3] + ["My sister came too."], client="c-2",
                                 ratings=CLIENT)])   # client-anchored
    preds = [Prediction(id=f"{sid}|m1|{i}", session_id=sid, item=i, model_version="m1", score=3, expected_score=3.0,
                        probs=[0.1, 0.1, 0.6, 0.1, 0.1], rationale=model_text(sid, i), evidence=[1])
             for sid in ("ej", "ca") for i in range(1, 13)]
    preds += [Prediction(id=f"ca|m1|draft|{i}", session_id="ca", item=i, model_version="m1", score=None,
                         rationale=draft_text("ca", i), evidence=[3], mode="draft", drafted_for_score=CLIENT[i],
                         draft_source="client") for i in range(1, 13)]
    r.add_predictions(preds)
    yield r
    r.close()


def save(repo, sid, item, draft, **kw):
    cur = repo.get_label(sid, item, SHARED)
    res = review.save_item(repo, ADMIN, sid, item, draft, expected_version=cur.version if cur else 0, **kw)
    assert res["status"] == "saved"
    return res["label"]


def test_levenshtein_and_the_edited_threshold():
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3 and levenshtein("same", "same") == 0
    assert levenshtein("abcdef", "abXdef") == 1 and levenshtein("abc", "abcd") == 1
    base = "x" * 40
    assert classify(" " + base + "\n", [base]) == ("accepted", 0)                # spacing is no edit
    assert classify(base, [base], bulk=True) == ("bulk_accepted", 0)
    assert classify(base[:21], [base]) == ("edited", 19)                         # 19 < 0.5 * 40
    assert classify(base[:20], [base]) == ("expert", 20)                         # half rewritten: the expert's
    assert classify("y" * 40, [base]) == ("expert", 40)
    assert classify(base[:30], [base]) == ("edited", 10)
    assert classify("anything", []) == ("expert", None) and classify("anything", [None, " "]) == ("expert", None)


def test_expert_judged_provenance_on_save(repo):
    view = review.open_view(repo, ADMIN, "ej")
    p1 = view["items"][0]["prediction"]
    lab = save(repo, "ej", 1, accept.accepted_draft(p1))                                   # Accept, one item
    assert (lab["rationale_source"], lab["rationale_edit_distance"], lab["accepted_suggestion"]) == \
        ("accepted", 0, "ej|m1|1")
    lab = save(repo, "ej", 2, accept.accepted_draft(view["items"][1]["prediction"]), bulk=True)   # Accept all
    assert (lab["rationale_source"], lab["rationale_edit_distance"]) == ("bulk_accepted", 0)
    small = model_text("ej", 3).replace("well.", "very well!")
    lab = save(repo, "ej", 3, {"score": 4, "rationale": small, "evidence": [1], "change_reasons": ["wrong_score"]})
    assert (lab["rationale_source"], lab["rationale_edit_distance"]) == \
        ("edited", levenshtein(model_text("ej", 3), small)) and lab["rationale_edit_distance"] == 6
    lab = save(repo, "ej", 4, {"score": 2, "rationale": "The client mostly talks about the weather; little to see.",
                               "evidence": [], "change_reasons": ["wrong_score"]})
    assert lab["rationale_source"] == "expert" and lab["rationale_edit_distance"] > 0.5 * len(model_text("ej", 4))
    lab = save(repo, "ej", 2, {"score": 3, "rationale": model_text("ej", 2), "evidence": [1], "change_reasons": []})
    assert lab["rationale_source"] == "bulk_accepted"                 # an autosave of what Accept all saved
    listed = {it["item"]: (it["label"] or {}).get("rationale_source") for it in review.open_view(repo, ADMIN,
                                                                                                  "ej")["items"]}
    assert listed[1] == "accepted" and listed[3] == "edited" and listed[5] is None


def test_client_anchored_draft_saved_unchanged_is_accepted_not_expert(repo):
    view = review.open_view(repo, ADMIN, "ca")
    it = view["items"][0]
    assert it["draft"]["rationale"] == draft_text("ca", 1) and it["draft"]["score"] == CLIENT[1]
    assert not [c for c in it["checks"] if c["code"] == "rationale_untouched"]
    lab = save(repo, "ca", 1, dict(it["draft"]))
    assert (lab["rationale_source"], lab["accepted_suggestion"], lab["score_source"]) == \
        ("accepted", "ca|m1|draft|1", "client_self_report")
    # the free suggestion with the client's score: still model text, and no "score changed" check
    res = review.save_item(repo, ADMIN, "ca", 2, {"score": CLIENT[2], "rationale": model_text("ca", 2),
                                                   "evidence": [1], "change_reasons": []}, expected_version=0)
    assert res["label"]["rationale_source"] == "accepted"
    assert not [c for c in res["checks"] if c["code"] == "rationale_untouched"]
    edited = draft_text("ca", 3).replace("weekly", "Tuesday")
    assert save(repo, "ca", 3, {**view["items"][2]["draft"], "rationale": edited})["rationale_source"] == "edited"


def _curate(repo):
    """ej: 1 accepted, 2 bulk_accepted, 3 edited, 4-12 expert; ca: 1 accepted (draft), 2-12 expert."""
    view = review.open_view(repo, ADMIN, "ej")
    save(repo, "ej", 1, accept.accepted_draft(view["items"][0]["prediction"]))
    save(repo, "ej", 2, accept.accepted_draft(view["items"][1]["prediction"]), bulk=True)
    save(repo, "ej", 3, {"score": 3, "rationale": model_text("ej", 3) + " Yes.", "evidence": [1],
                         "change_reasons": ["style"]})
    for i in range(4, 13):
        save(repo, "ej", i, {"score": 2, "rationale": f"My own reading of item {i}: the sister matters most.",
                             "evidence": [3], "change_reasons": ["wrong_score"]})
    cav = review.open_view(repo, ADMIN, "ca")
    save(repo, "ca", 1, dict(cav["items"][0]["draft"]))
    for i in range(2, 13):
        save(repo, "ca", i, {**cav["items"][i - 1]["draft"], "rationale": f"Client rates item {i}: see turn 3."})
    for sid in ("ej", "ca"):
        assert review.submit_session(repo, ADMIN, sid)["status"] == "submitted"


def test_snapshot_takes_expert_and_edited_unless_the_recipe_opts_in(repo, tmp_path):
    _curate(repo)
    everything = ["client_self_report", "expert"]
    snap = take_snapshot(repo, score_sources=everything)
    kept = {(sid, lab.item): lab.rationale_source for sid, labs in snap.labels.items() for lab in labs}
    assert ("ej", 1) not in kept and ("ej", 2) not in kept and ("ca", 1) not in kept
    assert kept[("ej", 3)] == "edited" and len(kept) == 21
    head = snap.header()
    assert head["rationale_provenance"] == ["expert", "edited"]
    assert head["provenance_counts"] == {"expert": 20, "edited": 1, "accepted": 0, "bulk_accepted": 0, "unknown": 0}
    assert head["excluded_provenance_counts"] == {"expert": 0, "edited": 0, "accepted": 2, "bulk_accepted": 1,
                                                  "unknown": 0}
    back = read_snapshot(write_snapshot(snap, tmp_path / "snap.jsonl"))
    assert back.header()["provenance_counts"] == head["provenance_counts"]
    assert learned_from(back.header())["provenance_counts"]["edited"] == 1
    opted = take_snapshot(repo, score_sources=everything, rationale_provenance=["expert", "edited", "accepted"])
    assert opted.header()["provenance_counts"]["accepted"] == 2 and opted.header()["provenance_counts"][
        "bulk_accepted"] == 0 and opted.hash != snap.hash
    bulk = take_snapshot(repo, score_sources=everything, rationale_provenance="expert,bulk_accepted")
    assert bulk.header()["provenance_counts"] == {"expert": 20, "edited": 0, "accepted": 0, "bulk_accepted": 1,
                                                  "unknown": 0}
    with pytest.raises(ValidationError, match="Unknown rationale provenance 'acepted'"):
        take_snapshot(repo, rationale_provenance=["expert", "acepted"])
    # curated_or_none: an item left out for its provenance is learned as the client's score, without rationale
    filled = take_snapshot(repo, rationales="curated_or_none")
    ca1 = next(lab for lab in filled.labels["ca"] if lab.item == 1)
    assert ca1.rationale == "" and ca1.source == "self_report_no_rationale"


def test_recipe_key_is_validated():
    assert RetrainConfig().rationale_provenance == ["expert", "edited"]
    assert RetrainConfig(rationale_provenance="accepted, expert").rationale_provenance == ["expert", "accepted"]
    with pytest.raises(ConfigError, match="rationale_provenance.*Unknown rationale provenance 'bulk'"):
        RetrainConfig(rationale_provenance=["expert", "bulk"])
    with pytest.raises(ConfigError, match="empty"):
        RetrainConfig(rationale_provenance=[])


def test_adjudicated_label_keeps_the_provenance_of_what_it_copied(repo):
    from care_model.core.records import Label
    from studio import adjudication

    for who, src in (("ann", "expert"), ("bob", "edited")):
        repo.save_label(Label(session_id="ej", item=1, annotator=who, score=2, rationale=f"{who} wrote this.",
                              status="submitted", rationale_source=src, rationale_edit_distance=None), actor=who,
                        expected_version=0)
    view = adjudication.adjudication_view(repo, ADMIN, "ej")
    assert [e["rationale_source"] for e in view["items"][0]["experts"]] == ["expert", "edited"]
    res = adjudication.adjudicate(repo, ADMIN, "ej", 1, source="model")
    assert res["label"]["rationale_source"] == "accepted"                       # the model's text, chosen
    res = adjudication.adjudicate(repo, ADMIN, "ej", 1, source="bob", expected_version=res["version"])
    assert res["label"]["rationale_source"] == "edited"                         # bob's label's provenance
    res = adjudication.adjudicate(repo, ADMIN, "ej", 1, score=3, rationale="The adjudicator's own words here.",
                                  expected_version=res["version"])
    assert res["label"]["rationale_source"] == "expert"
    assert adjudication.adjudication_view(repo, ADMIN, "ej")["items"][0]["final"]["rationale_source"] == "expert"


def test_evaluation_references_keep_scores_but_not_model_text_rationales(repo):
    from care_model.core.provenance import DEFAULT_PROVENANCE
    from care_model.text.curation import curated_labels

    _curate(repo)
    refs, _ = curated_labels(repo.labels(status="submitted"), rationale_provenance=DEFAULT_PROVENANCE)
    by = {(lab.session_id, lab.item): lab for lab in refs}
    assert len(by) == 24                                                      # every score is still a reference
    assert by[("ej", 1)].rationale == "" and by[("ej", 2)].rationale == "" and by[("ca", 1)].rationale == ""
    assert by[("ej", 3)].rationale.endswith("Yes.") and by[("ej", 4)].rationale.startswith("My own reading")
    everything, _ = curated_labels(repo.labels(status="submitted"))
    assert all(lab.rationale for lab in everything)


def test_export_carries_the_provenance_of_each_label(repo):
    import json

    from store.export import records_from_lines, session_lines

    save(repo, "ej", 3, {"score": 4, "rationale": model_text("ej", 3) + "!", "evidence": [1],
                         "change_reasons": ["style"]})
    doc = json.loads(next(session_lines(repo, ["ej"])))
    assert [(d["rationale_source"], d["rationale_edit_distance"]) for d in doc["labels"]] == [("edited", 1)]
    _, _, labels = records_from_lines([json.dumps(doc)], "export")
    assert labels[0].rationale_source == "edited" and labels[0].rationale_edit_distance == 1


def test_models_tab_review_quality_table(repo):
    from studio.training_tab import review_quality_md

    assert "No expert has reviewed" in review_quality_md(repo)
    _curate(repo)
    md = review_quality_md(repo)
    # 24 items of m1: 3 accepted unchanged (1 through Accept all), 1 edited, 20 rewritten
    assert "| m1 | all | 24 | 12% (4%) | 4% | 83% |" in md
    assert md.count("| m1 |") == 1 and "| goal |" in md and "| bond |" in md and "| task |" in md
