"""Expert speed, measured in Debian's Chromium: one full sample session reviewed and submitted
with the compact item list, evidence clicked in the transcript and "Accept all".

The expert changes 3 items (a new score, a rationale, evidence picked in the transcript, a change
reason; one quote comes from a text selection) and accepts the other 9 suggestions at once, then
submits. Every UI action (a click, a key press, a drag that selects text, typing one field) is
counted and the test fails above 30. The count and the time from opening the session to
"submitted" go to ``test-artifacts/review_speed.json``; screenshots of the compact list and of
evidence picked in the transcript go to ``test-artifacts/``.

The session's suggestions are created in the test's own store (readable ones that quote the
transcript, :func:`studio_testing.quoting_predictions`), so the test does not depend on which
predictions file ships with the app.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from care_model.core.records import SHARED
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
SID = "sample-en-04"
MAX_ACTIONS = 30
expect.set_options(timeout=60_000)


class Actions:
    """The page, with every user action counted (reads and waits are not actions)."""

    def __init__(self, page):
        self.page, self.n, self.log = page, 0, []

    def _count(self, what):
        self.n += 1
        self.log.append(what)

    def click(self, selector):
        self._count(f"click {selector}")
        self.page.click(selector)

    def press(self, key):
        self._count(f"key {key}")
        self.page.keyboard.press(key)

    def fill(self, selector, text):
        self._count(f"type {selector}")
        self.page.fill(selector, text)

    def select_text(self, turn: int, n_chars: int) -> str:
        """Drag the mouse over the start of a turn's text (one action); returns what got selected."""
        self._count(f"select in turn {turn}")
        tx = self.page.locator(f"#care-turn-{turn} .tx")
        tx.scroll_into_view_if_needed()
        # the end point of the first n_chars characters, measured in the page
        box = self.page.evaluate("""([sel, n]) => {
            const node = document.querySelector(sel).firstChild; const r = document.createRange();
            r.setStart(node, 0); r.setEnd(node, n); const rects = r.getClientRects();
            const a = rects[0], b = rects[rects.length - 1];
            return {x0: a.left + 1, y0: a.top + a.height / 2, x1: b.right - 1, y1: b.top + b.height / 2};
        }""", [f"#care-turn-{turn} .tx", n_chars])
        self.page.mouse.move(box["x0"], box["y0"])
        self.page.mouse.down()
        self.page.mouse.move(box["x1"], box["y1"], steps=8)
        self.page.mouse.up()
        return self.page.evaluate("window.getSelection().toString()")


def status(page):
    return page.locator("#care-status .care-save")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    # readable, quoting suggestions for every item; expert-judged: the expert may accept the model's scores
    repo = make_store(tmp_path_factory.mktemp("speed") / "store", curation_mode="expert_judged", show_ratings=True)
    repo.assign([SID, "sample-en-05"], ["ann"], actor="admin")
    ART.mkdir(exist_ok=True)
    with serve(build_app(repo, None)) as url:
        yield url, repo
    repo.close()


def client_turns(session, min_words=8):
    return [t for t in session.turns if t.speaker == "client" and len(t.text.split()) >= min_words]


def test_full_session_at_expert_speed(app, browser):
    url, repo = app
    session = repo.get_session(SID)
    preds = {p.item: p for p in repo.predictions(SID)}
    turns = client_turns(session)
    changes = {}  # item -> (new score, turn clicked, quote typed or None for a selected quote)
    for k, item in enumerate((2, 7, 11)):
        turn = turns[(k * 5 + 3) % len(turns)]
        quote = " ".join(turn.text.split()[:5]).strip(',.!?;:"“”—')
        changes[item] = ((preds[item].score % 5) + 1, turn, quote if k < 2 else None)
    load_before = os.getloadavg()
    with logged_in_pages(browser, url, width=1600, height=1000) as make:
        page = make("ann")
        act = Actions(page)
        t0 = time.monotonic()
        act.click(f'#care-table [role=gridcell]:has-text("{SID}")')  # open from the queue
        expect(page.locator("#care-sess-head")).to_contain_text(SID)
        expect(page.locator("#care-list .care-row")).to_have_count(12)
        for item, (score, turn, quote) in changes.items():
            act.click(f'#care-list .care-row[data-item="{item}"]')
            expect(page.locator(f'#care-card[data-item="{item}"]')).to_be_visible()
            act.press(str(score))
            expect(status(page)).to_contain_text(f"Saved item {item}")
            if quote is not None:
                act.fill("#care-rationale textarea",
                         f'The client says "{quote}" (turn {turn.index}), which I read differently from the model.')
                act.click(f"#care-turn-{turn.index}")  # evidence clicked in the transcript
                if item == 2:
                    expect(page.locator(f"#care-turn-{turn.index}")).to_have_css(
                        "background-color", "rgb(220, 252, 231)")
                    page.screenshot(path=str(ART / "speed-evidence.png"))
            else:
                act.fill("#care-rationale textarea", "My own reading, in the client's words:")
                picked = act.select_text(turn.index, 40)
                assert picked.strip(), "the drag selected nothing"
                expect(page.locator("#care-seltool")).to_be_visible()
                page.screenshot(path=str(ART / "speed-quote.png"))
                act.click("#care-seltool button[data-act=quote]")
                changes[item] = (score, turn, picked)
            expect(page.locator(f'#care-feedback .ev-chip[data-turn="{turn.index}"]')).to_be_visible()
            act.click('#care-reasons label:has-text("Wrong score")')
            expect(page.locator(f'#care-list .care-row[data-item="{item}"] .c-chk')).to_contain_text("✓")
        page.screenshot(path=str(ART / "speed-list.png"))
        act.click("#care-accept-all")
        expect(page.locator("#care-bulk .care-bulk-list li")).to_have_count(9)
        page.screenshot(path=str(ART / "speed-accept-all.png"))
        act.click("#care-bulk-yes")
        expect(status(page)).to_contain_text("Accepted the model's suggestion for 9 item(s)")
        act.press("Control+Enter")  # Submit asks first (issue 20); Ctrl+Enter again says yes
        expect(page.locator("#care-submit-ask")).to_contain_text("for the record?")
        expect(page.locator("#care-submit-yes")).to_be_visible()  # the answer key needs the button shown
        act.press("Control+Enter")
        expect(status(page)).to_contain_text("Submitted all 12 items", timeout=60_000)
        seconds = time.monotonic() - t0
        page.screenshot(path=str(ART / "speed-submitted.png"))
    load_after = os.getloadavg()

    labels = {lab.item: lab for lab in repo.labels(SID, annotator=SHARED)}
    assert len(labels) == 12 and {lab.status for lab in labels.values()} == {"submitted"}
    for item, lab in labels.items():
        if item in changes:
            score, turn, quote = changes[item]
            assert lab.score == score != preds[item].score and lab.change_reasons == ["wrong_score"]
            assert turn.index in lab.evidence and lab.accepted_suggestion is None
            start = " ".join(quote.replace('"', "'").split()[:3]).strip("'")  # a selection widens to whole words
            assert f'"{start}' in " ".join(lab.rationale.split()), (lab.rationale, quote)
        else:  # accepted: the label equals the suggestion, and says so
            p = preds[item]
            assert (lab.score, lab.rationale, lab.evidence) == (p.score, p.rationale, sorted(set(p.evidence)))
            assert lab.accepted_suggestion == p.id
    result = {"actions": act.n, "max_actions": MAX_ACTIONS, "seconds_open_to_submitted": round(seconds, 1),
              "session": SID, "accepted": 9, "changed": 3, "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in load_after], "log": act.log}
    (ART / "review_speed.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "log"}))
    assert act.n <= MAX_ACTIONS, act.log


def test_evidence_by_click_and_keys_and_accept_all_leaves_edited_items(app, browser):
    """A second click removes a turn; t, arrows and Enter do the same from the keyboard; "Accept
    all" lists only unreviewed items with passing suggestions and leaves an item typed into; clicks
    faster than a save all count."""
    url, repo = app
    sid = "sample-en-05"
    with logged_in_pages(browser, url, width=1400, height=900) as make:
        page = make("ann")
        page.fill("#care-open-id textarea", sid)
        page.click("#care-open")
        expect(page.locator("#care-sess-head")).to_contain_text(sid)
        page.click('#care-list .care-row[data-item="3"]')
        expect(page.locator('#care-card[data-item="3"]')).to_be_visible()
        row = page.locator('#care-list .care-row[data-item="3"]')
        model_ev = row.get_attribute("data-evidence")
        page.click("#care-turn-2")
        expect(row).to_have_attribute("data-evidence", re.compile(r"(^|,)2(,|$)"))
        expect(status(page)).to_contain_text("Saved item 3")
        page.click("#care-turn-2")  # again: removed
        expect(row).to_have_attribute("data-evidence", model_ev)
        page.evaluate("document.querySelector('#care-transcript').scrollTop = 0")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("t")  # the transcript's first visible turn
        expect(page.locator("#care-turn-0")).to_be_focused()
        page.keyboard.press("ArrowDown")
        expect(page.locator("#care-turn-1")).to_be_focused()
        page.keyboard.press("Enter")
        expect(row).to_have_attribute("data-evidence", re.compile(r"(^|,)1(,|$)"))
        assert 1 in repo.get_label(sid, 3, SHARED).evidence
        page.keyboard.press("Enter")
        expect(row).to_have_attribute("data-evidence", model_ev)
        # item 3 is saved (not unreviewed); item 5 has been typed into
        page.click('#care-list .care-row[data-item="5"]')
        expect(page.locator('#care-card[data-item="5"]')).to_be_visible()
        page.locator("#care-rationale textarea").type("x")
        page.keyboard.press("Escape")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("Shift+A")  # = "Accept all passing…"
        expect(page.locator("#care-bulk .care-bulk-list li")).to_have_count(10)
        items = page.locator("#care-bulk .care-bulk-list li b").all_inner_texts()
        assert "3" not in items and "5" not in items and len(items) == 10, items
        page.click("#care-bulk-no")
        expect(page.locator("#care-bulk .care-bulk-list")).to_have_count(0)
        assert repo.get_label(sid, 1, SHARED) is None  # cancelled: nothing accepted
        # Two turns clicked and two scores picked faster than a save's round trip: both count, and
        # what is stored is what is shown (Gradio's default "once" dropped the second click).
        page.click('#care-list .care-row[data-item="6"]')
        expect(page.locator('#care-card[data-item="6"]')).to_be_visible()
        row6 = page.locator('#care-list .care-row[data-item="6"]')
        before = {int(x) for x in (row6.get_attribute("data-evidence") or "").split(",") if x}
        a, b = [n for n in range(12) if n not in before][:2]
        page.click(f"#care-turn-{a}")
        page.click(f"#care-turn-{b}")
        page.check('#care-score input[value="1"]')
        page.check('#care-score input[value="5"]')
        want = ",".join(str(n) for n in sorted(before | {a, b}))
        expect(row6).to_have_attribute("data-evidence", want)
        expect(page.locator("#care-score input[type=radio]:checked")).to_have_value("5")
        deadline = time.monotonic() + 30
        while (lab := repo.get_label(sid, 6, SHARED)) is None or lab.score != 5:
            assert time.monotonic() < deadline, lab
            time.sleep(0.1)
        assert set(lab.evidence) == before | {a, b}
