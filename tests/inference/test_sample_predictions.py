"""The shipped sample predictions (data/sample_predictions.jsonl, SmolLM2 with grounded decoding) and grounded
predictions of a freshly imported real AnnoMI transcript through the predict command."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from care_model.text.evidence import TranscriptIndex, find_quotes, quote_attributions
from care_model.core.records import Prediction, Session
from store import Repository

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "sample_predictions.jsonl"
SESSIONS = {json.loads(line)["id"]: Session.from_dict(json.loads(line))
            for line in (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
ANNOMI = ROOT.parent / "shared" / "data" / "annomi" / "AnnoMI-simple.csv"


def _argmax(probs) -> int:
    return max(range(len(probs)), key=lambda k: probs[k]) + 1


def _check_quotes(pred: Prediction, session: Session) -> list[str]:
    """The rationale's quotes, each asserted verbatim in the session (and in the item's candidate turns)."""
    quotes = find_quotes(pred.rationale)
    whole, allowed = TranscriptIndex(session.turns), TranscriptIndex(
        [t for t in session.turns if t.index in pred.candidate_turns])
    for q in quotes:
        assert whole.find(q) is not None and allowed.find(q) is not None, (pred.session_id, pred.item, q)
    assert whole.link(pred.rationale).unsupported == [] and pred.unsupported_quotes == []
    return quotes


def test_shipped_sample_predictions_have_a_score_and_a_verbatim_quote():
    preds = [Prediction.from_dict(json.loads(line)) for line in SAMPLES.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    suggestions = [p for p in preds if p.mode == "full"]
    assert len(suggestions) == 12 * len(SESSIONS) and {p.session_id for p in suggestions} == set(SESSIONS)
    good = 0
    for p in suggestions:
        assert p.decoding == "grounded" and len(p.candidate_turns) == 8
        assert p.score is not None and p.score == _argmax(p.probs_calibrated or p.probs), (p.session_id, p.item)
        quotes = _check_quotes(p, SESSIONS[p.session_id])
        good += p.parse_status == "ok" and bool(p.rationale) and bool(quotes) and bool(p.evidence)
    assert good >= 0.98 * len(suggestions), f"{good}/{len(suggestions)} have a score and a quoted rationale"
    # drafts for the client's self-report (client-anchored curation starts each card from them):
    # one per self-rated item, written for exactly the client's score, quoting verbatim
    drafts = {(d.session_id, d.item): d for d in preds if d.mode == "draft"}
    wanted = {(sid, int(i)): int(v) for sid, s in SESSIONS.items() for i, v in (s.ratings.get("client") or {}).items()}
    assert wanted and set(drafts) == set(wanted)
    quoted = 0
    for key, d in drafts.items():
        assert d.score == d.drafted_for_score == wanted[key] and d.draft_source == "client" and d.decoding == "grounded"
        quoted += bool(_check_quotes(d, SESSIONS[d.session_id])) and bool(d.evidence)
    assert quoted >= 0.98 * len(drafts), f"{quoted}/{len(drafts)} drafts quote the transcript"


def test_predict_command_on_a_real_annomi_session_quotes_it_verbatim(tmp_path, tiny_model_dir):
    if not ANNOMI.is_file():
        pytest.skip(f"real AnnoMI data not present at {ANNOMI} "
                    "(the shared data folder exists only on project machines)")
    with open(ANNOMI, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["transcript_id"]] = counts.get(r["transcript_id"], 0) + 1
    tid = min((n, t) for t, n in counts.items() if n >= 40)[1]  # the shortest transcript of 40+ turns
    one = tmp_path / "one.csv"
    with open(one, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["transcript_id"] == tid)
    store = tmp_path / "store"
    run = lambda *a: subprocess.run([sys.executable, *a], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    res = run("-m", "store", "import", "--store", str(store), "--format", "annomi", str(one), "--json")
    assert res.returncode == 0, res.stderr
    with Repository(store) as repo:
        (sid,) = repo.session_ids()
    res = run("-m", "care_model.jobs.predict", "--store", str(store), "--session", sid, "--model", str(tiny_model_dir),
              "--max-new-tokens", "48", "--calibration", "none", "--json")
    assert res.returncode == 0, res.stderr
    with Repository(store) as repo:
        session, preds = repo.get_session(sid), repo.predictions(sid)
    assert len(preds) == 12
    quoted = 0
    for p in preds:
        assert p.decoding == "grounded" and p.score == _argmax(p.probs)
        speaker = {t.index: t.speaker for t in session.turns}
        speakers = [speaker[i] for i in p.candidate_turns]
        assert speakers[0] == "client" and speakers == sorted(speakers), "client candidates, then counselor ones"
        quoted += bool(_check_quotes(p, session))
        for q, who in quote_attributions(p.rationale):  # each quote from a turn of the speaker it is given to
            assert TranscriptIndex([t for t in session.turns if t.speaker == who]).find(q) is not None, (q, who)
    assert quoted >= 11, f"only {quoted}/12 rationales quote the transcript"
