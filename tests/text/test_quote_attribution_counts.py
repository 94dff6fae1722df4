"""benchmarks/quote_attribution.py: the counts of misattributed quotes, mislinked evidence and "(Line"."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.quote_attribution import count

ROOT = Path(__file__).resolve().parents[2]
SESSION = {"id": "s", "turns": [{"index": 0, "speaker": "counselor", "text": "What brings you here today then?"},
                                {"index": 1, "speaker": "client", "text": "My GP said I should talk to someone."},
                                {"index": 2, "speaker": "counselor", "text": "I hear that you were sent here."}]}


def _pred(rationale, evidence, mode="full"):
    return {"session_id": "s", "rationale": rationale, "evidence": evidence, "mode": mode}


def test_counts_each_kind_of_error_once():
    preds = [
        _pred('The client says "My GP said" and the counselor says "talk to someone" (Line', [1]),  # client's words
        _pred('The client says "My GP said I should"', [0]),            # link to a counselor turn for a client quote
        _pred('The client says "talk to someone" and the counselor says "you were sent here"', [1, 2]),  # right
        _pred('The counselor says "My GP said I should" and "I should talk"', [1], mode="draft"),
        _pred("", [0]),
        {"session_id": "other", "rationale": 'x "a b c"', "evidence": []},
    ]
    c = count(preds, [SESSION])
    assert c["rationales"] == 4 and c["skipped_no_session"] == 1
    assert c["client_words_given_to_counselor"] == 2 and c["quotes_misattributed"] == 3
    assert c["counselor_words_given_to_client"] == 0
    assert c["evidence_links_to_counselor_turns"] == 2 and c["predictions_with_counselor_evidence"] == 2
    assert c["evidence_links_not_backed_by_quote"] == 2  # turn 0 for a client quote; turn 1 in the draft
    assert c["rationales_ending_in_line"] == 1
    assert c["by_mode"]["draft"]["client_words_given_to_counselor"] == 1


def test_command_on_the_shipped_samples_and_bad_input(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.quote_attribution", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    c = json.loads(out.stdout)
    assert c["rationales"] > 0 and c["skipped_no_session"] == 0
    bad = tmp_path / "p.jsonl"
    bad.write_text("{not json\n")
    res = subprocess.run([sys.executable, "-m", "benchmarks.quote_attribution", str(bad)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode != 0 and "p.jsonl:1 is not JSON" in res.stderr
