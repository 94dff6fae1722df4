"""The review app in Debian's Chromium (Playwright): the expert's whole flow, conflicts, XSS, roles.

Screenshots go to ``test-artifacts/`` (queue, session, conflict, xss, predict).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.inference.models import ModelSpec
from care_model.inference.predictor import Predictor
from care_model.core.records import SHARED, Prediction, Session
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, open_session, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
expect.set_options(timeout=60_000)
XSS = ['<script>window.__xss = 1</script> Hello.', '<img src=x onerror="window.__xss = 2"> ${alert(3)} {{value}} &amp;']


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    repo = make_store(tmp_path_factory.mktemp("browser") / "store", curation_mode="expert_judged", show_ratings=True)
    repo.add_sessions([Session(id="xss-1", language="en", client_id="c-x",
                               turns=[{"index": 0, "speaker": "counselor", "text": XSS[0]},
                                      {"index": 1, "speaker": "client", "text": XSS[1]}])])
    repo.add_predictions([Prediction(id="xss-1|m|1", session_id="xss-1", item=1, model_version="test-model", score=2,
                                     expected_score=2.0, probs=[0.1, 0.6, 0.1, 0.1, 0.1], evidence=[1],
                                     rationale='<img src=x onerror="window.__xss = 4"> <b>bold</b>')])
    repo.assign(["sample-en-02"], ["ann"], actor="admin")
    repo.assign(["sample-en-03"], ["ann", "bob"], actor="admin")
    demo = build_app(repo, Predictor(ModelSpec(base=str(tiny_model_dir))))
    ART.mkdir(exist_ok=True)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, model_version=demo.studio_ctx.predictor.model_version)
    repo.close()


@pytest.fixture
def open_page(browser, app):
    """open_page(user) -> a logged-in page in its own browser context; checks no request leaves 127.0.0.1."""
    with logged_in_pages(browser, app.url, width=1600, timeout_ms=60_000) as make:
        yield make


def status(page):
    return page.locator("#care-status .care-save")


def card(page, item: int):
    """The card, once it shows ``item`` (its data-item comes with the reply that filled it)."""
    return page.locator(f'#care-card[data-item="{item}"]')


def show(page, item: int) -> None:
    page.click(f'#care-list .care-row[data-item="{item}"]')
    expect(card(page, item)).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-care-item", str(item))


def test_review_flow_edit_save_reload_submit(app, open_page):
    page = open_page("ann")
    expect(page.locator("#care-counts")).to_contain_text("2 sessions")
    page.screenshot(path=str(ART / "queue.png"))
    page.locator("#care-table [role=gridcell]", has_text="sample-en-02").first.click()  # open from the queue
    expect(page.locator("#care-sess-head")).to_contain_text("sample-en-02")
    sess = app.repo.get_session("sample-en-02")
    quote = " ".join(sess.turns[1].text.split()[:6]).strip(',.!?"')
    expect(page.locator("#care-list .care-row")).to_have_count(12)  # all items at a glance
    expect(card(page, 1)).to_be_visible()  # the first unreviewed item is open
    assert page.locator(".care-card").count() == 1  # one card, redrawn for the item shown (issue 20)
    show(page, 4)  # open item 4 from the list
    expect(page.locator("#care-card .care-item-no")).to_have_text("4")

    page.check('#care-score input[value="2"]')  # score
    expect(status(page)).to_contain_text("Saved item 4 (version 1)")
    page.fill("#care-rationale textarea", f'The client says "{quote}", but no goals were agreed.')  # rationale
    expect(page.locator("#care-feedback .care-diff ins")).to_contain_text("no goals were agreed")  # live diff
    page.keyboard.press("Tab")
    expect(status(page)).to_contain_text("Saved item 4 (version 2)")
    page.click("#care-turn-5")  # evidence: a click on the turn in the transcript
    expect(status(page)).to_contain_text("Saved item 4 (version 3)")
    expect(page.locator('#care-list .care-row[data-item="4"]')).to_have_attribute("data-evidence",
                                                                                  re.compile(r"(^|,)5(,|$)"))
    page.locator("#care-reasons label", has_text="Wrong score").click()  # why
    expect(status(page)).to_contain_text("Saved item 4 (version 4)")
    page.keyboard.press("Control+s")
    expect(status(page)).to_contain_text("Everything is saved")
    lab = app.repo.get_label("sample-en-02", 4, SHARED)
    assert (lab.score, lab.change_reasons, lab.updated_by) == (2, ["wrong_score"], "ann") and 5 in lab.evidence
    assert lab.rationale.startswith("The client says") and lab.status == "draft"
    page.click('#care-card .ev-chip[data-turn="5"]')  # an evidence turn scrolls into view, highlighted
    expect(page.locator("#care-turn-5")).to_have_class(re.compile("care-hl"))
    page.screenshot(path=str(ART / "session.png"))

    # the rest of the session is accepted through the API's code path, then the page is reloaded
    from studio import review
    from studio.accept import accepted_draft
    from studio.access import Access

    view = review.open_view(app.repo, Access("ann", "annotator"), "sample-en-02")
    for it in view["items"]:
        if it["item"] not in (4, 6, 8, 11):
            review.save_item(app.repo, Access("ann", "annotator"), "sample-en-02", it["item"],
                             accepted_draft(it["prediction"]), expected_version=it["version"])

    page.reload()  # the session reopens with exactly what was saved
    page.wait_for_selector("#care-turn-0")
    expect(page.locator("#care-sess-head")).to_contain_text("sample-en-02")
    expect(page.locator("body")).to_have_attribute("data-care-item", "6")  # reopened at the first unreviewed item
    expect(card(page, 6)).to_be_visible()
    show(page, 4)
    expect(page.locator('#care-score input[value="2"]')).to_be_checked()
    expect(page.locator("#care-rationale textarea")).to_have_value(lab.rationale)
    expect(page.locator("#care-feedback")).to_contain_text("Why changed: Wrong score")
    expect(page.locator('#care-feedback .ev-chip[data-turn="5"]')).to_have_count(1)
    expect(page.locator("#care-card .care-badge")).to_contain_text("Draft saved v4 by ann")
    show(page, 1)
    expect(page.locator("#care-card .care-badge")).to_contain_text("Draft saved v1 by ann")
    show(page, 6)

    # keyboard: a digit scores the open item, "a" accepts the model's suggestion, "j" moves on
    page.keyboard.press("3")
    expect(page.locator('#care-score input[value="3"]')).to_be_checked()
    expect(status(page)).to_contain_text("Saved item 6 (version 1)")
    page.keyboard.press("a")
    expect(status(page)).to_contain_text("Saved item 6 (version 2)")
    page.keyboard.press("j")  # keys pressed while the switch is pending wait for it (queued, in order)
    page.keyboard.press("4")
    expect(card(page, 7)).to_be_visible()
    expect(status(page)).to_contain_text("Saved item 7 (version 2)")
    expect(page.locator('#care-score input[value="4"]')).to_be_checked()
    assert app.repo.get_label("sample-en-02", 7, SHARED).score == 4
    assert app.repo.get_label("sample-en-02", 6, SHARED).version == 2  # not item 6's card
    page.keyboard.press("a")  # back to the suggestion (a changed score needs its own rationale to submit)
    expect(status(page)).to_contain_text("Saved item 7 (version 3)")
    for item in (8, 11):
        show(page, item)
        page.keyboard.press("a")
        expect(status(page)).to_contain_text(f"Saved item {item} (version 1)")
    page.keyboard.press("Control+Enter")  # Submit asks first (issue 20); Ctrl+Enter again says yes
    expect(page.locator("#care-submit-ask")).to_contain_text("for the record?")
    expect(page.locator("#care-submit-yes")).to_be_visible()  # the answer key needs the button shown
    page.keyboard.press("Control+Enter")
    expect(status(page)).to_contain_text("Submitted all 12 items")
    labels = app.repo.labels("sample-en-02")
    assert len(labels) == 12 and {lab.status for lab in labels} == {"submitted"}
    assert app.repo.get_label("sample-en-02", 4, SHARED).score == 2  # the expert's edit survived the submit


def test_two_browsers_editing_one_item_see_both_versions(app, open_page):
    ann, bob = open_page("ann"), open_page("bob")
    for page in (ann, bob):
        open_session(page, "sample-en-03")
    ann.fill("#care-rationale textarea", "Ann: the client sounds hopeful about change.")
    ann.keyboard.press("Tab")
    expect(status(ann)).to_contain_text("Saved item 1 (version 1)")
    bob.fill("#care-rationale textarea", "Bob: the client doubts anything will change.")
    bob.keyboard.press("Tab")
    expect(bob.locator("#care-conflict .care-conflict")).to_be_visible()
    expect(status(bob)).to_contain_text("was changed by ann")
    panel = bob.locator("#care-conflict")
    expect(panel).to_contain_text("Ann: the client sounds hopeful")
    expect(panel).to_contain_text("Bob: the client doubts")
    bob.locator("#care-editor").evaluate("e => e.scrollTop = 0")
    bob.screenshot(path=str(ART / "conflict.png"))
    assert app.repo.get_label("sample-en-03", 1, SHARED).rationale.startswith("Ann:")  # nothing overwritten
    bob.click("#care-keep-mine")
    expect(status(bob)).to_contain_text("Saved item 1 (version 2)")
    expect(bob.locator("#care-conflict .care-conflict")).to_have_count(0)
    expect(bob.locator("#care-keep-mine")).to_be_hidden()
    assert app.repo.get_label("sample-en-03", 1, SHARED).rationale.startswith("Bob:")
    # Ann edits on top of her stale copy: she sees Bob's version and takes it
    ann.fill("#care-rationale textarea", "Ann again.")
    ann.keyboard.press("Tab")
    expect(ann.locator("#care-conflict")).to_contain_text("Bob: the client doubts")
    ann.click("#care-use-theirs")
    expect(ann.locator("#care-rationale textarea")).to_have_value("Bob: the client doubts anything will change.")
    expect(ann.locator("#care-conflict .care-conflict")).to_have_count(0)
    assert app.repo.get_label("sample-en-03", 1, SHARED).version == 2


def test_xss_transcript_renders_as_text(app, open_page):
    page = open_page("admin")
    open_session(page, "xss-1")
    expect(page.locator("#care-turn-0 .tx")).to_have_text(XSS[0])
    expect(page.locator("#care-turn-1 .tx")).to_have_text(XSS[1])
    expect(page.locator('#care-card[data-item="1"] .care-rationale')).to_contain_text(
        '<img src=x onerror="window.__xss = 4"> <b>bold</b>')
    page.fill("#care-rationale textarea", '<script>window.__xss = 5</script><img src=x onerror="window.__xss = 6">')
    page.keyboard.press("Tab")
    expect(status(page)).to_contain_text("Saved item 1")
    page.locator("#care-feedback details summary").click()
    time.sleep(0.5)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#care-transcript img, .care-card .care-model img, #care-editor script").count() == 0
    page.screenshot(path=str(ART / "xss.png"))


def test_annotator_cannot_start_admin_actions(app, open_page):
    page = open_page("ann")
    expect(page.get_by_role("tab", name="Review")).to_be_visible()
    assert page.get_by_role("tab", name="Admin").count() == 0
    before = (app.repo.collection("settings").all(), app.repo.assignments(), len(app.repo.users()))
    for api_name, data in (("export_store", []), ("set_setting", ["unassigned_visible", True]),
                           ("add_user", ["eve", "password-123", "admin"])):
        r = page.request.post(f"{app.url}gradio_api/call/{api_name}", data=json.dumps({"data": data}),
                              headers={"Content-Type": "application/json"})
        assert r.ok, r.text()
        stream = page.request.get(f"{app.url}gradio_api/call/{api_name}/{r.json()['event_id']}").text()
        assert "event: error" in stream and "needs the role admin" in stream, stream
    assert (app.repo.collection("settings").all(), app.repo.assignments(), len(app.repo.users())) == before


def test_predict_runs_in_the_background_with_progress(app, open_page):
    page = open_page("admin")
    open_session(page, "sample-en-09")
    show(page, 4)
    before = page.locator("#care-card .care-model").inner_text()
    page.click("#care-predict")
    expect(page.locator("#care-job")).to_contain_text(re.compile("Predicting sample-en-09|Predicted"))
    show(page, 5)
    page.check('#care-score input[value="4"]')  # the page stays usable meanwhile
    expect(status(page)).to_contain_text("Saved item 5")
    page.locator("#care-editor").evaluate("e => e.scrollTop = 0")
    page.screenshot(path=str(ART / "predict.png"))
    expect(page.locator("#care-job")).to_contain_text("Predicted sample-en-09", timeout=240_000)
    show(page, 4)
    expect(page.locator("#care-card .care-model-version")).to_have_text(app.model_version, timeout=20_000)
    assert page.locator("#care-card .care-model").inner_text() != before
    assert len(app.repo.predictions("sample-en-09")) == 24  # the stored and the new version's


def test_a_late_reply_for_the_item_shown_before_leaves_the_card_on_the_item_shown(app, open_page, monkeypatch):
    """The server answers a page's events concurrently, so a save's reply can reach the page after
    the reply that showed the next item: it put the saved item's head and checks over the next
    item's fields (seen under load: the card named item 7 while its fields were item 11's). Here the
    save of item 2's score is held 2 s after it is made; item 4 is shown meanwhile. The page's script
    sees the head name another item than the card's item field and asks for the card again."""
    from studio.review_ui import ReviewUI

    late, made = {"item": None}, ReviewUI._card

    def held(self, rs, item):
        out = made(self, rs, item)
        if out and item == late["item"]:
            late["item"] = None
            time.sleep(2.0)  # made while item 2 was shown, delivered after item 4's card
        return out

    monkeypatch.setattr(ReviewUI, "_card", held)
    page = open_page("admin")
    open_session(page, "sample-en-06")
    page.click('#care-list .care-row[data-item="2"]')
    expect(card(page, 2)).to_be_visible()
    page.evaluate("""() => { window.__heads = []; new MutationObserver(() => {
        const h = document.querySelector('#care-card .care-card-top[data-item]'); const n = h && h.dataset.item;
        if (n && window.__heads[window.__heads.length - 1] !== n) window.__heads.push(n); })
        .observe(document.getElementById('care-card'), {childList: true, subtree: true}); }""")
    late["item"] = 2
    page.keyboard.press("3")  # item 2's score: saved at once, its reply held
    page.click('#care-list .care-row[data-item="4"]')
    expect(card(page, 4)).to_be_visible()
    # the held reply lands (the head names item 2 again: the race), then the page asks for item 4's card again
    page.wait_for_function("() => window.__heads.join(',').includes('4,2')", timeout=60_000)
    page.wait_for_function("() => window.__heads.join(',').endsWith('4,2,4')", timeout=15_000)
    expect(card(page, 4)).to_be_visible()
    expect(page.locator("#care-card-item textarea, #care-card-item input").first).to_have_value("4")
    assert page.evaluate("document.body.dataset.careItem") == "4"
    assert app.repo.get_label("sample-en-06", 2, SHARED).score == 3
    assert app.repo.get_label("sample-en-06", 4, SHARED) is None
