"""Curation modes in Debian's Chromium (Playwright): an annotator codes an expert-judged session blind
(no client or counselor ratings anywhere on the page, while an admin sees them), and a client-anchored
card shows the client's rating as a fixed score while the expert writes the rationale.

Screenshots: ``test-artifacts/curation-blind-annotator.png``, ``curation-blind-admin.png``,
``curation-anchored.png``.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.core.records import SHARED
from studio.access import access_of
from studio.app import build_app
from studio.curation_modes import set_curation_mode
from studio_testing import logged_in_pages, make_store, open_session, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
expect.set_options(timeout=60_000)
ANCHORED, BLIND = "sample-en-01", "sample-en-05"   # both have client and counselor ratings


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    repo = make_store(tmp_path_factory.mktemp("modes-browser") / "store")
    repo.assign([ANCHORED, BLIND], ["ann"], actor="admin")
    set_curation_mode(repo, access_of(repo, "admin"), [BLIND], "expert_judged")
    ART.mkdir(exist_ok=True)
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo)
    repo.close()


@pytest.fixture
def open_page(browser, app):
    with logged_in_pages(browser, app.url, width=1600, timeout_ms=60_000) as make:
        yield make


def test_expert_judged_annotator_codes_blind_and_the_admin_sees_the_ratings(app, open_page):
    page = open_page("ann")
    open_session(page, BLIND)
    expect(page.locator("#care-curation-mode")).to_have_attribute("data-mode", "expert_judged")
    expect(page.locator("#care-curation-mode")).to_contain_text("ratings are hidden while you code")
    summary = page.locator("#care-summary")
    expect(summary).to_contain_text("Expert")
    text = page.locator("body").inner_text()
    i = text.find("Client self-report")
    assert i < 0, text[max(0, i - 300):i + 300]
    assert page.locator("#care-summary th", has_text="Counselor").count() == 0
    expect(page.locator("#care-score input[type=radio]").first).to_be_enabled()   # the expert's own score
    page.screenshot(path=str(ART / "curation-blind-annotator.png"), full_page=False)

    admin = open_page("admin")
    open_session(admin, BLIND)
    expect(admin.locator("#care-summary")).to_contain_text("Client self-report")
    expect(admin.locator("#care-summary th", has_text="Counselor")).to_have_count(1)
    admin.screenshot(path=str(ART / "curation-blind-admin.png"), full_page=False)


def test_client_anchored_card_fixes_the_clients_score_and_saves_the_experts_rationale(app, open_page):
    client = app.repo.get_session(ANCHORED).ratings["client"]
    page = open_page("ann")
    open_session(page, ANCHORED)
    expect(page.locator("#care-curation-mode")).to_have_attribute("data-mode", "client_anchored")
    expect(page.locator("#care-summary")).to_contain_text("Client self-report")  # the client's ratings are the scores
    assert page.locator("#care-summary th", has_text="Counselor").count() == 0  # the counselor's stay hidden
    card = page.locator('#care-card[data-item="1"]')
    expect(card).to_contain_text("Client's self-reported score (fixed)")
    expect(page.locator("#care-score input[type=radio]:checked")).to_have_value(str(client[1]))
    for radio in page.locator("#care-score input[type=radio]").all():
        expect(radio).to_be_disabled()
    expect(page.locator("#care-accept")).to_be_hidden()          # client-anchored: "Confirm this rationale" instead
    expect(page.locator("#care-confirm")).to_be_visible()
    why = "The client describes agreeing on what to work on this week, which fits their own rating."
    page.fill("#care-rationale textarea", why)
    page.locator("#care-transcript").click(position={"x": 5, "y": 5})   # blur: the rationale saves
    expect(page.locator("#care-status")).to_contain_text("Saved item 1")
    lab = app.repo.get_label(ANCHORED, 1, SHARED)
    assert (lab.score, lab.rationale, lab.score_source) == (client[1], why, "client_self_report")
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(ART / "curation-anchored.png"), full_page=False)


def test_admin_sets_a_sessions_curation_mode_in_the_admin_tab(app, open_page):
    page = open_page("admin")
    page.get_by_role("tab", name="Admin").click()
    page.fill("#care-assign-ids textarea", "sample-en-06")
    page.locator("#care-curation-mode-pick label", has_text="Expert-judged").click()
    page.locator("#care-curation-show label", has_text="Show").click()
    page.click("#care-set-mode")
    expect(page.locator("#care-admin-msg")).to_contain_text("sample-en-06: expert-judged")
    doc = app.repo.collection("curation_modes").get("sample-en-06")
    assert (doc["mode"], doc["show_ratings"], doc["updated_by"]) == ("expert_judged", True, "admin")
    page.locator("#care-curation-mode-pick").scroll_into_view_if_needed()
    page.screenshot(path=str(ART / "curation-admin.png"), full_page=False)
