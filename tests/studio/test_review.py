"""studio.review and studio.access: the review workflow as pure functions on a real store."""
from __future__ import annotations

import pytest

from care_model.core.errors import NotFoundError, PermissionDenied, ValidationError
from care_model.core.records import SHARED, Prediction
from store import Repository
from studio import review, review_checks, review_queue
from studio.accept import accepted_draft
from studio.submitted import reopen_session
from studio.curation_modes import set_curation_mode
from studio.access import Access, active_model_version, set_review_settings, visible_sessions

from factories import make_session

ADMIN = Access("admin", "admin")
ANN = Access("ann", "annotator")
BOB = Access("bob", "annotator")
ADJ = Access("adj", "adjudicator")
TEXTS = ["How was your week?", "I started running again and it helps me calm down.",
         "What made that possible?", "My sister came along, we agreed to go every Tuesday.",
         "That sounds like a plan you made together.", "Yes, and I want to keep it going."]


def preds_for(sid, probs_peak=0.9, version="m1"):
    out = []
    rest = (1 - probs_peak) / 4
    for item in range(1, 13):
        probs = [rest] * 5
        probs[3] = probs_peak
        out.append(Prediction(id=f"{sid}|{version}|{item}", session_id=sid, item=item, model_version=version, score=4,
                              expected_score=sum((k + 1) * p for k, p in enumerate(probs)), probs=probs,
                              rationale=f'The client says "I started running again" (item {item}).', evidence=[1]))
    return out


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "store")
    r.add_sessions([make_session(s, texts=[t + f" ({s})" if k % 2 == 0 else t for k, t in enumerate(TEXTS)],
                                 ratings={i: 3 for i in range(1, 13)} if s == "s1" else None)
                    for s in ("s1", "s2", "s3")])
    r.add_predictions(preds_for("s1", 0.9) + preds_for("s2", 0.3))
    # the free-score editor, as before curation modes (client-anchored s1 is tested in test_curation_modes)
    r.collection("curation_modes").put({"id": "s1", "mode": "expert_judged", "show_ratings": True}, actor="test")
    for name, role in (("admin", "admin"), ("ann", "annotator"), ("bob", "annotator"), ("adj", "adjudicator")):
        r.add_user(name, "password-" + name, role)
    yield r
    r.close()


def valid_draft(item, score=4, rationale=None, reasons=()):
    return {"score": score, "rationale": rationale or f'Because "I started running again" matters for item {item}.',
            "evidence": [1], "change_reasons": list(reasons)}


def test_annotators_see_only_assigned_sessions_unless_the_setting_opens_unassigned(repo):
    assert review_queue.queue_rows(repo, ANN, scope="all")["rows"] == []
    repo.assign(["s2"], ["ann"], actor="admin")
    assert [r["id"] for r in review_queue.queue_rows(repo, ANN, scope="mine")["rows"]] == ["s2"]
    with pytest.raises(PermissionDenied, match="not in your queue"):
        review.open_view(repo, ANN, "s1")
    with pytest.raises(PermissionDenied, match="not in your queue"):  # same answer for a missing id
        review.open_view(repo, ANN, "nope")
    with pytest.raises(NotFoundError):
        review.open_view(repo, ADMIN, "nope")
    with pytest.raises(PermissionDenied, match="needs the role admin"):
        set_review_settings(repo, ANN, unassigned_visible=True)
    set_review_settings(repo, ADMIN, unassigned_visible=True)
    assert [r["id"] for r in review_queue.queue_rows(repo, ANN, scope="all")["rows"]] == ["s1", "s2", "s3"]
    assert [r["id"] for r in review_queue.queue_rows(repo, BOB, scope="all")["rows"]] == ["s1", "s3"]  # s2 is ann's
    assert set(visible_sessions(repo, ADJ)) == {"s1", "s2", "s3"}
    with pytest.raises(ValidationError):
        set_review_settings(repo, ADMIN, colour="red")


def test_queue_status_search_order_and_counts(repo):
    rows = review_queue.queue_rows(repo, ADMIN, scope="all", order="uncertainty")["rows"]
    assert [r["id"] for r in rows] == ["s2", "s1", "s3"]  # flatter probabilities first, unpredicted last
    assert rows[0]["uncertainty"] > rows[1]["uncertainty"] > 0 and rows[2]["uncertainty"] is None
    assert [r["id"] for r in review_queue.queue_rows(repo, ADMIN, scope="all", search="S3")["rows"]] == ["s3"]
    review.save_item(repo, ADMIN, "s1", 4, valid_draft(4), expected_version=0)
    q = review_queue.queue_rows(repo, ADMIN, scope="all")
    assert {r["id"]: r["status"] for r in q["rows"]} == {"s1": "in progress", "s2": "not started", "s3": "not started"}
    assert q["counts"] == {"not started": 2, "in progress": 1, "submitted": 0, "total": 3, "items_reviewed": 1,
                           "items_total": 36}
    assert review_queue.queue_rows(repo, ADMIN, scope="mine")["rows"] == []
    with pytest.raises(ValidationError):
        review_queue.queue_rows(repo, ADMIN, order="random")


def test_the_queue_says_how_each_session_is_curated_and_finds_sessions_by_it(repo):
    """s1 has the client's self-report but the admin chose expert-judged (fixture); s2 and s3 have
    none, so they default to expert-judged. Back to the default, s1 is client-anchored."""
    def curation():
        return {r["id"]: r["curation"] for r in review_queue.queue_rows(repo, ADMIN, scope="all")["rows"]}

    assert curation() == {"s1": "expert-judged", "s2": "expert-judged", "s3": "expert-judged"}
    set_curation_mode(repo, ADMIN, ["s1"], "default")
    assert curation() == {"s1": "client-anchored", "s2": "expert-judged", "s3": "expert-judged"}
    assert [r["id"] for r in review_queue.queue_rows(repo, ADMIN, scope="all", search="anchored")["rows"]] == ["s1"]
    assert [r["id"] for r in review_queue.queue_rows(repo, ADMIN, scope="all",
                                                     search="expert-judged")["rows"]] == ["s2", "s3"]


def test_open_view_prefills_from_the_model_and_flags_everything_unreviewed(repo):
    v = review.open_view(repo, ADMIN, "s1")
    assert v["slot"] == SHARED and v["editable"] and v["model_version"] == "m1"
    assert [d["key"] for d in v["dimensions"]] == ["goal", "task", "bond"]
    assert [it["item"] for it in v["items"]] == list(range(1, 13))
    it = v["items"][3]
    assert it["text"].startswith("My counselor and I collaborate") and it["dimension"] == "goal"
    assert it["draft"] == {"score": None, "rationale": it["prediction"]["rationale"], "evidence": [1],
                           "change_reasons": []}
    assert {c["code"] for c in it["checks"]} == {"unreviewed", "no_score"}
    assert v["summary"]["model"] == {"goal": 4.0, "task": 4.0, "bond": 4.0}
    assert v["summary"]["client"] == {"goal": 3.0, "task": 3.0, "bond": 3.0}
    assert v["summary"]["expert"] == {"goal": None, "task": None, "bond": None}
    assert v["session"]["turns"][1]["speaker"] == "client" and len(v["session"]["turns"]) == 6


def test_checks_as_they_work(repo):
    from care_model.text.evidence import TranscriptIndex

    index = TranscriptIndex(repo.get_session("s1").turns)
    pred = review.prediction_dict(repo.predictions("s1")[0])
    codes = lambda d, saved=True: {c["code"] for c in review_checks.checks(d, pred, index, saved=saved)}  # noqa: E731
    assert codes({"score": 2, "rationale": pred["rationale"], "evidence": [], "change_reasons": ["wrong_score"]}) == {
        "rationale_untouched"}
    assert codes({"score": 4, "rationale": 'She said "I never ever run at all".', "evidence": [],
                  "change_reasons": ["unsupported_claim"]}) == {"quote_not_found"}
    assert codes({"score": 4, "rationale": "  ", "evidence": [], "change_reasons": ["style"]}) == {"empty_rationale"}
    assert codes({"score": None, "rationale": "x", "evidence": [], "change_reasons": []}, saved=False) == {
        "unreviewed", "no_score", "no_reason"} - {"no_reason"}
    assert codes({"score": 3, "rationale": "Other words entirely.", "evidence": [],
                  "change_reasons": []}) == {"no_reason"}
    assert review_checks.blocking(review_checks.checks({"score": 3, "rationale": "ok", "evidence": [],
                                                        "change_reasons": []},
                                         pred, index, saved=True)) == []


def test_save_conflict_keeps_both_versions_and_writes_nothing(repo):
    first = review.save_item(repo, ADMIN, "s1", 4, valid_draft(4, 3, "Admin's words."), expected_version=0)
    assert first["status"] == "saved" and first["version"] == 1 and first["label"]["annotator"] == SHARED
    assert first["label"]["prediction_id"] == "s1|m1|4"
    again = review.save_item(repo, ADMIN, "s1", 4, valid_draft(4, 3, "Admin's words."), expected_version=1)
    assert again["unchanged"] and again["version"] == 1  # a repeated autosave writes nothing
    repo.assign(["s1"], ["ann"], actor="admin")
    audit_before = len(repo.audit(session_id="s1"))
    clash = review.save_item(repo, ANN, "s1", 4, valid_draft(4, 2, "Ann's words."), expected_version=0)
    assert clash["status"] == "conflict"
    assert clash["current"]["rationale"] == "Admin's words." and clash["current"]["updated_by"] == "admin"
    assert clash["yours"]["rationale"] == "Ann's words." and "Compare your version" in clash["message"]
    assert repo.get_label("s1", 4, SHARED).rationale == "Admin's words."
    assert len(repo.audit(session_id="s1")) == audit_before
    # the same content as theirs is no conflict; keeping mine saves on top of their version
    same = review.save_item(repo, ANN, "s1", 4, valid_draft(4, 3, "Admin's words."), expected_version=0)
    assert same["status"] == "saved" and same["unchanged"] and same["version"] == 1
    mine = review.save_item(repo, ANN, "s1", 4, clash["yours"], expected_version=clash["current"]["version"])
    assert mine["status"] == "saved" and mine["version"] == 2 and mine["label"]["updated_by"] == "ann"
    with pytest.raises(ValidationError, match="change reason"):
        review.save_item(repo, ANN, "s1", 4, {**valid_draft(4), "change_reasons": ["bored"]}, expected_version=2)
    with pytest.raises(ValidationError, match="Evidence turns"):
        review.save_item(repo, ANN, "s1", 4, {**valid_draft(4), "evidence": [99]}, expected_version=2)


def test_submit_requires_all_items_valid_and_is_all_or_nothing(repo):
    for item in range(1, 12):
        review.save_item(repo, ADMIN, "s1", item, valid_draft(item), expected_version=0)
    res = review.submit_session(repo, ADMIN, "s1")
    assert res["status"] == "invalid" and list(res["problems"]) == ["12"]
    review.save_item(repo, ADMIN, "s1", 12, valid_draft(12, rationale='Quoting "words nobody ever said here".'),
                     expected_version=0)
    res = review.submit_session(repo, ADMIN, "s1")
    assert res["status"] == "invalid" and "Not in the transcript" in res["problems"]["12"][0]
    review.save_item(repo, ADMIN, "s1", 12, valid_draft(12), expected_version=1)
    assert all(lab.status == "draft" for lab in repo.labels("s1"))
    stale = review.submit_session(repo, ADMIN, "s1", expected_versions={"12": 1})
    assert stale["status"] == "conflict" and stale["items"] == [12]
    res = review.submit_session(repo, ADMIN, "s1", expected_versions={"12": 2})
    assert res["status"] == "submitted" and res["versions"]["12"] == 3
    assert all(lab.status == "submitted" for lab in repo.labels("s1")) and len(repo.labels("s1")) == 12
    assert review_queue.queue_rows(repo, ADMIN, scope="all")["rows"][0]["status"] == "submitted"
    v = review.open_view(repo, ADMIN, "s1")
    assert v["status"] == "submitted" and all(it["state"] == "submitted" for it in v["items"])
    assert v["summary"]["expert"] == {"goal": 4.0, "task": 4.0, "bond": 4.0}
    # a re-save of the same content keeps it submitted; an edit is refused until it is reopened
    assert review.save_item(repo, ADMIN, "s1", 1, valid_draft(1), expected_version=2)["state"] == "submitted"
    with pytest.raises(PermissionDenied, match="read-only.*Reopen it first"):
        review.save_item(repo, ADMIN, "s1", 1, valid_draft(1, 5, "Changed my mind."), expected_version=2)
    reopen_session(repo, ADMIN, "s1")
    assert review.save_item(repo, ADMIN, "s1", 1, valid_draft(1, 5, "Changed my mind."),
                            expected_version=3)["state"] == "draft"
    assert review_queue.queue_rows(repo, ADMIN, scope="all")["rows"][0]["status"] == "in progress"


def test_independent_coding_gives_each_coder_a_slot_and_others_read_only(repo):
    repo.assign(["s2"], ["ann", "bob"], actor="admin", mode="independent")
    review.save_item(repo, ANN, "s2", 1, valid_draft(1, 2), expected_version=0)
    review.save_item(repo, BOB, "s2", 1, valid_draft(1, 5), expected_version=0)  # no conflict: own slots
    assert {lab.annotator: lab.score for lab in repo.labels("s2")} == {"ann": 2, "bob": 5}
    v = review.open_view(repo, ADJ, "s2")
    assert not v["editable"] and v["slot"] is None and v["other_slots"] == ["ann", "bob"] and "read-only" in v["note"]
    with pytest.raises(PermissionDenied, match="cannot edit"):
        review.save_item(repo, ADJ, "s2", 1, valid_draft(1), expected_version=0)
    assert review.open_view(repo, BOB, "s2")["items"][0]["draft"]["score"] == 5


def test_accept_and_active_model_version(repo):
    pred = review.open_view(repo, ADMIN, "s1")["items"][0]["prediction"]
    assert accepted_draft(pred) == {"score": 4, "rationale": pred["rationale"], "evidence": [1], "change_reasons": []}
    with pytest.raises(ValidationError, match="no readable model suggestion"):
        accepted_draft(None)
    assert active_model_version(repo) is None
    repo.add_predictions([Prediction(id="s1|m2|1", session_id="s1", item=1, model_version="m2", score=1, probs=[1, 0, 0,
                                                                                                                0, 0])])
    assert review.open_view(repo, ADMIN, "s1")["model_version"] == "m2"  # latest version that predicted it
    repo.collection("settings").put({"id": "active_model", "model_version": "m1"}, actor="admin")
    assert active_model_version(repo) == "m1" and review.open_view(repo, ADMIN, "s1")["model_version"] == "m1"


def test_render_escapes_every_piece_of_user_text():
    from studio import render

    evil = '<script>alert(1)</script><img src=x onerror="x()"> & "q"'
    session = {"id": evil, "language": "en", "turns": [{"index": 0, "speaker": "client", "text": evil}]}
    pred = {"score": 3, "expected_score": 3.2, "probs": [0.1, 0.2, 0.4, 0.2, 0.1], "rationale": evil, "evidence": [0],
            "unsupported_quotes": [evil], "parse_status": "failed", "parse_error": evil}
    draft = {"score": 2, "rationale": evil + " more", "evidence": [0], "change_reasons": ["style"]}
    label = {"version": 2, "updated_by": evil, "updated_at": "2026-01-01T10:00:00", "score": 2, "rationale": evil,
             "evidence": []}
    view = {"session": {**session, "client_id": evil}, "model_version": evil, "mode": "shared", "annotators": [evil],
            "note": evil, "status": "draft"}
    pieces = [render.transcript_html(session), render.model_html(pred, {"3": evil}), render.diff_html(evil, evil + "x"),
              render.feedback_html([{"code": "x", "message": evil, "blocking": True}], pred, draft),
              render.conflict_html(1, evil, label, draft, {"2": evil}), render.session_header_html(view),
              render.card_head_html({"item": 1, "text": evil, "state": "draft", "label": label}, evil),
              render.status_html(evil), render.job_html({"session_id": evil, "state": "failed", "error": evil})]
    for html_text in pieces:
        assert "<script" not in html_text and "<img" not in html_text and 'onerror="' not in html_text
        assert "&lt;script&gt;" in html_text or "&lt;img" in html_text
    assert '<del>' in render.diff_html("the model said this", "the expert said that")


def test_the_transcript_index_builds_its_compact_form_only_when_needed_and_answers_the_same():
    from care_model.text.evidence import TranscriptIndex

    turns = [{"index": 0, "speaker": "client", "text": "I don't think it's working, honestly."},
             {"index": 1, "speaker": "counselor", "text": "我们一起制定了下周的目标。"},
             {"index": 2, "speaker": "client", "text": "Okay."}]
    rationales = ['She said "dont think its working" and "Okay".', "“一起制定了下周的目标”",
                  '"I dont think it s working"', '"nothing like this was said" [2] [9]', 'turn 1 and "honestly"']
    lazy = TranscriptIndex(turns)
    assert lazy.link('"Okay."').turn_indices == [2] and lazy._compact is None  # found word by word
    eager = TranscriptIndex(turns)
    assert len(eager.compact) == 3 and eager._compact is not None
    for r in rationales:
        assert lazy.link(r) == eager.link(r), r
    assert lazy._compact is not None  # a space-free quote needed it
    from studio.review import label_dict
    from factories import make_label

    lab = make_label("s1", 3)
    assert label_dict(lab) == lab.to_dict()


def test_the_card_shows_the_distribution_its_score_comes_from():
    """With content-free calibration the score is the calibrated argmax: the bars must show that distribution
    (the raw one stays in the tooltip), or option 1 would look chosen next to 'Model 3'."""
    import re

    from studio import render

    raw = [0.79, 0.1, 0.05, 0.04, 0.02]
    calibrated = [0.05, 0.15, 0.6, 0.15, 0.05]
    pred = {"score": 3, "expected_score": 3.0, "probs": raw, "probs_calibrated": calibrated,
            "calibration": "content-free", "rationale": 'The client says "yes".', "evidence": []}
    html = render.model_html(pred, {"3": "Fairly often"})
    values = [float(v) for v in re.findall(r'<span class="pb-v">([0-9.]+)</span>', html)]
    assert values == calibrated
    top = re.search(r'pb-row pb-top"><span class="pb-k">(\d)', html)
    assert top and int(top.group(1)) == pred["score"]
    assert "raw probabilities were 1: 0.79" in html
    html_raw = render.model_html(dict(pred, probs_calibrated=None), {})
    assert [float(v) for v in re.findall(r'<span class="pb-v">([0-9.]+)</span>', html_raw)] == raw
