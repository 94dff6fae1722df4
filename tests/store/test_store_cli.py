"""`python -m store`: import, export round trip, stats, users, as a person runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from care_model.core.records import SHARED
from store import Repository

from factories import make_label, make_prediction

ROOT = Path(__file__).resolve().parents[2]
ANNOMI = ROOT.parent / "shared" / "data" / "annomi" / "AnnoMI-simple.csv"
SAMPLES = ROOT / "data" / "sessions.jsonl"


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "store", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def snapshot(root: Path):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "store.lock"}


def test_real_annomi_import_gives_133_sessions_and_9699_turns(tmp_path):
    if not ANNOMI.is_file():
        pytest.skip(f"real AnnoMI data not present at {ANNOMI} "
                    "(the shared data folder exists only on project machines)")
    store = tmp_path / "store"
    res = cli("import", "--store", store, "--format", "annomi", ANNOMI, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["added"] == 133
    stats = json.loads(cli("stats", "--store", store, "--json").stdout)
    assert (stats["sessions"], stats["turns"]) == (133, 9699)
    again = cli("import", "--store", store, "--format", "annomi", ANNOMI, "--json")
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["skipped"] == 133
    assert json.loads(cli("stats", "--store", store, "--json").stdout)["sessions"] == 133


def test_unknown_speaker_is_refused_with_the_mapping_hint_and_nothing_changes(tmp_path):
    store = tmp_path / "store"
    good = tmp_path / "good.txt"
    good.write_text("Counselor: Hello, what brings you in?\nClient: Work has been hard.\n", encoding="utf-8")
    assert cli("import", "--store", store, "--format", "text", good).returncode == 0
    before = snapshot(store)
    bad = tmp_path / "bad.txt"
    bad.write_text("Dr. Lee: How are you today?\nPatient: Not great.\nDr. Lee: Tell me more.\n", encoding="utf-8")
    res = cli("import", "--store", store, "--format", "text", good, bad)
    assert res.returncode == 2
    assert "Dr. Lee" in res.stderr and "Patient" in res.stderr and "--speaker-map" in res.stderr
    assert "Traceback" not in res.stderr
    assert snapshot(store) == before
    res = cli("import", "--store", store, "--format", "text", bad, "--speaker-map", "Dr. Lee=counselor,Patient=client")
    assert res.returncode == 0, res.stderr
    assert json.loads(cli("stats", "--store", store, "--json").stdout)["sessions"] == 2


def test_bad_ratings_file_leaves_store_untouched(tmp_path):
    store = tmp_path / "store"
    assert cli("import", "--store", store, "--format", "jsonl", SAMPLES).returncode == 0
    before = snapshot(store)
    ratings = tmp_path / "r.csv"
    header = "session_id,rater," + ",".join(f"item_{i}" for i in range(1, 13))
    ratings.write_text(header + "\nsample-en-01,counselor," + ",".join(["3"] * 11 + ["7"]) + "\n", encoding="utf-8")
    res = cli("import", "--store", store, "--format", "ratings", ratings)
    assert res.returncode == 2 and "r.csv:2" in res.stderr and "item_12" in res.stderr
    assert snapshot(store) == before
    ratings.write_text(header + "\nno-such-session,counselor," + ",".join(["3"] * 12) + "\n", encoding="utf-8")
    res = cli("import", "--store", store, "--format", "ratings", ratings)
    assert res.returncode == 2 and "unknown session 'no-such-session'" in res.stderr
    assert snapshot(store) == before


def test_export_reads_back_losslessly(tmp_path):
    store = tmp_path / "store"
    assert cli("import", "--store", store, "--format", "jsonl", SAMPLES).returncode == 0
    with Repository(store) as repo:
        sid = repo.session_ids()[0]
        repo.add_predictions([make_prediction(sid, i, score=i % 5 + 1) for i in range(1, 13)])
        lab = make_label(sid, 3, score=2, rationale="The client said “I don't think this helps” [4].")
        lab.evidence, lab.change_reasons = [4], ["wrong_score"]
        first = repo.save_label(lab, actor="alice", expected_version=0)
        repo.save_label(make_label(sid, 3, score=1, status="submitted"), actor="bob", expected_version=first.version)
        zh = [s for s in repo.session_ids() if s.startswith("sample-zh")][0]
        repo.save_label(make_label(zh, 7, rationale="来访者说：“我觉得你不太懂我。”"), actor="carol",
                        expected_version=0)
        original = {s: (repo.get_session(s).to_dict(), [p.to_dict() for p in repo.predictions(s, history=True)],
                        [x.to_dict() for x in repo.labels(s)]) for s in repo.session_ids()}
    out = tmp_path / "export.jsonl"
    res = cli("export", "--store", store, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "来访者" in out.read_text(encoding="utf-8"), "Chinese stays readable (ensure_ascii=False)"
    assert (out.stat().st_mode & 0o077) == 0, "exports of health data are private to their owner"
    fresh = tmp_path / "fresh"
    res = cli("import", "--store", fresh, "--format", "jsonl", out, "--json")
    assert res.returncode == 0, res.stderr
    with Repository(fresh) as repo:
        restored = {s: (repo.get_session(s).to_dict(), [p.to_dict() for p in repo.predictions(s, history=True)],
                        [x.to_dict() for x in repo.labels(s)]) for s in repo.session_ids()}
        assert repo.get_label(sid, 3, SHARED).version == 2
    for s in original:
        original[s][0].pop("created_at"), restored[s][0].pop("created_at")
    assert restored == original
    second = tmp_path / "export2.jsonl"
    assert cli("export", "--store", fresh, "--out", second).returncode == 0
    def strip(text):
        return [{k: v for k, v in json.loads(line).items() if k != "created_at"} for line in text.splitlines()]

    assert strip(second.read_text(encoding="utf-8")) == strip(out.read_text(encoding="utf-8"))


def test_user_commands(tmp_path):
    store = tmp_path / "store"
    assert cli("import", "--store", store, "--format", "jsonl", SAMPLES).returncode == 0
    res = cli("add-user", "--store", store, "--username", "alice", "--role", "annotator",
              env={"CARE_NEW_PASSWORD": "s3cret-pass"})
    assert res.returncode == 0, res.stderr
    assert cli("set-role", "--store", store, "--username", "alice", "--role", "adjudicator").returncode == 0
    assert "alice\tadjudicator\tactive" in cli("users", "--store", store).stdout
    res = cli("set-role", "--store", store, "--username", "ghost", "--role", "admin")
    assert res.returncode == 2 and "No user 'ghost'" in res.stderr
    with Repository(store) as repo:
        assert repo.check_password("alice", "s3cret-pass")


def test_missing_store_is_a_clear_error(tmp_path):
    res = cli("stats", "--store", tmp_path / "nowhere")
    assert res.returncode == 2 and "No store at" in res.stderr and "Fix:" in res.stderr


def test_audit_command_writes_the_trail_filtered_and_owner_only(tmp_path):
    """`python -m store audit`: the same entries the app's audit tab exports, from a shell."""
    store = tmp_path / "store"
    assert cli("import", "--store", store, "--format", "jsonl", SAMPLES).returncode == 0
    assert cli("add-user", "--store", store, "--username", "alice", "--role", "annotator",
               env={"CARE_NEW_PASSWORD": "s3cret-pass"}).returncode == 0
    assert cli("set-role", "--store", store, "--username", "alice", "--role", "adjudicator").returncode == 0
    with Repository(store) as repo:
        sid = repo.session_ids()[0]
        repo.save_labels([(make_label(sid, 1, annotator=SHARED), 0)], actor="alice")
        everything = repo.audit()
    out = tmp_path / "audit.jsonl"
    res = cli("audit", "--store", store, "--out", out)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(everything) and f"Wrote {len(lines)} audit entries" in res.stdout
    assert [e["at"] for e in lines] == sorted(e["at"] for e in lines)  # oldest first
    assert "password" not in out.read_text(encoding="utf-8").replace("set_password", "")  # never a hash
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    alice = [json.loads(x) for x in cli("audit", "--store", store, "--user", "alice").stdout.splitlines()]
    assert alice and all(e["who"] == "alice" or e["entity_id"] == "alice" for e in alice)
    assert {e["action"] for e in alice} >= {"create", "set_role"}  # the account's changes, and alice's label
    assert any(e["who"] == "alice" for e in alice) and any(e["entity_id"] == "alice" for e in alice)
    labels = [json.loads(x) for x in cli("audit", "--store", store, "--session", sid).stdout.splitlines()]
    assert labels and all(e["after"]["session_id"] == sid for e in labels)
    roles = [json.loads(x) for x in cli("audit", "--store", store, "--action", "ROLE").stdout.splitlines()]
    assert roles and all("role" in e["action"] for e in roles)
    res = cli("audit", "--store", store, "--session", "nope")
    assert res.returncode == 2 and "No session 'nope'" in res.stderr and "Fix:" in res.stderr
