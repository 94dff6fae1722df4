"""Shared Chromium for the browser tests: one browser per pytest worker (a launch with its Playwright
driver costs about 5 CPU-seconds; 17 modules launched their own). Each test's pages get their own
contexts; at the end of a module any context it left open is closed, so modules stay independent."""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from studio_testing import launch_chromium


@pytest.fixture(scope="session")
def _chromium():
    with sync_playwright() as p:
        holder = {"p": p, "b": launch_chromium(p)}
        yield holder
        holder["b"].close()


@pytest.fixture(scope="module")
def browser(_chromium):
    if not _chromium["b"].is_connected():  # a crashed browser is not handed to the next module
        _chromium["b"] = launch_chromium(_chromium["p"])
    b = _chromium["b"]
    yield b
    for ctx in list(b.contexts):
        ctx.close()
