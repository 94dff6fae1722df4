"""The review screen's layout and messages in Chromium (issue 20).

* Layout: at 1440x900 the transcript and the open card each get (nearly) the viewport's full
  height, side by side; at 1280x720 the card's score, rationale and the buttons are still in view.
  Screenshots: ``test-artifacts/review-1440x900.png`` and ``review-1280x720.png``.
* Messages appear where the eye is: the status line beside the button pressed, an error toast
  beside its button (not in the page's corner), times to the minute in the browser's locale and
  time zone, the queue's counts refreshed after a submit, the help mark drawn without a glyph.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from studio import review
from studio.access import access_of
from studio.app import build_app
from studio_testing import login, make_store, open_session, password, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
SID, DONE = "sample-en-16", "sample-en-05"  # the largest sample session; one with every item saved
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    repo = make_store(tmp_path_factory.mktemp("messages") / "store", curation_mode="expert_judged", show_ratings=True)
    repo.assign([SID, DONE], ["ann"], actor="admin")
    access = access_of(repo, "ann")
    for p in repo.predictions(DONE):  # every item saved: the session can be submitted at once
        review.save_item(repo, access, DONE, p.item, {"score": p.score, "rationale": p.rationale,
                                                      "evidence": list(p.evidence), "change_reasons": []},
                         expected_version=0)
    ART.mkdir(exist_ok=True)
    with serve(build_app(repo, None)) as url:
        yield url
    repo.close()


def page_at(browser, url, width, height, **ctx):
    context = browser.new_context(viewport={"width": width, "height": height}, **ctx)
    page = context.new_page()
    page.set_default_timeout(60_000)
    login(page, url, "ann", password("ann"))
    return context, page


def box(page, selector):
    b = page.locator(selector).first.bounding_box()
    assert b is not None, f"{selector} is not shown"
    return b


def in_view(b, width, height, slack=2):
    return b["y"] >= -slack and b["y"] + b["height"] <= height + slack and b["x"] >= -slack and \
        b["x"] + b["width"] <= width + slack


@pytest.mark.parametrize("width,height", [(1440, 900), (1280, 720)])
def test_transcript_and_card_fill_the_viewport_side_by_side(app, browser, width, height):
    context, page = page_at(browser, app, width, height)
    try:
        open_session(page, SID)
        page.click('#care-list .care-row[data-item="3"]')
        expect(page.locator('#care-card[data-item="3"]')).to_be_visible()
        page.wait_for_timeout(300)  # the scroll that brings the session to the top
        tr, ed, st = box(page, "#care-transcript"), box(page, "#care-editor"), box(page, "#care-status")
        page.screenshot(path=str(ART / f"review-{width}x{height}.png"))
        assert tr["x"] + tr["width"] <= ed["x"] + 1, "the transcript and the card are side by side"
        assert in_view(tr, width, height) and in_view(ed, width, height)
        share = 0.8 if width >= 1440 else 0.7
        assert tr["height"] >= share * height, f"transcript {tr['height']:.0f} px of {height}"
        # the card's scroll space (it had about 256 px at 1440x900 below the item list)
        assert ed["height"] >= (share - 0.05) * height, f"card {ed['height']:.0f} px of {height}"
        for sel in ("#care-score", "#care-save", "#care-submit", "#care-list"):
            assert in_view(box(page, sel), width, height), f"{sel} is out of view at {width}x{height}"
        assert box(page, "#care-rationale textarea")["y"] + 40 <= height, "the rationale starts in view"
        assert st["width"] >= 250 and st["height"] <= 90, f"status line {st['width']:.0f}x{st['height']:.0f} px"
        # every item number is readable in the list (items 10-12 showed as "1…")
        cut = page.evaluate("() => Array.from(document.querySelectorAll('#care-list td.c-no'))"
                            ".filter(td => td.scrollWidth > td.clientWidth).map(td => td.textContent)")
        assert page.locator("#care-list td.c-no").count() == 12 and cut == [], cut
    finally:
        context.close()


def test_messages_appear_beside_their_button_with_local_times(app, browser):
    context, page = page_at(browser, app, 1440, 900, locale="de-DE", timezone_id="Asia/Tokyo")
    try:
        help_mark = page.locator("#care-uncertainty-help .care-help-mark")
        expect(help_mark).to_be_visible()  # drawn by CSS: the ⓘ glyph was an empty box
        assert "ⓘ" not in page.inner_text("#care-counts")
        open_session(page, SID)
        page.click("#care-save")
        status = page.locator("#care-status .care-msg")
        expect(status).to_contain_text("Everything is saved")
        b, s = box(page, "#care-save"), box(page, "#care-status")
        assert in_view(s, 1440, 900) and abs((s["y"] + s["height"] / 2) - (b["y"] + b["height"] / 2)) < 120
        # the time: to the minute, in the browser's time zone (Tokyo, UTC+9), not the server's
        when = status.locator("time.care-time")
        expect(when).to_have_attribute("data-local", "1")
        utc = datetime.fromisoformat(when.get_attribute("datetime"))
        assert when.inner_text() == (utc + timedelta(hours=9)).strftime("%H:%M")
        # an error raised by a handler (no model loaded here) as a toast beside the button pressed
        page.click("#care-predict")
        toast = page.locator(".toast-body").first
        expect(toast).to_contain_text("No model is loaded")
        t, p = box(page, ".toast-body"), box(page, "#care-predict")
        assert in_view(t, 1440, 900)
        assert t["y"] - (p["y"] + p["height"]) < 40 and p["y"] - (t["y"] + t["height"]) < 40, (t, p)
        assert abs((t["x"] + t["width"] / 2) - (p["x"] + p["width"] / 2)) < 300, (t, p)
        assert not re.search(r"/tmp|/work/", toast.inner_text())
    finally:
        context.close()


def test_queue_counts_follow_a_submit(app, browser):
    context, page = page_at(browser, app, 1440, 900)
    try:
        expect(page.locator("#care-counts")).to_contain_text("0 submitted")
        open_session(page, DONE)
        page.click("#care-submit")  # asks first: nothing is submitted until "Yes, submit"
        expect(page.locator("#care-submit-ask")).to_contain_text(f"Submit session {DONE} for the record?")
        page.click("#care-submit-no")
        expect(page.locator("#care-submit-yes")).to_be_hidden()
        expect(page.locator("#care-counts")).to_contain_text("0 submitted")
        page.click("#care-submit")
        page.click("#care-submit-yes")
        expect(page.locator("#care-submit-yes")).to_be_hidden()
        expect(page.locator("#care-status")).to_contain_text("ubmitted")
        expect(page.locator("#care-counts")).to_contain_text("1 submitted")  # without a Refresh
    finally:
        context.close()
