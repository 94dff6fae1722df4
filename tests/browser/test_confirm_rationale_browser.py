"""Client-anchored review in Debian's Chromium (Playwright): the card's draft (written for the
client's own score) is confirmed with one key, the label records provenance ``accepted`` and the
item list shows the item done; Accept all says why it takes nothing.

Screenshot: ``/tmp/care-confirm-rationale.png``.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.core.records import SHARED, Prediction
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, open_session, serve

pytestmark = pytest.mark.browser
expect.set_options(timeout=60_000)
SID = "sample-en-02"   # has the client's self-report: client-anchored by default


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    repo = make_store(tmp_path_factory.mktemp("confirm-browser") / "store")
    repo.assign([SID], ["ann"], actor="admin")
    client = repo.get_session(SID).ratings["client"]
    repo.add_predictions([Prediction(
        id=f"{SID}|test-model|draft|{i}", session_id=SID, item=i, model_version="test-model", score=None,
        rationale=f"Drafted for the client's score {client[i]}: the client describes the week (item {i}).",
        evidence=[1], mode="draft", drafted_for_score=client[i], draft_source="client") for i in range(1, 13)])
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo, client=client)
    repo.close()


def test_a_client_anchored_draft_is_confirmed_with_one_key(browser, app):
    with logged_in_pages(browser, app.url, width=1600, timeout_ms=60_000) as make:
        page = make("ann")
        open_session(page, SID)
        expect(page.locator("#care-curation-mode")).to_have_attribute("data-mode", "client_anchored")
        draft = f"Drafted for the client's score {app.client[1]}: the client describes the week (item 1)."
        expect(page.locator('#care-card[data-item="1"]')).to_be_visible()
        expect(page.locator("#care-rationale textarea")).to_have_value(draft)
        expect(page.locator("#care-confirm")).to_be_visible()
        expect(page.locator("#care-feedback")).not_to_contain_text("Score changed")
        expect(page.locator("#care-list .care-row[data-item='1'] .care-badge")).to_have_text("to do")

        page.click("#care-accept-all")                      # says why it takes nothing, instead of being disabled
        expect(page.locator("#care-status")).to_contain_text("Accept all does nothing here")
        assert app.repo.get_label(SID, 1, SHARED) is None

        assert page.evaluate("document.body.dataset.careItem") == "1"
        page.locator("#care-transcript").click(position={"x": 5, "y": 5})   # focus off any field
        page.keyboard.press("c")
        expect(page.locator("#care-status")).to_contain_text("Confirmed item 1")
        lab = app.repo.get_label(SID, 1, SHARED)
        assert (lab.rationale, lab.score, lab.score_source) == (draft, app.client[1], "client_self_report")
        assert (lab.rationale_source, lab.rationale_edit_distance) == ("accepted", 0)
        assert lab.accepted_suggestion == f"{SID}|test-model|draft|1"
        row = page.locator("#care-list .care-row[data-item='1']")
        expect(row.locator(".care-badge")).to_have_text("saved")               # the list agrees with the card
        expect(row.locator(".c-prov")).to_have_attribute("data-provenance", "accepted")
        page.screenshot(path="/tmp/care-confirm-rationale.png", full_page=False)
