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


@pytest.fixture
def one_thread():
    """Torch on one thread in this test and in the trainers it starts (studio_testing.one_torch_thread:
    half the CPU seconds on the shared 2-core machine). The modules that train or predict use it
    (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    from studio_testing import one_torch_thread

    with one_torch_thread():
        yield
