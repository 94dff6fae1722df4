"""Shared Chromium fixture for the browser tests (one browser per module; pages get their own contexts)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from studio_testing import launch_chromium

# Assertions wait up to 30 s (Playwright's default is 5 s): on 2 cores shared by the parallel
# workers of `make test`, a Gradio event (opening a session) can take longer than 5 s to render.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
