"""The review app through its HTTP API (gradio_client with login): actions, roles, conflicts, files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from care_model.core.records import SHARED
from studio.api import ENDPOINTS
from studio_testing import password

ROOT = Path(__file__).resolve().parents[2]
SID = "sample-en-03"


@pytest.fixture(scope="module")
def clients(studio_server):
    return {u: Client(studio_server.url, auth=(u, password(u)), verbose=False) for u in ("admin", "ann", "bob")}


def http_login(url: str, user: str) -> httpx.Client:
    h = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    r = h.post("/login", data={"username": user, "password": password(user)})
    assert r.status_code in (200, 302, 303), r.text
    return h


def snapshot(repo) -> dict:
    return {"users": sorted((u["username"], u["role"], u["active"]) for u in repo.users()),
            "assignments": repo.assignments(), "settings": repo.collection("settings").all(),
            "stats": repo.stats(), "audit": len(repo.audit())}


def test_importing_the_app_starts_nothing():
    code = ("import threading, sys, annotate_app, studio.app, studio.review_tab, studio.api, studio.jobs;"
            "assert threading.active_count() == 1, threading.enumerate();"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_every_action_has_a_stable_api_name(clients):
    names = set(clients["admin"].view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {f"/{n}" for n in ENDPOINTS} | {"/export_store", "/import_sessions"} <= names
    assert {"/list_queue", "/open_session", "/save_draft", "/submit_session", "/predict_session", "/predict_status",
            "/export_store"} <= names
    assert clients["ann"].predict(api_name="/whoami")["role"] == "annotator"


def test_login_is_required(studio_server):
    assert httpx.post(studio_server.url + "gradio_api/info").status_code in (401, 403, 405)
    assert httpx.get(studio_server.url + "gradio_api/info").status_code == 401
    with pytest.raises(Exception):
        Client(studio_server.url, auth=("ann", "wrong-password"), verbose=False)


def test_annotator_cannot_call_admin_endpoints_and_nothing_changes(studio_server, clients):
    repo, ann = studio_server.repo, clients["ann"]
    before = snapshot(repo)
    calls = [("/export_store", ()), ("/set_setting", ("unassigned_visible", True)),
             ("/assign_sessions", ([SID], ["ann"], "shared")), ("/add_user", ("mallory", "password-123", "admin")),
             ("/set_role", ("ann", "admin")), ("/list_users", ())]
    for api_name, args in calls:
        with pytest.raises(AppError, match=r"ann \(annotator\) may not do this.*needs the role admin"):
            ann.predict(*args, api_name=api_name)
    upload = Path(studio_server.repo.root).parent / "upload.jsonl"
    upload.write_text(json.dumps({"id": "evil", "language": "en", "turns": [{"speaker": "client",
                                                                             "text": "hi"}]}) + "\n")
    from gradio_client import handle_file

    with pytest.raises(AppError, match="needs the role admin"):
        ann.predict([handle_file(str(upload))], "jsonl", False, api_name="/import_sessions")
    assert snapshot(repo) == before and not repo.has_session("evil")


def test_queue_open_save_reload_submit_through_the_api(studio_server, clients):
    admin, ann, repo = clients["admin"], clients["ann"], studio_server.repo
    assert ann.predict("all", "", "id", api_name="/list_queue")["rows"] == []  # nothing assigned, setting off
    with pytest.raises(AppError, match="not in your queue"):
        ann.predict(SID, api_name="/open_session")
    admin.predict([SID], ["ann"], "shared", api_name="/assign_sessions")
    q = ann.predict("mine", "", "id", api_name="/list_queue")
    assert [r["id"] for r in q["rows"]] == [SID] and q["counts"]["not started"] == 1
    v = ann.predict(SID, api_name="/open_session")
    assert (len(v["items"]) == 12 and v["slot"] == SHARED
            and v["items"][0]["prediction"]["model_version"] == "test-model")
    quote = v["session"]["turns"][1]["text"].split()[:4]
    for it in v["items"]:
        pred = it["prediction"]
        res = ann.predict(SID, it["item"], pred["score"], pred["rationale"], pred["evidence"], [], it["version"],
                          api_name="/save_draft")
        assert res["status"] == "saved" and res["version"] == 1
    changed = ann.predict(SID, 5, 1, f'She said "{" ".join(quote)}" early on.', [1], ["wrong_score"], 1,
                          api_name="/save_draft")
    assert changed["status"] == "saved" and changed["version"] == 2 and changed["label"]["updated_by"] == "ann"
    again = ann.predict(SID, api_name="/open_session")  # a reload shows exactly what was saved
    item5 = again["items"][4]
    assert item5["draft"]["score"] == 1 and item5["draft"]["rationale"].startswith("She said") and item5["version"] == 2
    assert item5["state"] == "draft" and again["status"] == "in progress"
    res = ann.predict(SID, {"5": 2}, api_name="/submit_session")
    assert res["status"] == "submitted", res
    assert {lab.status for lab in repo.labels(SID)} == {"submitted"}
    assert ann.predict("mine", "", "id", api_name="/list_queue")["counts"]["submitted"] == 1


def test_two_experts_saving_the_same_item_see_a_conflict(studio_server, clients):
    admin, ann, bob = clients["admin"], clients["ann"], clients["bob"]
    sid = "sample-en-04"
    admin.predict([sid], ["ann", "bob"], "shared", api_name="/assign_sessions")
    base = ann.predict(sid, api_name="/open_session")["items"][2]["version"]
    first = ann.predict(sid, 3, 4, "Ann's reading.", [], ["style"], base, api_name="/save_draft")
    assert first["status"] == "saved"
    clash = bob.predict(sid, 3, 2, "Bob's reading.", [], ["wrong_score"], base, api_name="/save_draft")
    assert clash["status"] == "conflict" and clash["current"]["rationale"] == "Ann's reading."
    assert clash["yours"]["rationale"] == "Bob's reading." and clash["current"]["updated_by"] == "ann"
    assert studio_server.repo.get_label(sid, 3, SHARED).rationale == "Ann's reading."
    merged = bob.predict(sid, 3, 3, "Ann's reading. Bob's reading.", [], ["style"], clash["current"]["version"],
                         api_name="/save_draft")
    assert merged["status"] == "saved" and merged["version"] == 2


def test_store_files_are_never_served(studio_server):
    root = Path(studio_server.repo.root).resolve()
    files = [p for p in root.rglob("*.json")] + [root / "store.lock"]
    assert files
    h = http_login(studio_server.url, "admin")
    assert h.get("/gradio_api/info").status_code == 200  # logged in
    text = studio_server.repo.get_session(SID).turns[0].text
    for f in files[:5] + [root / "users.json"]:
        for route in (f"/gradio_api/file={f}", f"/file={f}", f"/gradio_api/file={os.path.relpath(f, ROOT)}"):
            r = h.get(route)
            assert r.status_code >= 400, (route, r.status_code)
            assert text[:30] not in r.text and "password" not in r.text


def test_admin_export_is_a_file_of_every_session(studio_server, clients):
    path = clients["admin"].predict(api_name="/export_store")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(studio_server.repo.session_ids())
    assert {"predictions", "labels", "turns"} <= set(json.loads(lines[0]))


def test_share_is_refused_outside_the_demo(studio_server):
    from studio.app import ShareRefused

    with pytest.raises(ShareRefused, match="Public links"):
        studio_server.demo.launch(share=True, prevent_thread_lock=True)
    out = subprocess.run([sys.executable, "annotate_app.py", "--share", "--store", str(studio_server.repo.root)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Public links (share) are refused" in out.stderr and "--demo" in out.stderr


def test_no_transcript_text_in_logs(studio_server, clients, capfd, caplog):
    sess = studio_server.repo.get_session("sample-en-06")
    clients["admin"].predict("sample-en-06", api_name="/open_session")
    clients["admin"].predict("sample-en-06", 1, 3, sess.turns[2].text, [2], [], 0, api_name="/save_draft")
    with pytest.raises(AppError):
        clients["admin"].predict("sample-en-06", 1, 9, sess.turns[3].text, [], [], 1, api_name="/save_draft")
    with pytest.raises(AppError):
        clients["ann"].predict("sample-en-06", api_name="/open_session")
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    for t in sess.turns[:6]:
        assert t.text[:40] not in logged


def test_admin_imports_a_file(studio_server, clients, tmp_path):
    from gradio_client import handle_file

    upload = tmp_path / "new.jsonl"
    upload.write_text(json.dumps({"id": "imported-1", "language": "en", "client_id": "c-new", "turns": [
        {"speaker": "counselor", "text": "What brings you in?"}, {"speaker": "client",
                                                                  "text": "I could not sleep."}]}) + "\n")
    _, report = clients["admin"].predict([handle_file(str(upload))], "jsonl", True, api_name="/import_sessions")
    # no model here
    assert report["added"] == 1 and report["added_ids"] == ["imported-1"] and report["predict_jobs"] == []
    assert studio_server.repo.has_session("imported-1")
    rows = clients["admin"].predict("all", "imported", "id", api_name="/list_queue")["rows"]
    assert [r["id"] for r in rows] == ["imported-1"]


def test_the_queue_keeps_no_per_event_analytics(studio_server, clients):
    """Gradio's queue would rebuild a pandas summary of every past event after each event (30-60 ms of
    CPU per request on this machine, growing with the day's events) for a monitoring page the studio
    never serves: studio.app keeps one record and never recomputes it."""
    queue = studio_server.demo._queue
    for _ in range(3):
        clients["ann"].predict(api_name="/whoami")
    assert queue.events_recorded >= 3                       # the events ran through this queue
    assert len(queue.event_analytics) <= 1                  # no history kept ...
    assert queue.event_count_at_last_cache == 0            # ... and no summary ever computed
