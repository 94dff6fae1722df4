"""studio.accept (accepting suggestions), its use in studio.review, and the compact item list HTML."""
from __future__ import annotations

import pytest

from care_model.core.errors import ValidationError
from care_model.text.evidence import TranscriptIndex
from care_model.core.records import CHANGE_REASONS, SHARED, Prediction
from store import Repository
from studio import accept, render, review, review_checks
from studio.access import Access

from factories import make_session

ADMIN = Access("admin", "admin")
TEXTS = ["How was your week?", "I started running again and it helps me calm down.",
         "What made that possible?", "My sister came along, we agreed to go every Tuesday."]


def pred(item, score=4, rationale='The client says "I started running again".', status="ok", evidence=(1,)):
    return {"id": f"s1|m1|{item}", "score": score, "rationale": rationale, "evidence": list(evidence),
            "parse_status": status, "parse_error": None if status == "ok" else "no score found"}


@pytest.fixture
def repo(tmp_path):
    r = Repository(tmp_path / "store")
    r.add_sessions([make_session("s1", texts=TEXTS)])
    preds = [Prediction(id=f"s1|m1|{i}", session_id="s1", item=i, model_version="m1", score=4, expected_score=4.0,
                        probs=[0.025, 0.025, 0.025, 0.9, 0.025],
                        rationale=f'The client says "I started running again" ({i}).',
                        evidence=[1]) for i in range(1, 12)]
    preds.append(Prediction(id="s1|m1|12", session_id="s1", item=12, model_version="m1", score=None,
                            rationale="gibberish", parse_status="failed", parse_error="no score found"))
    r.add_predictions(preds)
    r.add_user("admin", "password-admin", "admin")
    yield r
    r.close()


def test_readable_means_a_parsed_score():
    assert accept.readable(pred(1))
    assert not accept.readable(None) and not accept.readable(pred(1, score=None))
    assert not accept.readable(pred(1, status="failed"))  # a score guessed from a failed parse is not offered
    with pytest.raises(ValidationError, match="no readable model suggestion"):
        accept.accepted_draft(pred(1, score=None))


def test_equals_suggestion_ignores_spacing_not_content():
    p = pred(1)
    d = accept.accepted_draft(p)
    assert accept.equals_suggestion(d, p)
    assert accept.equals_suggestion({**d, "rationale": "  The client  says \"I started running again\". "}, p)
    assert not accept.equals_suggestion({**d, "score": 3}, p)
    assert not accept.equals_suggestion({**d, "evidence": [1, 3]}, p)
    assert not accept.equals_suggestion({**d, "change_reasons": ["style"]}, p)
    assert not accept.equals_suggestion(d, pred(1, status="failed"))


def test_candidates_are_unreviewed_readable_and_passing():
    index = TranscriptIndex(make_session("s1", texts=TEXTS).turns)
    items = [{"item": 1, "state": "unreviewed", "prediction": pred(1)},
             {"item": 2, "state": "draft", "prediction": pred(2)},  # reviewed already
             {"item": 3, "state": "unreviewed", "prediction": pred(3, score=None)},  # no answer
             {"item": 4, "state": "unreviewed", "prediction": pred(4,
                                                                   rationale='She said "I never run".')},  # bad quote
             {"item": 5, "state": "unreviewed", "prediction": None},
             {"item": 6, "state": "unreviewed", "prediction": pred(6, rationale=" ")}]  # empty rationale
    got = accept.candidates(items, lambda d, p: review_checks.checks(d, p, index, saved=True))
    assert [(c["item"], c["score"]) for c in got] == [(1, 4)]
    assert got[0]["draft"] == {"score": 4, "rationale": pred(1)["rationale"], "evidence": [1], "change_reasons": []}


def test_saving_the_suggestion_records_it_and_an_edit_clears_it(repo):
    view = review.open_view(repo, ADMIN, "s1")
    p3 = view["items"][2]["prediction"]
    saved = review.save_item(repo, ADMIN, "s1", 3, accept.accepted_draft(p3), expected_version=0)
    assert saved["label"]["accepted_suggestion"] == "s1|m1|3"
    assert repo.get_label("s1", 3, SHARED).accepted_suggestion == "s1|m1|3"
    edited = review.save_item(repo, ADMIN, "s1", 3, {**accept.accepted_draft(p3), "score": 2,
                                                     "rationale": "Mine.", "change_reasons": ["wrong_score"]},
                              expected_version=1)
    assert edited["version"] == 2 and edited["label"]["accepted_suggestion"] is None
    back = review.save_item(repo, ADMIN, "s1", 3, accept.accepted_draft(p3), expected_version=2)
    assert back["version"] == 3 and back["label"]["accepted_suggestion"] == "s1|m1|3"
    assert review.open_view(repo, ADMIN, "s1")["items"][2]["label"]["accepted_suggestion"] == "s1|m1|3"


def test_no_reason_is_asked_when_the_model_gave_no_answer(repo):
    assert CHANGE_REASONS["no_answer"] == "The model gave no answer"
    view = review.open_view(repo, ADMIN, "s1")
    p12, p1 = view["items"][11]["prediction"], view["items"][0]["prediction"]
    index = review.transcript_index(repo, "s1")
    mine = {"score": 2, "rationale": 'The client says "My sister came along".', "evidence": [3], "change_reasons": []}
    assert {c["code"] for c in review_checks.checks(mine, p12, index, saved=True)} == set()  # nothing to change from
    assert {c["code"] for c in review_checks.checks(mine, p1, index, saved=True)} == {"no_reason"}
    assert review_checks.checks({**mine, "change_reasons": ["no_answer"]}, p12, index, saved=True) == []
    saved = review.save_item(repo, ADMIN, "s1", 12, {**mine, "change_reasons": ["no_answer"]}, expected_version=0)
    assert saved["label"]["change_reasons"] == ["no_answer"] and saved["label"]["accepted_suggestion"] is None


def test_item_list_html_escapes_and_marks_evidence():
    rows = [{"item": 1, "text": "<b>x</b>", "dimension": "Goal", "model": 4, "model_note": "", "accepted": True,
             "expert": 4, "state": "draft", "evidence": [3, 5], "checks": []},
            {"item": 2, "text": "Two", "dimension": "Task", "model": None, "model_note": "no answer", "accepted": False,
             "expert": None, "state": "unreviewed", "evidence": [],
             "checks": [{"code": "quote_not_found", "message": 'Not in the transcript: "<i>"', "blocking": True}]}]
    html = render.item_list_html(rows)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;i&gt;" in html
    assert html.count('class="care-row"') == 2 and 'data-evidence="3,5"' in html
    assert 'body[data-care-item="1"] #care-turn-3, body[data-care-item="1"] #care-turn-5' in html
    assert 'class="c-acc"' in html and "no answer" in html and "✗" in html and html.count("c-acc") == 1


def _tab(repo):
    from types import SimpleNamespace

    import gradio as gr

    from studio import review_tab
    from studio.app import AppContext

    with gr.Blocks():
        h = review_tab.build_tab(AppContext(repo=repo))
    return h, SimpleNamespace(username="ann")


def test_accept_all_in_the_page_asks_first_then_accepts_what_still_passes(tmp_path):
    from studio_testing import make_store

    repo = make_store(tmp_path / "store", curation_mode="expert_judged", show_ratings=True)
    repo.assign(["sample-en-05"], ["ann"], actor="admin")
    h, req = _tab(repo)
    rs = h.open("sample-en-05", None, req)[h.c.st]
    h.card_save("score")(rs, "2", 1, req)  # item 2 reviewed by hand
    asked = h.accept_all_ask(rs, request=req)
    assert asked[h.c.bulk_yes]["visible"] is True and "these 11 unreviewed item(s)" in asked[h.c.bulk_html]
    assert repo.labels("sample-en-05") and len(repo.labels("sample-en-05")) == 1  # asking writes nothing
    h.card_note(rs, "7", "typed meanwhile", req)  # typed into after the list was shown: left alone
    done = h.accept_all_do(rs, req)
    assert "for 10 item(s)" in done[h.c.status] and "left alone (changed meanwhile): 7" in done[h.c.status]
    labels = {lab.item: lab for lab in repo.labels("sample-en-05")}
    assert sorted(labels) == [i for i in range(1, 13) if i != 7]
    assert labels[2].accepted_suggestion is None and all(labels[i].accepted_suggestion for i in labels if i != 2)
    assert done[h.c.bulk_yes]["visible"] is False


def test_accept_all_leaves_the_shown_item_typed_into_whose_own_event_has_not_arrived(tmp_path):
    """Shift+A pressed right after typing: the click carries the card's text, so the item is not listed
    even when the typing's own (debounced) event reaches the server after it."""
    from studio_testing import make_store

    repo = make_store(tmp_path / "store", curation_mode="expert_judged", show_ratings=True)
    repo.assign(["sample-en-05"], ["ann"], actor="admin")
    h, req = _tab(repo)
    rs = h.open("sample-en-05", None, req)[h.c.st]
    saved = rs.items[5]["saved"]["rationale"] or ""
    asked = h.accept_all_ask(rs, "5", saved + "x", request=req)
    assert "these 11 unreviewed item(s)" in asked[h.c.bulk_html] and 5 in rs.pending and 5 not in rs.bulk
    h.card_note(rs, "5", saved, req)  # typed back to what is saved: no longer an edit
    again = h.accept_all_ask(rs, "5", saved, request=req)
    assert 5 not in rs.pending and "these 12 unreviewed" in again[h.c.bulk_html] and 5 in rs.bulk


def test_accept_all_is_refused_where_the_scores_are_the_clients(tmp_path):
    from studio_testing import make_store

    repo = make_store(tmp_path / "store", curation_mode="client_anchored")
    repo.assign(["sample-en-05"], ["ann"], actor="admin")
    h, req = _tab(repo)
    rs = h.open("sample-en-05", None, req)[h.c.st]
    assert rs.locked
    assert "client-anchored" in h.accept_all_ask(rs, request=req)[h.c.status]
    h.accept_all_do(rs, req)
    assert repo.labels("sample-en-05") == []
