"""Issue 19 through the running app: throttled login with persisted locks and an admin unlock, sessions
that end (idle, password reset), cookie attributes, nothing before login, names compared ignoring case,
control characters refused, exports deleted when their link expires; and the launch's TLS rule."""
from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from store.logins import LoginPolicy
from studio import downloads
from studio.login_guard import SessionPolicy, attempt
from studio_testing import make_store, password, serve

POLICY = LoginPolicy(base_s=60.0)  # the first lock lasts a minute: the 7th try comes well within it
SID = "sample-en-04"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from types import SimpleNamespace

    from studio.app import build_app

    repo = make_store(tmp_path_factory.mktemp("guard") / "store")
    repo.add_user("locky", "locky-pass-1", "annotator", actor="test")
    sessions = SessionPolicy()
    demo = build_app(repo, None)
    with serve(demo, login_policy=POLICY, session_policy=sessions) as url:
        yield SimpleNamespace(url=url, repo=repo, sessions=sessions)
    repo.close()


def login(url, user, pw):
    return httpx.post(url + "login", data={"username": user, "password": pw}, timeout=30)


def logged_in(url, user, pw=None) -> httpx.Client:
    h = httpx.Client(base_url=url, timeout=30)
    r = h.post("login", data={"username": user, "password": pw or password(user)})
    assert r.status_code == 200, r.text
    return h


def call(h: httpx.Client, api: str, data: list) -> httpx.Response:
    return h.post(f"gradio_api/call/{api}", json={"data": data})


def test_six_wrong_passwords_lock_the_account_until_an_admin_unlocks_it(app):
    answers = [login(app.url, "locky", f"wrong-{i}") for i in range(6)]
    assert [r.status_code for r in answers] == [400] * 5 + [429], [r.text for r in answers]
    assert all("Incorrect credentials" in r.json()["detail"] for r in answers)
    right = login(app.url, "LOCKY", "locky-pass-1")  # the right password, any case: still refused
    assert right.status_code == 429 and "try again after" in right.json()["detail"], right.text
    assert 50 <= int(right.headers["retry-after"]) <= 60 and "Fix:" in right.json()["detail"]
    assert "set-cookie" not in right.headers
    trail = [e for e in app.repo.audit() if e["entity"] == "login" and "locky" in e["entity_id"]]
    assert [e["action"] for e in trail].count("login_failed") == 6 and "lock" in [e["action"] for e in trail]
    admin = Client(app.url, auth=("admin", password("admin")), verbose=False)
    assert admin.predict(api_name="/login_locks")[0]["who"] == "user:locky"
    with pytest.raises(AppError, match="needs the role admin"):
        Client(app.url, auth=("ann", password("ann")), verbose=False).predict("locky", api_name="/unlock_login")
    assert admin.predict("locky", api_name="/unlock_login") == {"who": "locky", "cleared": 1}
    assert login(app.url, "locky", "locky-pass-1").status_code == 200
    assert app.repo.audit(entity_id="user:locky")[-1]["action"] == "unlock"


def test_a_lock_survives_a_restart(tmp_path):
    repo = make_store(tmp_path / "s", sessions=[], predictions=False, users={"ann": ("annotator", "ann-pass-12")})
    for _ in range(6):
        with pytest.raises(Exception, match="Incorrect credentials"):
            attempt(repo, "ann", "nope-nope", "10.0.0.9", POLICY)
    repo.close()
    from store import Repository

    with Repository(tmp_path / "s") as again:  # a new process would open it the same way
        with pytest.raises(Exception, match="try again after"):
            attempt(again, "ann", "ann-pass-12", "10.0.0.9", POLICY)
        again.unlock_login("ann", actor="admin")
        assert attempt(again, "Ann", "ann-pass-12", "10.0.0.9", POLICY) == "ann"


def test_unknown_and_existing_names_take_the_same_time(tmp_path, monkeypatch):
    from store import passwords

    monkeypatch.setattr(passwords, "N", 2**11)  # a cheap scrypt cost for the test: less time for load to blur
    repo = make_store(tmp_path / "t", sessions=[], predictions=False, users={"ann": ("annotator", "ann-pass-12")})
    stored = repo._users().table("users").all()[0]["password"]
    assert passwords.cost_of(passwords.dummy_hash()) == passwords.cost_of(stored) == (2**11, 8, 1)
    lenient = LoginPolicy(free_per_user=1000, free_per_address=1000)

    def seconds(name, i):
        t0 = time.perf_counter()
        with pytest.raises(Exception, match="Incorrect"):
            attempt(repo, name, f"wrong-{i}", "10.1.1.1", lenient)
        return time.perf_counter() - t0

    from store import people

    checks = []  # a spy on the real check: every login, known name or not, runs exactly one of the same cost
    real_verify = people.verify_password
    monkeypatch.setattr(people, "verify_password", lambda pw, h: checks.append(passwords.cost_of(h)) or
                        real_verify(pw, h))
    known, unknown = [], []
    for i in range(20):  # interleaved, so load changes hit both
        known.append(seconds("ann", i))
        unknown.append(seconds(f"nobody-{i}", i))
    gap = abs(statistics.median(known) - statistics.median(unknown))
    print(f"median known {statistics.median(known) * 1e3:.1f} ms, unknown {statistics.median(unknown) * 1e3:.1f} ms")
    assert gap < 0.010, (known, unknown)
    assert checks == [(2**11, 8, 1)] * 40
    assert statistics.median(unknown) > 0.001  # the scrypt check ran (it is what the names are compared by)
    repo.close()


def test_an_idle_session_is_refused_at_its_next_call(app):
    h = logged_in(app.url, "bob")
    assert call(h, "whoami", []).status_code == 200
    app.sessions.idle_s = 1.0
    try:
        time.sleep(1.6)
        r = call(h, "whoami", [])
        assert r.status_code == 401 and "idle for more than" in r.json()["detail"], r.text
        assert call(h, "whoami", []).status_code == 401  # the token is gone, not just late
    finally:
        app.sessions.idle_s = SessionPolicy().idle_s


def test_a_password_reset_ends_the_users_open_sessions(app):
    app.repo.add_user("erin", "erin-pass-123", "annotator", actor="test")
    erin = Client(app.url, auth=("erin", "erin-pass-123"), verbose=False)
    page = logged_in(app.url, "erin", "erin-pass-123")
    assert erin.predict(api_name="/whoami")["username"] == "erin"
    admin = Client(app.url, auth=("admin", password("admin")), verbose=False)
    admin.predict("erin", "erin-new-pass-456", api_name="/reset_password")
    with pytest.raises(httpx.HTTPStatusError, match="401"):
        erin.predict(api_name="/whoami")
    r = call(page, "whoami", [])
    assert r.status_code == 401 and "password, role or account changed" in r.json()["detail"]
    assert logged_in(app.url, "erin", "erin-new-pass-456").get("gradio_api/info").status_code == 200
    admin.predict("*", api_name="/end_sessions")  # an admin logs everyone else out
    assert call(page, "whoami", []).status_code == 401


def test_the_login_page_holds_no_schema_config_or_version_and_the_cookie_is_strict(app):
    import gradio

    page = httpx.get(app.url, timeout=30)
    assert page.status_code == 200 and 'type="password"' in page.text
    for leak in ("gradio_api_info", "gradio_config", "named_endpoints", "whoami", "export_store", gradio.__version__,
                 "/assets/", "<script"):
        assert leak not in page.text, leak
    for path in ("config", "gradio_api/info", "gradio_api/openapi.json", "theme.css", "gradio_api/file=x.txt"):
        assert httpx.get(app.url + path, timeout=30).status_code == 401, path
    r = login(app.url, "ann", password("ann"))
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie and "max-age=43200" in cookie
    assert "secure" not in cookie.replace("access-token-unsecure", "")  # plain HTTP on loopback: no Secure flag
    form = httpx.post(app.url + "login", data={"username": "ann", "password": "wrong-pw-1"},
                      headers={"accept": "text/html"}, timeout=30)
    assert form.status_code == 400 and "Incorrect credentials" in form.text and "<form" in form.text


def digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and not p.name.startswith("logins.json")}


def test_names_ignore_case_and_control_characters_are_refused_with_the_store_unchanged(app):
    admin = Client(app.url, auth=("admin", password("admin")), verbose=False)
    admin.predict("ann1", "ann1-pass-12", "annotator", api_name="/add_user")
    before = digest(app.repo.root)
    for name in ("ANN1", "ＡＮＮ１"):
        with pytest.raises(AppError, match="already exists as 'ann1'"):
            admin.predict(name, "ann1-pass-99", "annotator", api_name="/add_user")
    v = admin.predict(SID, api_name="/open_session")
    pred = v["items"][0]["prediction"]
    for bad in ("She said \x00 it.", "She said \u202eti dias\u202c."):
        with pytest.raises(AppError, match=r"rationale.*refused in text.*U\+(0000|202E).*Fix:"):
            admin.predict(SID, 1, pred["score"], bad, pred["evidence"], [], v["items"][0]["version"],
                          api_name="/save_draft")
    assert digest(app.repo.root) == before
    assert Client(app.url, auth=("ANN1", "ann1-pass-12"), verbose=False).predict(api_name="/whoami")["username"] \
        == "ann1"


def test_an_expired_export_is_deleted_with_gradios_copy(app, monkeypatch):
    monkeypatch.setattr(downloads, "TTL_S", 0.5)
    admin = Client(app.url, auth=("admin", password("admin")), verbose=False, download_files=False)
    fd = admin.predict(api_name="/export_store")
    served = Path(fd["path"])
    originals = list((Path(tempfile.gettempdir()) / f"care-exports-{os.getuid()}").glob(f"*/{served.name}"))
    assert served.exists() and originals
    deadline = time.time() + 20
    while (served.exists() or any(p.exists() for p in originals)) and time.time() < deadline:
        time.sleep(0.2)
    assert not served.exists() and not any(p.exists() for p in originals)


def test_a_network_address_needs_tls_unless_told_otherwise():
    from studio.launch import main, parse_args, tls_problem

    assert tls_problem(parse_args(["--host", "127.0.0.1"])) is None
    assert "plain HTTP" in tls_problem(parse_args(["--host", "0.0.0.0"]))
    assert tls_problem(parse_args(["--host", "0.0.0.0", "--insecure-http"])) is None
    assert tls_problem(parse_args(["--host", "10.0.0.5", "--ssl-keyfile", "k", "--ssl-certfile", "c"])) is None
    assert "go together" in tls_problem(parse_args(["--ssl-keyfile", "k"]))
    assert main(["--host", "0.0.0.0", "--store", "/nonexistent/never-made"]) == 2
    assert not Path("/nonexistent/never-made").exists()
