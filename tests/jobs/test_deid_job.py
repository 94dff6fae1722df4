"""Issue 19's de-identification check: the scan finds the e-mail, phone number and address planted in a
fixture transcript; the gate (what `publish` and the app's export call) refuses until an admin reviews,
the review and an override are in the audit trail, an edited transcript needs a new review, redaction
leaves typed placeholders (the public demo's refusal: tests/studio/test_demo.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from care_model.core.errors import DeidentificationRequired, PermissionDenied
from care_model.jobs.deid import (
    findings,
    record_review,
    redact_session,
    require_reviewed,
    scan_sessions,
    unreviewed,
)
from care_model.text.deid import redact_text, scan_text
from store import Repository
from store.formats import read_files

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "deid" / "planted_session.txt"
PLANTED = {"EMAIL_ADDRESS": "dana.whitfield@example.net", "PHONE_NUMBER": "415-555-0132",
           "STREET_ADDRESS": "2217 Larkspur Avenue, Apt 4B, Oakland, CA 94610"}


@pytest.fixture
def repo(tmp_path):
    with Repository(tmp_path / "store") as repo:
        session = read_files([FIXTURE], "text").sessions[0]
        session.id = "planted"
        lines = FIXTURE.read_text(encoding="utf-8").splitlines()
        (tmp_path / "clean.txt").write_text("\n".join(lines[:2] + lines[6:]) + "\n", encoding="utf-8")
        clean = read_files([tmp_path / "clean.txt"], "text").sessions[0]
        clean.id = "clean"
        repo.add_sessions([session, clean])
        repo.add_user("admin", "admin-pass-1", "admin", actor="test")
        repo.add_user("ann", "ann-pass-12", "annotator", actor="test")
        yield repo


def test_the_scan_finds_the_planted_email_phone_and_address(repo):
    found = scan_sessions(repo, actor="admin")
    assert found["clean"] == []
    assert {f["entity"]: f["text"] for f in found["planted"]} == PLANTED
    assert {f["turn"] for f in found["planted"]} == {3, 5}
    stored = repo.deid_record("planted")
    assert len(stored["findings"]) == 3 and "text" not in stored["findings"][0]  # positions only, no copy of PII
    assert {f["text"] for f in findings(repo, "planted")} == set(PLANTED.values())


def test_the_gate_refuses_until_an_admin_reviews_and_the_audit_trail_records_it(repo):
    with pytest.raises(DeidentificationRequired, match="not cleared.*planted, clean.*Fix:"):
        require_reviewed(repo, ["planted", "clean"])  # never scanned
    scan_sessions(repo, actor="admin")
    assert unreviewed(repo, ["planted", "clean"]) == ["planted"]  # a clean scan needs no review
    with pytest.raises(DeidentificationRequired, match="planted"):
        require_reviewed(repo, ["planted", "clean"])
    with pytest.raises(PermissionDenied):
        record_review(repo, "planted", reviewer="ann", decision="cleared")
    record_review(repo, "planted", reviewer="admin", decision="cleared", note="staff phone line, fictional")
    require_reviewed(repo, ["planted", "clean"])
    entry = [e for e in repo.audit(entity_id="planted") if e["entity"] == "deid"][-1]
    assert entry["who"] == "admin" and entry["action"] == "deid_review_cleared"
    assert entry["after"]["review"]["note"] == "staff phone line, fictional"


def test_a_changed_transcript_needs_a_new_scan_and_review_and_an_override_is_audited(repo):
    scan_sessions(repo, actor="admin")
    record_review(repo, "planted", reviewer="admin", decision="cleared")
    turn = repo.get_session("planted").turns[1]
    repo.redact_turns("planted", {turn.index: turn.text + " Call me at 212-555-0199."}, actor="admin",
                      keep_original=False)
    assert unreviewed(repo, ["planted"]) == ["planted"]
    with pytest.raises(PermissionDenied):
        require_reviewed(repo, ["planted"], override_by="ann")
    require_reviewed(repo, ["planted"], override_by="admin", purpose="Publishing")
    override = [e for e in repo.audit() if e["action"] == "deid_override"][-1]
    assert override["who"] == "admin" and override["after"]["sessions"] == ["planted"]


def test_redaction_leaves_typed_placeholders_and_keeps_the_original_only_if_asked(repo):
    out = redact_session(repo, "planted", actor="admin", keep_original=False)
    assert out["findings_replaced"] == 3 and out["findings_left"] == 0
    texts = " ".join(t.text for t in repo.get_session("planted").turns)
    assert "[PHONE]" in texts and "[EMAIL]" in texts and "[ADDRESS]" in texts
    assert not any(v in texts for v in PLANTED.values())
    assert repo.collection("deid_originals").get("planted") is None and unreviewed(repo, ["planted"]) == []
    assert [e["action"] for e in repo.audit(session_id="planted")] == ["redact"]
    redact_session(repo, "clean", actor="admin", keep_original=True)  # nothing to replace: nothing kept
    assert repo.collection("deid_originals").get("clean") is None
    assert redact_text("write to a@b.org") == "write to [EMAIL]" and scan_text("I feel better.") == []
