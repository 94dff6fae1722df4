"""Predictor and the predict command, on the tiny random Llama (real transformers model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.jobs.predict import pending_sessions
from care_model.core.records import Session
from store import Repository
from store.formats import read_files

from factories import make_session

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [json.loads(line) for line in (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=12))


def test_model_version_is_known_without_loading(tiny_model_dir):
    p = Predictor(ModelSpec(base=str(tiny_model_dir)))
    assert p.model_version.startswith("tiny") and not p.loaded


def test_full_predictions_of_a_session(predictor):
    session = Session.from_dict(SAMPLES[0])
    seen = []
    preds = predictor.predict_session(session, progress=lambda f, m: seen.append(f))
    assert [p.item for p in preds] == list(range(1, 13))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    for p in preds:
        assert p.session_id == session.id and p.model_version == predictor.model_version and p.mode == "full"
        assert len(p.probs) == 5 and abs(sum(p.probs) - 1) < 1e-4
        assert abs(p.expected_score - sum((k + 1) * q for k, q in enumerate(p.score_probs))) < 1e-3
        assert p.expected_score >= 1 and p.expected_score <= 5
        # a random tiny model writes junk: recorded as a parse failure with the raw text, never raised
        if p.parse_status == "failed":
            assert p.score is None and p.parse_error
        else:
            assert p.parse_status == "ok" and 1 <= p.score <= 5
    assert len({p.prompt_hash for p in preds}) == 12, "one prompt per item"
    again = predictor.predict_session(session, items=[3])
    assert again[0].prompt_hash == preds[2].prompt_hash and again[0].raw_output == preds[2].raw_output


def test_scores_only_mode(predictor):
    session = Session.from_dict(SAMPLES[1])
    full = {p.item: p for p in predictor.predict_session(session)}
    fast = predictor.predict_session(session, scores_only=True)
    for p in fast:
        assert p.mode == "scores_only" and p.parse_status == "scores_only" and p.rationale == "" and p.raw_output == ""
        assert p.score == max(range(5), key=lambda k: p.probs[k]) + 1
        assert p.probs == pytest.approx(full[p.item].probs, abs=1e-4)


def test_long_transcript_is_truncated_with_a_warning(tiny_model_dir):
    long = make_session("long", n_turns=400)
    p = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=4, max_prompt_tokens=1200))
    preds = p.predict_session(long, scores_only=True, items=[1, 2])
    assert all(any("transcript truncated" in w for w in x.warnings) for x in preds)


def test_predict_command_fills_the_store_and_resumes(tmp_path, tiny_model_dir, capsys):
    """`care predict` (its main, in this process: the subprocess entry is checked by tests/test_cli_help.py)."""
    from care_model.jobs.predict import main

    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.import_batch(read_files([ROOT / "data" / "sessions.jsonl"], "jsonl"))
    args = ["--store", str(store), "--model", str(tiny_model_dir), "--session", "sample-en-02", "--session",
            "sample-zh-03", "--max-new-tokens", "8", "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["sessions"] == 2 and counts["predictions"] == 24 and counts["skipped"] == 0
    assert "predicting" in err, "a progress bar on the terminal"
    assert main(args) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["sessions"] == 0 and counts["skipped"] == 2, "sessions this version predicted are skipped"
    with Repository(store) as repo:
        assert repo.stats()["predictions"] == 24
        version = repo.predictions("sample-en-02")[0].model_version
        assert pending_sessions(repo, version, ["sample-en-02", "sample-en-03"]) == ["sample-en-03"]
        assert {p.item for p in repo.predictions("sample-zh-03", version)} == set(range(1, 13))
    assert main(["--store", str(tmp_path / "none")]) == 2
    assert "No store at" in capsys.readouterr().err


# ----------------------------------------------------------------------------- grounded decoding
@pytest.mark.parametrize("sample", [0, 20])  # English, Chinese
def test_grounded_predictions_quote_candidate_turns(tiny_model_dir, sample):
    """Default decoding is grounded: score = argmax of the stored distribution, every quote verbatim from
    the item's recorded candidate turns (MiniLM top-k of the client's, then of the counselor's for quotes
    after "the counselor says") of the speaker it is attributed to, evidence the decoded turns, nothing
    unsupported."""
    from care_model.text.evidence import TranscriptIndex, find_quotes, quote_attributions

    session = Session.from_dict(SAMPLES[sample])
    p = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=48, candidate_turns=3))
    assert p.config.decoding == "grounded"
    preds = p.predict_session(session)
    speaker = {t.index: t.speaker for t in session.turns}
    for x in preds:
        assert x.decoding == "grounded" and x.parse_status == "ok", x.raw_output
        assert x.score == max(range(5), key=lambda k: x.score_probs[k]) + 1  # calibrated when calibration is on
        assert [speaker[i] for i in x.candidate_turns] == ["client"] * 3 + ["counselor"] * 3
        quotes = find_quotes(x.rationale)
        assert quotes and x.unsupported_quotes == [] and x.evidence
        assert set(x.evidence) <= set(x.candidate_turns)
        for q, who in quote_attributions(x.rationale):
            allowed = TranscriptIndex([t for t in session.turns if t.index in x.candidate_turns and t.speaker == who])
            assert allowed.find(q) is not None, (q, who, x.rationale)
        assert x.truncated == any("cut at" in w for w in x.warnings)
    assert len({tuple(x.candidate_turns) for x in preds}) >= 3, "candidates differ by item"


def test_free_decoding_is_the_unconstrained_answer(tiny_model_dir):
    session = Session.from_dict(SAMPLES[2])
    spec = ModelSpec(base=str(tiny_model_dir))
    free = Predictor(spec, PredictConfig(max_new_tokens=10, decoding="free"))
    preds = free.predict_session(session, items=[1, 2])
    engine = free.engine()
    prefix, suffixes = engine.encode_prompt(free.session_prompt(session, [1, 2]))
    raw = engine.run_session(prefix, suffixes, max_new_tokens=10)
    assert [x.raw_output for x in preds] == [raw[1].text, raw[2].text]
    assert all(x.decoding == "free" and x.candidate_turns == [] for x in preds)
    with pytest.raises(Exception, match="Unknown decoding"):
        Predictor(spec, PredictConfig(decoding="beam")).predict_session(session, items=[1])


def test_grounded_score_is_the_calibrated_argmax_with_calibration(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CARE_CACHE_DIR", str(tmp_path / "cache"))
    session = Session.from_dict(SAMPLES[3])
    p = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=30, calibration="content-free"))
    preds = p.predict_session(session, items=[1, 2, 3, 4])
    for x in preds:
        assert x.probs_calibrated and x.decoding == "grounded"
        assert x.score == max(range(5), key=lambda k: x.probs_calibrated[k]) + 1
        assert x.raw_output.lstrip().startswith(str(x.score))
    assert any(max(range(5), key=lambda k: x.probs[k]) + 1 != x.score for x in preds), \
        "on this tiny model calibration changes some argmax (else the test proves nothing)"
