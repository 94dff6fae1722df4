"""Issue 11 defects 3, 11 and 12 through the running app: export downloads are bound to the admin
who made them; admins deactivate users and reset passwords (audited) and a deactivated user can
neither log in nor call the API; admins read the audit trail (filters) and export it."""
from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from studio import downloads
from studio_testing import password

SID = "sample-en-06"


def client(url, user, pw=None, **kw):
    return Client(url, auth=(user, pw or password(user)), verbose=False, **kw)


def http_login(url: str, user: str, pw: str) -> httpx.Client:
    h = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    r = h.post("/login", data={"username": user, "password": pw})
    assert r.status_code in (200, 302, 303), r.text
    return h


def file_url(url: str, filedata: dict) -> str:
    return filedata.get("url") or f"{url}gradio_api/file={filedata['path']}"


@pytest.fixture(scope="module")
def admin(studio_server):
    studio_server.repo.add_user("admin2", "admin2-pass-1", "admin", actor="test")
    return client(studio_server.url, "admin", download_files=False)


def test_an_export_download_is_bound_to_the_admin_who_made_it(studio_server, admin):
    url = studio_server.url
    fd = admin.predict(api_name="/export_store")
    link = file_url(url, fd)
    assert fd["path"].endswith(".jsonl") and "care-export-" in fd["path"]
    mine = http_login(url, "admin", password("admin")).get(link)
    assert mine.status_code == 200 and b"sample-en-01" in mine.content
    for user, pw in (("ann", password("ann")), ("admin2", "admin2-pass-1")):
        r = http_login(url, user, pw).get(link)
        assert r.status_code == 403 and b"belongs to the admin who made it" in r.content and b"Fix:" in r.content
    assert httpx.get(link).status_code in (401, 403)


def test_private_downloads_expire_and_unknown_private_names_are_refused(monkeypatch):
    path = downloads.private_path("alice", "audit", "jsonl")
    assert downloads.may_fetch(path.name, "alice") and not downloads.may_fetch(path.name, "bob")
    monkeypatch.setattr(downloads, "TTL_S", 0)
    assert not downloads.may_fetch(path.name, "alice")
    assert not downloads.may_fetch("care-export-20260101-000000-0123456789abcdef.jsonl", "alice")
    assert downloads.may_fetch("some-upload.jsonl", "alice")


def test_a_deactivated_user_can_neither_log_in_nor_call_the_api(studio_server, admin):
    url = studio_server.url
    admin.predict("dora", "dora-pass-123", "annotator", api_name="/add_user")
    dora = client(url, "dora", "dora-pass-123")
    assert dora.predict(api_name="/whoami")["username"] == "dora"
    with pytest.raises(AppError, match="cannot deactivate your own account"):
        admin.predict("admin", False, api_name="/set_active")
    assert admin.predict("dora", False, api_name="/set_active") == {"username": "dora", "role": "annotator",
                                                                     "active": False}
    with pytest.raises(httpx.HTTPStatusError, match="401"):
        dora.predict(api_name="/whoami")  # a page or client logged in before is refused at its next request
    with pytest.raises(Exception):
        client(url, "dora", "dora-pass-123")
    refused = httpx.post(url + "login", data={"username": "dora", "password": "dora-pass-123"}, timeout=30)
    assert refused.status_code == 400 and "Incorrect credentials" in refused.text
    admin.predict("dora", True, api_name="/set_active")
    assert client(url, "dora", "dora-pass-123").predict(api_name="/whoami")["role"] == "annotator"
    trail = admin.predict("", "dora", "activ", 50, api_name="/audit_trail")["rows"]
    assert [r["action"] for r in trail] == ["activate", "deactivate"] and {r["who"] for r in trail} == {"admin"}


def test_an_admin_resets_a_password_and_the_old_one_stops_working(studio_server, admin):
    url = studio_server.url
    admin.predict("erin", "erin-pass-123", "annotator", api_name="/add_user")
    with pytest.raises(AppError, match="shorter than 8"):
        admin.predict("erin", "short", api_name="/reset_password")
    admin.predict("erin", "erin-new-pass-456", api_name="/reset_password")
    with pytest.raises(Exception):
        client(url, "erin", "erin-pass-123")
    assert client(url, "erin", "erin-new-pass-456").predict(api_name="/whoami")["username"] == "erin"
    entry = [e for e in studio_server.repo.audit(entity_id="erin") if e["entity"] == "user"][-1]
    assert entry["action"] == "set_password" and entry["who"] == "admin"
    assert "password" not in json.dumps(entry["after"]) and "erin-new" not in json.dumps(entry)


def test_admins_read_the_audit_trail_with_filters_and_export_it(studio_server, admin):
    url, repo = studio_server.url, studio_server.repo
    repo.assign([SID], ["ann"], actor="admin")
    ann = client(url, "ann")
    item = ann.predict(SID, api_name="/open_session")["items"][0]
    ann.predict(SID, 1, 4, "Because she says so.", [], [], item["version"], api_name="/save_draft")
    rows = admin.predict(SID, "", "", 100, api_name="/audit_trail")
    assert rows["total"] == 1 and rows["rows"][0]["who"] == "ann" and rows["rows"][0]["entity_id"].startswith(SID)
    assert "score" in rows["rows"][0]["changed"]
    by_ann = admin.predict("", "ann", "", 100, api_name="/audit_trail")["rows"]
    assert by_ann and all(r["who"] == "ann" or r["entity_id"] == "ann" for r in by_ann)
    assigns = admin.predict("", "", "assign", 100, api_name="/audit_trail")["rows"]
    assert any(r["entity_id"] == SID for r in assigns)
    with pytest.raises(AppError, match="needs the role admin"):
        ann.predict("", "", "", 10, api_name="/audit_trail")
    with pytest.raises(AppError, match="No session 'nope'"):
        admin.predict("nope", "", "", 10, api_name="/audit_trail")
    from studio import audit_trail
    from studio.access import Access

    path = audit_trail.export(repo, Access("admin", "admin"), session_id=SID)
    lines = [json.loads(x) for x in open(path, encoding="utf-8").read().splitlines()]
    assert len(lines) == 1 and lines[0]["who"] == "ann" and lines[0]["after"]["rationale"] == "Because she says so."
    assert "care-audit-" in path and not downloads.may_fetch(path.rsplit("/", 1)[1], "ann")


def test_markup_a_user_typed_comes_back_escaped_in_the_error(studio_server, admin):
    """Defect 4: Gradio renders an error's message as HTML in the toast, so what the user typed is
    escaped (the Chromium test in tests/browser/test_admin_browser.py looks at the toast)."""
    with pytest.raises(AppError) as err:
        admin.predict('<img src=x onerror="alert(1)"><b>bold</b>', "password-123", "annotator", api_name="/add_user")
    msg = str(err.value)
    assert "Bad user name" in msg and "&lt;img src=x" in msg and "&lt;b&gt;bold&lt;/b&gt;" in msg and "<img" not in msg
