"""Fixtures of the training tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def repo(tmp_path):
    """An empty store on a temporary folder with an admin (``boss``) and an annotator (``ann``)."""
    from store import Repository

    r = Repository(tmp_path / "store")
    r.add_user("boss", "password123", "admin")
    r.add_user("ann", "password123", "annotator")
    yield r
    r.close()
