"""The first screen of a fresh store (the shipped sample predictions, as `make app` imports them) in Chromium:
every card of a sample session shows the model's score, a quoted rationale and linked evidence.

Screenshot: ``test-artifacts/first-screen.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from store import Repository
from studio.app import build_app
from studio.bootstrap import import_samples
from studio_testing import add_users, logged_in_pages, open_session, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
expect.set_options(timeout=60_000)
QUOTE = re.compile(r'["“「][^"”」]{4,}["”」]')  # 4+ characters: Chinese quotes are short


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A fresh store with the samples imported as `make app` does, served (one for both sessions)."""
    repo = Repository(tmp_path_factory.mktemp("first-screen") / "store")
    assert import_samples(repo) and len(repo.session_ids()) == 23
    add_users(repo)
    ART.mkdir(exist_ok=True)
    with serve(build_app(repo, None)) as url:
        yield url, repo
    repo.close()


@pytest.mark.parametrize("sid", ["sample-en-01", "sample-zh-01"])
def test_every_card_shows_score_quote_and_evidence(served, browser, sid):
    """...and, the session being client-anchored (it has the client's self-report), each card's
    rationale starts from the shipped draft written for the client's score."""
    url, repo = served
    drafts = {p.item: p for p in repo.predictions(sid, history=True) if p.mode == "draft"}
    client = repo.get_session(sid).ratings["client"]
    assert sorted(drafts) == list(range(1, 13)) and all(drafts[i].score == client[i] for i in drafts)
    with logged_in_pages(browser, url, width=1600) as make:
        page = make("admin")
        open_session(page, sid)
        expect(page.locator("#care-list .care-row")).to_have_count(12)
        for item in range(1, 13):
            page.click(f'#care-list .care-row[data-item="{item}"]')
            card = page.locator(f'#care-card[data-item="{item}"]')
            expect(card).to_be_visible()
            expect(card.locator(".care-model-score b")).to_have_text(re.compile(r"^[1-5]$"))
            expect(card.locator(".care-model .care-rationale")).to_have_text(QUOTE)
            assert card.locator(".care-model .ev-chip").count() >= 1, f"item {item}: no model evidence"
            expect(card.locator(".care-warn")).to_have_count(0)  # no unreadable answer, no unsupported quote
            expect(page.locator("#care-rationale textarea")).to_have_value(drafts[item].rationale)
            if item == 1:
                page.screenshot(path=str(ART / f"first-screen-{sid}.png"))
