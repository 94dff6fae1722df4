"""The Admin tab in Debian's Chromium (issue 11 defects 4, 11, 12): a refused user name with
markup shows as text in the error toast; an admin deactivates a user and reads the audit trail.

Screenshot: ``test-artifacts/admin-audit.png``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from studio_testing import logged_in_pages

pytestmark = pytest.mark.browser
ART = Path(__file__).resolve().parents[2] / "test-artifacts"
MARKUP = '<img src=x onerror="window.__pwned=1"><b id="care-bold">bold</b><form id="care-evil" action="https://example.org"><input></form>'


def test_markup_in_a_toast_is_text_and_admins_manage_users_and_read_the_audit(studio_server, browser):
    ART.mkdir(exist_ok=True)
    with logged_in_pages(browser, studio_server.url) as make:
        page = make("admin")
        page.get_by_role("tab", name="Admin").click()
        page.get_by_label("User name", exact=True).fill(MARKUP)
        page.get_by_label("Password (8+ characters)").fill("password-123")
        page.click("#care-add-user")
        toast = page.locator(".toast-body").first
        expect(toast).to_contain_text("Bad user name")
        expect(toast).to_contain_text('<b id="care-bold">bold</b>')  # shown as text...
        # ...not rendered
        assert page.locator(".toast-body img, .toast-body b#care-bold, .toast-body form").count() == 0
        assert page.evaluate("window.__pwned") is None
        # deactivate ann from the page; the users table says so at once
        page.get_by_label("User name", exact=True).fill("bob")
        page.click("#care-deactivate")
        expect(page.locator("#care-admin-msg")).to_contain_text("bob is deactivated")
        expect(page.locator("#care-users")).to_contain_text("no")
        assert studio_server.repo.get_user("bob")["active"] is False
        # the audit trail, filtered by action
        page.locator("#care-audit").get_by_text("Audit trail").click()
        page.get_by_label("Action (e.g. submit, reopen, deactivate)").fill("deactivate")
        page.click("#care-audit-show")
        expect(page.locator("#care-audit-table")).to_contain_text("bob")
        expect(page.locator("#care-audit-note")).to_contain_text("1 entry")
        page.screenshot(path=str(ART / "admin-audit.png"), full_page=True)
