"""Shared Chromium fixture for the browser tests (one browser per module; pages get their own contexts)."""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from studio_testing import launch_chromium


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
