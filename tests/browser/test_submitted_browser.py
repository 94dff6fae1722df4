"""Defect 1 of issue 11 in Debian's Chromium: on a submitted session the score keys save nothing
(the session stays submitted) until its submitter presses Reopen, which is audited."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from studio import review
from studio.access import Access
from studio_testing import logged_in_pages

pytestmark = pytest.mark.browser
SID = "sample-en-07"


def submit(repo, access):
    for it in review.open_view(repo, access, SID)["items"]:
        review.save_item(repo, access, SID, it["item"], {**it["draft"], "score": it["prediction"]["score"]},
                         expected_version=it["version"])
    assert review.submit_session(repo, access, SID)["status"] == "submitted"


def test_score_keys_on_a_submitted_session_save_nothing_until_reopened(studio_server, browser):
    repo = studio_server.repo
    repo.assign([SID], ["ann"], actor="admin")
    submit(repo, Access("ann", "annotator"))
    before = {(lab.item, lab.version, lab.status, lab.score) for lab in repo.labels(SID)}
    with logged_in_pages(browser, studio_server.url) as make:
        page = make("ann")
        page.fill("#care-open-id textarea", SID)
        page.click("#care-open")
        expect(page.locator("#care-sess-head")).to_contain_text(SID)
        expect(page.locator("#care-reopen")).to_be_visible()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for key in ("1", "5", "a", "j", "2"):
            page.keyboard.press(key)
        time.sleep(3)  # an autosave would have landed by now
        assert {(lab.item, lab.version, lab.status, lab.score) for lab in repo.labels(SID)} == before
        page.click("#care-reopen")
        expect(page.locator("#care-status")).to_contain_text("Reopened")
        expect(page.locator("#care-reopen")).to_be_hidden()
        assert {lab.status for lab in repo.labels(SID)} == {"draft"}

    assert {e["who"] for e in repo.audit(session_id=SID) if e["action"] == "reopen"} == {"ann"}
