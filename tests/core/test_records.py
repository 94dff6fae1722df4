"""care_model.core.records: sessions validate with clear messages, records round-trip, score sources fit."""
from __future__ import annotations

import pytest

from care_model.core.errors import ValidationError
from care_model.core.records import (ADJUDICATED, SHARED, Label, Prediction, Session, check_score_source, label_id,
                                     stable_hash)


def _session(**kw):
    base = {"id": "s1", "client_id": "c1", "turns": [{"index": 0, "speaker": "counselor", "text": "Hi."},
                                                     {"index": 1, "speaker": "client", "text": "Hello."}]}
    return Session.from_dict({**base, **kw})


def test_a_session_round_trips_and_its_hash_ignores_metadata():
    s = _session(ratings={"client": {str(i): 3 for i in range(1, 13)}}, metadata={"site": "a"})
    back = Session.from_dict(s.to_dict())
    assert back == s and back.ratings["client"][12] == 3
    assert _session(metadata={"site": "b"}).content_hash == s.content_hash
    changed = _session(turns=[{"index": 0, "speaker": "client", "text": "Other."}])
    assert changed.content_hash != s.content_hash
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


@pytest.mark.parametrize("kw,message", [
    ({"turns": [{"index": 0, "speaker": "therapist", "text": "Hi."}]}, "unknown speaker 'therapist'"),
    ({"turns": [{"index": 1, "speaker": "client", "text": "Hi."}]}, "turn indices must run 0, 1, 2"),
    ({"turns": [{"index": 0, "speaker": "client", "text": "  "}]}, "has no text"),
    ({"turns": []}, "has no turns"),
    ({"language": "fr"}, "unknown language 'fr'"),
    ({"ratings": {"friend": {str(i): 3 for i in range(1, 13)}}}, "unknown rater 'friend'"),
    ({"ratings": {"client": {"1": 3}}}, "Missing items"),
])
def test_a_bad_session_is_refused_naming_the_problem(kw, message):
    with pytest.raises(ValidationError, match=message) as err:
        _session(**kw).validate()
    assert "Fix:" in str(err.value) or err.value.fix


def test_labels_and_predictions_round_trip():
    lab = Label(session_id="s1", item=4, annotator=SHARED, score=2, rationale="She said \"no\".", evidence=[1])
    assert lab.id == label_id("s1", 4, SHARED) == f"s1|4|{SHARED}"
    assert Label.from_dict(lab.to_dict()) == lab and lab.score_source == "expert"
    assert Label(session_id="s1", item=4, annotator=ADJUDICATED).score_source == "adjudicated"
    pred = Prediction(id="p1", session_id="s1", item=4, model_version="m", score=3, probs=[.1, .2, .4, .2, .1])
    assert Prediction.from_dict(pred.to_dict()) == pred


def test_a_client_anchored_label_must_carry_the_clients_score():
    lab = Label(session_id="s1", item=4, annotator=SHARED, score=2, score_source="client_self_report")
    check_score_source(lab, {4: 2})
    with pytest.raises(ValidationError, match="anchored to the client's self-reported score 5"):
        check_score_source(lab, {4: 5})
    with pytest.raises(ValidationError, match="no client self-report to anchor to"):
        check_score_source(lab, {})
    with pytest.raises(ValidationError, match="does not fit the coding slot"):
        check_score_source(Label(session_id="s1", item=4, annotator=SHARED, score_source="adjudicated"), {})
    with pytest.raises(ValidationError, match="Unknown score source"):
        check_score_source(Label(session_id="s1", item=4, annotator=SHARED, score_source="guess"), {})
