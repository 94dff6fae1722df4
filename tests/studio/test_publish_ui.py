"""The Admin tab's Publish section (studio.publish_ui): the dataset folder as a private zip for the admin."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from publish_testing import curated_store

from care_model.core.errors import CareError, PermissionDenied
from studio.access import Access
from studio.downloads import PRIVATE, may_fetch
from studio.publish_ui import publish_zip


def test_an_admin_gets_the_dataset_as_a_zip_only_they_may_fetch(tmp_path):
    repo = curated_store(tmp_path / "store")
    try:
        with pytest.raises(PermissionDenied):
            publish_zip(repo, Access("ann", "annotator"))
        path, message = publish_zip(repo, Access("admin", "admin"), "sample-en-01 sample-en-04")
        name = Path(path).name
        assert PRIVATE.match(name) and may_fetch(name, "admin") and not may_fetch(name, "ann")
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
        assert {"README.md", "publish.json"} <= names and any(n.startswith("data/") for n in names)
        assert "24 session-items of 2 sessions" in message and "without transcripts" in message
        with pytest.raises(CareError):
            publish_zip(repo, Access("admin", "admin"), "", True)
    finally:
        repo.close()
