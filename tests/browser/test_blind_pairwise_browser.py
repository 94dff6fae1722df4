"""A blind pairwise campaign in Chromium (issue 17): the admin creates it in the Campaigns tab (the reveal
option left off), half of the (session, item) pairs have an expert rationale identical to the model's and
are skipped (said on creation); the rater sees only differing texts and no system name, on the page or in
the tab's HTML, until the last comparison is submitted, and then sees which system wrote A and B.

Screenshots: ``/tmp/care-blind-create.png``, ``/tmp/care-blind-task.png``, ``/tmp/care-blind-revealed.png``.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from studio.app import build_app
from studio_testing import PAIRWISE_SAME, logged_in_pages, pairwise_store, serve


pytestmark = pytest.mark.browser
MODEL = "m-secret-model"
SESSIONS = ("s1", "s2")
SAME = PAIRWISE_SAME
N = 3  # comparisons for the rater


def build_repo(root):
    return pairwise_store(root, SESSIONS)


def assert_blind(page) -> None:
    html = page.inner_html("#eval-tab")
    assert MODEL not in html and "A was" not in html
    text = page.inner_text("body").lower()
    assert MODEL not in text and "expert" not in text, "a system name is on the rater's page"


def test_pairwise_campaign_is_blind_until_the_rater_finishes(browser, tmp_path):
    repo = build_repo(tmp_path / "store")
    try:
        with serve(build_app(repo, None)) as url, logged_in_pages(browser, url, width=1500) as make:
            admin = make("admin")
            admin.get_by_role("tab", name="Campaigns").click()
            expect(admin.locator("#eval-admin-msg")).to_contain_text(f"Systems with rationales: {MODEL}")
            expect(admin.locator("#eval-reveal-each input")).not_to_be_checked()  # off by default
            admin.fill("#eval-name textarea, #eval-name input", "Blind pairs")
            for system in (MODEL, "expert"):
                admin.locator("#eval-systems label", has_text=re.compile(rf"^\s*{system}\s*$")).click()
            admin.locator("#eval-raters label", has_text=re.compile(r"^\s*ann\s*$")).click()
            admin.locator("#eval-mode label", has_text="Pairwise").click()
            admin.fill("#eval-n input", str(N))
            admin.fill("#eval-overlap input", "1")
            admin.click("#eval-create")
            msg = admin.locator("#eval-admin-msg")
            expect(msg).to_contain_text("Created campaign Blind pairs", timeout=30_000)
            expect(msg).to_contain_text(f"Identical texts skipped: {len(SESSIONS) * len(SAME)} target(s) not sampled")
            admin.screenshot(path="/tmp/care-blind-create.png")

            page = make("ann")
            page.get_by_role("tab", name="Human evaluation").click()
            expect(page.locator("#eval-campaign input")).to_have_value(re.compile("^Blind pairs"))
            page.click("#eval-start")
            for j in range(N):
                expect(page.locator("#eval-pos")).to_have_text(f"Task {j + 1} of {N}")
                texts = page.locator("#eval-pair .care-rationale").all_inner_texts()
                assert len(texts) == 2 and texts[0].strip() != texts[1].strip(), f"identical texts shown: {texts}"
                assert_blind(page)
                if j == 0:
                    page.screenshot(path="/tmp/care-blind-task.png")
                page.keyboard.press("b")
                expect(page.locator('#eval-choice input[value="b"]')).to_be_checked()
                page.keyboard.press("Enter")
                if j < N - 1:
                    expect(page.locator("#eval-pos")).to_have_text(f"Task {j + 2} of {N}")
                    assert_blind(page)
            revealed = page.locator("#eval-revealed")
            expect(revealed).to_contain_text("A was")
            assert MODEL in revealed.inner_text() and "expert" in revealed.inner_text()
            expect(page.locator("#eval-status")).to_contain_text("finished the campaign")
            page.screenshot(path="/tmp/care-blind-revealed.png")
    finally:
        repo.close()
