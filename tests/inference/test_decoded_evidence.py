"""Grounded evidence is the turn each quote was decoded from, not a transcript search (issue 17).

On the tiny random Llama (a real transformers model): the client's words also appear, earlier, in
a counselor turn (a counselor echoing the client), so a search of the transcript would link the
quote to the counselor turn. Under grounded decoding the prediction's evidence is the client turn
the constraint decoded the quote from; under free decoding the search stays.
"""
from __future__ import annotations

import pytest

from care_model.core.records import Session
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.text.evidence import TranscriptIndex, quote_attributions

ECHO = "I feel stuck at work and at home lately."
TURNS = [{"index": 0, "speaker": "counselor", "text": ECHO},
         {"index": 1, "speaker": "client", "text": ECHO},
         {"index": 2, "speaker": "counselor", "text": "Tell me more about what happens at home."}]
SPEAKER = {t["index"]: t["speaker"] for t in TURNS}


def _session() -> Session:
    return Session(id="echo", language="en", source="test", client_id="c-1", turns=TURNS,
                   ratings={"client": {i: 4 for i in range(1, 13)}})


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=48, candidate_turns=2))


def _check_grounded(pred, session):
    assert pred.decoding == "grounded" and pred.rationale, pred.raw_output
    said = quote_attributions(pred.rationale)
    assert said and said[0][1] == "client", "the lead-in names the client"
    assert 1 in pred.evidence, f"the client's quote links to the client turn it was decoded from: {pred.rationale!r}"
    # the old transcript-wide search links the same quote to the counselor's echo (turn 0)
    assert 0 in TranscriptIndex(session.turns).link(pred.rationale).turn_indices
    for quote, who in said:  # and every quote is given to the speaker whose turn it comes from
        assert any(SPEAKER[e] == who and quote.rstrip(".") in TURNS[e]["text"] for e in pred.evidence), \
            (quote, who, pred.evidence)


def test_grounded_evidence_is_the_decoded_client_turn(predictor):
    session = _session()
    preds = predictor.predict_session(session, items=[1, 2, 3])
    for pred in preds:
        _check_grounded(pred, session)
        assert set(pred.candidate_turns) == {0, 1, 2}, "counselor turns are candidates after a counselor lead-in"


def test_drafts_use_the_decoded_turn_too(predictor):
    session = _session()
    for pred in predictor.draft(session, targets={1: 4, 5: 2}, source="client"):
        _check_grounded(pred, session)


def test_free_decoding_keeps_the_transcript_search(tiny_model_dir):
    free = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=24, decoding="free"))
    session = _session()
    index = TranscriptIndex(session.turns)
    for pred in free.predict_session(session, items=[1, 2]):
        assert pred.decoding == "free" and pred.candidate_turns == []
        assert pred.evidence == (index.link(pred.rationale).turn_indices if pred.rationale else [])
