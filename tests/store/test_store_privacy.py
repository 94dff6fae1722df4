"""Issue 19 in the store: private files (0600, folders 0700) from creation and fixed on opening an older
store; user names compared as NFKC + casefold; the login throttle's back-off and its persistence."""
from __future__ import annotations

import os
import stat

import pytest

from care_model.core.errors import ValidationError
from care_model.core.textcheck import check_text, unsafe_characters, username_key
from store import Repository
from store.logins import LoginPolicy
from factories import make_session


def modes(root):
    out = {}
    for path in [root, *root.rglob("*")]:
        out[str(path.relative_to(root))] = (stat.S_ISDIR(path.lstat().st_mode), stat.S_IMODE(path.lstat().st_mode))
    return out


def test_every_file_of_a_new_store_is_0600_and_every_folder_0700(tmp_path):
    old = os.umask(0o022)  # the usual umask: without the store's own modes, files would be 0644
    try:
        repo = Repository(tmp_path / "store")
        repo.add_sessions([make_session("s-1"), make_session("s-2")])
        repo.add_user("ann", "ann-pass-12", "annotator", actor="test")
        repo.record_login_failure("ann", "10.0.0.1", LoginPolicy())
        repo.collection("settings").put({"id": "review", "unassigned_visible": True}, actor="test")
        repo.close()
    finally:
        os.umask(old)
    found = modes(tmp_path / "store")
    assert len(found) >= 10 and any(is_dir for is_dir, _ in found.values())
    wrong = {p: oct(m) for p, (is_dir, m) in found.items() if m != (0o700 if is_dir else 0o600)}
    assert not wrong, wrong


def test_opening_an_older_store_makes_it_private_and_says_so(tmp_path, capsys):
    with Repository(tmp_path / "store") as repo:
        repo.add_sessions([make_session("s-1")])
        repo.add_user("ann", "ann-pass-12", "annotator", actor="test")
    root = tmp_path / "store"
    for path in [root, *root.rglob("*")]:  # as a store made before issue 19 was left
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    with Repository(root) as repo:
        assert repo.permissions_fixed["files"] >= 4 and repo.permissions_fixed["folders"] >= 2
    err = capsys.readouterr().err
    assert "made" in err and "private to this account" in err
    assert all(m == (0o700 if is_dir else 0o600) for is_dir, m in modes(root).values())
    with Repository(root) as repo:  # nothing left to fix: no message
        assert repo.permissions_fixed == {"folders": 0, "files": 0}


def test_user_names_ignore_case_and_unicode_form(tmp_path):
    with Repository(tmp_path / "store") as repo:
        repo.add_user("ann1", "ann1-pass-12", "annotator")
        for twin in ("ANN1", "Ann1", "ＡＮＮ１"):
            with pytest.raises(ValidationError, match="already exists as 'ann1'"):
                repo.add_user(twin, "other-pass-12", "admin")
        assert [u["username"] for u in repo.users()] == ["ann1"]
        assert repo.check_password("ＡＮＮ１", "ann1-pass-12") and repo.canonical_username("ANN1") == "ann1"
        assert not repo.check_password("ann1", "wrong-pass-1") and not repo.check_password("nobody", "x" * 10)
    assert username_key("ＡＮＮ１") == username_key("ann1") == "ann1"


def test_control_characters_and_bidi_overrides_are_refused_but_newlines_and_tabs_pass():
    assert unsafe_characters("a\tb\nc\r\n") == []
    assert unsafe_characters("x\x00y\u202ez\x1b\u2066") == ["U+0000", "U+202E", "U+001B", "U+2066"]
    with pytest.raises(ValidationError, match=r"U\+202E \(RIGHT-TO-LEFT OVERRIDE\).*Fix:"):
        check_text("said \u202eti\u202c", "rationale")


def test_the_back_off_doubles_after_five_failures_and_survives_reopening(tmp_path):
    policy = LoginPolicy()
    assert [policy.lock_s(n, 5) for n in range(1, 10)] == [0, 0, 0, 0, 0, 1, 2, 4, 8]
    assert policy.lock_s(40, 5) == 15 * 60
    with Repository(tmp_path / "store") as repo:
        until = [repo.record_login_failure("Ann", "10.0.0.1", LoginPolicy(base_s=30)) for _ in range(6)]
        assert until[:5] == [0.0] * 5 and until[5] > 0
    with Repository(tmp_path / "store") as repo:
        assert repo.login_locked_until("ANN", "10.9.9.9") == until[5]  # the account, from any address
        assert repo.login_locked_until("bob", "10.0.0.1") == 0.0  # 6 failures: the address is not locked
        assert repo.unlock_login("ann", actor="admin") == 1 and repo.login_locked_until("ann", "x") == 0.0
        actions = [e["action"] for e in repo.audit() if e["entity"] == "login"]
        assert actions.count("login_failed") == 6 and actions.count("lock") == 1 and actions[-1] == "unlock"
