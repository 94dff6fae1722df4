"""Defect 1 of issue 11: a submitted session is read-only in the page and the API until its
submitter or an admin reopens it (audited); a score key on a submitted card saves nothing."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from care_model.core.errors import PermissionDenied, ValidationError
from studio import review
from studio.submitted import reopen_session
from studio.access import Access
from studio.app import AppContext
from studio_testing import make_store

SID = "sample-en-05"
ANN, BOB, ADMIN = Access("ann", "annotator"), Access("bob", "annotator"), Access("admin", "admin")


@pytest.fixture
def repo(tmp_path):
    r = make_store(tmp_path / "store", curation_mode="expert_judged", show_ratings=True)  # free scores
    r.assign([SID], ["ann", "bob"], actor="admin")  # shared: one label set both edit
    yield r
    r.close()


def submit_all(repo, access):
    view = review.open_view(repo, access, SID)
    for it in view["items"]:
        pred = it["prediction"]
        review.save_item(repo, access, SID, it["item"], {**it["draft"], "score": pred["score"]},
                         expected_version=it["version"])
    res = review.submit_session(repo, access, SID)
    assert res["status"] == "submitted", res
    return res


def files(repo):
    return {p: p.read_bytes() for p in sorted(repo.root.rglob("*.json"))}


def test_a_submitted_session_is_read_only_until_its_submitter_or_an_admin_reopens_it(repo):
    submit_all(repo, ANN)
    view = review.open_view(repo, BOB, SID)
    assert not view["editable"] and view["submitted_by"] == "ann" and not view["reopenable"]
    assert review.open_view(repo, ANN, SID)["reopenable"] and review.open_view(repo, ADMIN, SID)["reopenable"]
    before = files(repo)
    item = view["items"][0]
    for who in (ANN, BOB, ADMIN):
        with pytest.raises(PermissionDenied, match="submitted by ann and is read-only.*Reopen it first"):
            review.save_item(repo, who, SID, 1, {**item["draft"], "score": 1 + item["draft"]["score"] % 5},
                             expected_version=item["version"])
    with pytest.raises(PermissionDenied, match="bob may not reopen.*ann submitted it"):
        reopen_session(repo, BOB, SID)
    assert files(repo) == before
    res = reopen_session(repo, ADMIN, SID)
    assert res["status"] == "reopened" and review.open_view(repo, BOB, SID)["editable"]
    assert {lab.status for lab in repo.labels(SID)} == {"draft"}
    reopens = [e for e in repo.audit(session_id=SID) if e["action"] == "reopen"]
    assert len(reopens) == 12 and {e["who"] for e in reopens} == {"admin"}
    with pytest.raises(ValidationError, match="is not submitted"):
        reopen_session(repo, ANN, SID)


def test_a_score_key_on_a_submitted_card_saves_nothing_in_the_page(repo):
    from studio import review_tab

    ctx = AppContext(repo=repo)
    with gr.Blocks():
        h = review_tab.build_tab(ctx)
    req = SimpleNamespace(username="ann")
    up = h.open(SID, None, req)
    rs = up[h.c.st]
    assert rs.editable
    for item, it in rs.items.items():  # accept every suggestion, then submit from the page
        h.card_accept(rs, str(item), req)
    shown = rs.items[rs.current]["saved"]  # the card as the page has it (the item it shows)
    fields = [str(rs.current)] + [shown[f] for f in ("score", "rationale", "evidence", "change_reasons")]
    h.submit(rs, *fields, req)  # "Yes, submit" without the question (issue 20: Submit asks first): nothing
    assert "submitted" not in {lab.status for lab in repo.labels(SID)} and rs.editable
    assert "Press Submit session again" in rs.message[0]
    asked = h.submit_ask(rs, req)
    assert asked[h.c.submit_yes]["visible"] is True
    assert f"Submit session {SID} for the record?" in asked[h.c.submit_html]
    h.submit(rs, *fields, req)
    assert {lab.status for lab in repo.labels(SID)} == {"submitted"} and not rs.editable
    reloaded = h.reload_if_read_only(rs, req)
    assert reloaded[h.c.reopen_btn]["visible"] is True
    assert reloaded[h.card.score]["interactive"] is False
    before = files(repo)
    rs_after = reloaded[h.c.st]
    h.card_save("score")(rs_after, "1", 1, req)  # the "1" key on the first item's card
    h.card_save("rationale")(rs_after, "1", "changed", req)
    assert files(repo) == before and {lab.status for lab in repo.labels(SID)} == {"submitted"}
    up = h.reopen(rs_after, req)
    assert up[h.c.st].editable and up[h.c.reopen_btn]["visible"] is False
    assert any(e["action"] == "reopen" and e["who"] == "ann" for e in repo.audit(session_id=SID))
