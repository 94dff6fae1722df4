"""store.formats.jsonl: round trips, every kind of bad line, duplicates, unknown fields."""
from __future__ import annotations

import json


from care_model.core.records import Label, Prediction, Session, Turn
from store.formats import ImportBatch, read_files
from formats_testing import error, line, session_dict, write


def _records():
    session = Session(
        id="zh-0042", language="zh", source="care", client_id="client-17", counselor_id="t-3",
        turns=[Turn(0, "counselor", "你好，最近怎么样？"), Turn(1, "client", "还行，就是有点累。\n晚上睡不好。"),
               Turn(2, "counselor", "睡不好的时候你会做什么？")],
        ratings={"client": {i: (i % 5) + 1 for i in range(1, 13)}, "counselor": {i: 3 for i in range(1, 13)}},
        metadata={"minutes": 50, "tags": ["intake"], "note": "第一次会谈"}, created_at="2025-01-02T03:04:05+00:00")
    preds = [Prediction(id="p-1", session_id="zh-0042", item=3, model_version="care-v2", score=4, expected_score=3.71,
                        probs=[0.01, 0.04, 0.25, 0.6, 0.1], rationale="来访者说“还行”。", evidence=[1],
                        unsupported_quotes=["我很好"], raw_output="4\n理由……", parse_status="ok", prompt_hash="abc123",
                        mode="full", perspective="client", warnings=["truncated"],
                        created_at="2025-01-03T00:00:00+00:00"),
             Prediction(id="p-2", session_id="zh-0042", item=7, model_version="care-v2", score=None,
                        parse_status="failed", parse_error="no score", raw_output="???")]
    labels = [Label(session_id="zh-0042", item=3, annotator="@shared", score=3, rationale="改为3分", evidence=[1, 2],
                    status="submitted", prediction_id="p-1", change_reasons=["wrong_score"], comment="见第2轮",
                    version=4, created_at="2025-01-04T00:00:00+00:00", updated_at="2025-01-05T00:00:00+00:00",
                    updated_by="dr-wang"),
              Label(session_id="zh-0042", item=7, annotator="@adjudicated", score=2, status="draft",
                    adjudicated_from=["zh-0042|7|a", "zh-0042|7|b"], version=1)]
    return session, preds, labels


def test_jsonl_round_trip_with_predictions_and_labels(tmp_path):
    session, preds, labels = _records()
    plain = Session(id="en-1", turns=[Turn(0, "client", "Hi."), Turn(1, "counselor", "Hello.")])
    text = line({**session.to_dict(), "predictions": [p.to_dict() for p in preds],
                 "labels": [lab.to_dict() for lab in labels]}) + "\n\n" + line(plain.to_dict()) + "\n"
    batch = read_files([write(tmp_path, "export.jsonl", text)], "jsonl")
    assert isinstance(batch, ImportBatch) and batch.format == "jsonl"
    assert batch.files == [str(tmp_path / "export.jsonl")]
    assert batch.sessions == [session, plain]
    assert batch.predictions == preds
    assert batch.labels == labels
    assert batch.warnings == []
    assert batch.sessions[0].content_hash == session.content_hash
    # and it writes back byte for byte
    again = line({**batch.sessions[0].to_dict(), "predictions": [p.to_dict() for p in batch.predictions],
                  "labels": [lab.to_dict() for lab in batch.labels]})
    assert again == text.split("\n")[0]


def test_jsonl_malformed_line_names_line_and_column(tmp_path):
    good = line(session_dict())
    path = write(tmp_path, "bad.jsonl", good + "\n" + '{"id": "s2", "turns": [}\n')
    msg = error([path], "jsonl")
    assert msg.startswith(f"{path}:2: not valid JSON at column 24")
    assert "Fix: Each line must be one complete JSON object" in msg


def test_jsonl_pretty_printed_array_gets_a_hint(tmp_path):
    path = write(tmp_path, "arr.jsonl", json.dumps([session_dict()], indent=2))
    msg = error([path], "jsonl")
    assert f"{path}:1:" in msg and "--format esconv" in msg


def test_jsonl_missing_field_and_wrong_types(tmp_path):
    no_turns = {k: v for k, v in session_dict().items() if k != "turns"}
    path = write(tmp_path, "a.jsonl", line(session_dict()) + "\n" + line(no_turns))
    msg = error([path], "jsonl")
    assert f"{path}:2: the session has no 'turns' field" in msg and 'Add "turns"' in msg

    path = write(tmp_path, "b.jsonl", line(session_dict(id=42)))
    msg = error([path], "jsonl")
    assert f"{path}:1: field 'id' is int 42, expected a string" in msg and "\"id\": \"42\"" in msg

    path = write(tmp_path, "c.jsonl", line(session_dict(turns="Counselor: hi")))
    assert "'turns' is str, expected a list" in error([path], "jsonl")

    bad_turn = session_dict()
    bad_turn["turns"][1] = {"index": 1, "speaker": "client"}
    path = write(tmp_path, "d.jsonl", line(bad_turn))
    assert f"{path}:1, turn 1: the turn has no 'text'" in error([path], "jsonl")


def test_jsonl_session_validation_is_wrapped_with_the_line(tmp_path):
    d = session_dict()
    d["turns"][1]["text"] = "   "
    path = write(tmp_path, "e.jsonl", line(session_dict("ok")) + "\n" + line(d))
    msg = error([path], "jsonl")
    assert msg.startswith(f"{path}:2: Session 's1', turn 1 has no text.") and "Fix:" in msg

    d = session_dict(ratings={"client": {str(i): 3 for i in range(1, 13)} | {"5": 6}})
    msg = error([write(tmp_path, "f.jsonl", line(d))], "jsonl")
    assert "ratings of 'client'" in msg and "Score 6 for item 5" in msg and "1 to 5" in msg

    d = session_dict(ratings={"client": {str(i): 3 for i in range(1, 11)}})
    assert "Missing items [11, 12]" in error([write(tmp_path, "g.jsonl", line(d))], "jsonl")

    d = session_dict(form="wai-xx")
    assert "Unknown form 'wai-xx'" in error([write(tmp_path, "h.jsonl", line(d))], "jsonl")


def test_jsonl_bad_prediction_and_label(tmp_path):
    session, preds, labels = _records()
    p = preds[0].to_dict() | {"score": 9}
    path = write(tmp_path, "p.jsonl", line(session.to_dict() | {"predictions": [p]}))
    msg = error([path], "jsonl")
    assert f"{path}:1, prediction 0: Score 9 for item 3" in msg

    p = preds[0].to_dict() | {"evidence": [7]}
    msg = error([write(tmp_path, "p2.jsonl", line(session.to_dict() | {"predictions": [p]}))], "jsonl")
    assert "evidence turn [7] outside the session's turns 0-2" in msg

    p = {k: v for k, v in preds[0].to_dict().items() if k != "model_version"}
    msg = error([write(tmp_path, "p3.jsonl", line(session.to_dict() | {"predictions": [p]}))], "jsonl")
    assert "the prediction has no 'model_version' field" in msg

    lab = labels[0].to_dict() | {"status": "final"}
    msg = error([write(tmp_path, "l.jsonl", line(session.to_dict() | {"labels": [lab]}))], "jsonl")
    assert "label 0: unknown status 'final'" in msg and "draft, submitted, discarded" in msg

    lab = labels[0].to_dict() | {"session_id": "other"}
    msg = error([write(tmp_path, "l2.jsonl", line(session.to_dict() | {"labels": [lab]}))], "jsonl")
    assert "the label is for session 'other', but the line holds 'zh-0042'" in msg

    lab = labels[0].to_dict() | {"id": "zh-0042|4|@shared"}
    msg = error([write(tmp_path, "l3.jsonl", line(session.to_dict() | {"labels": [lab]}))], "jsonl")
    assert "'id' is 'zh-0042|4|@shared' but session, item and annotator give 'zh-0042|3|@shared'" in msg


def test_jsonl_missing_language_is_detected_with_a_warning(tmp_path):
    d = {"id": "s9", "turns": [{"speaker": "counselor", "text": "你好，今天想聊什么？"},
                               {"speaker": "client", "text": "我最近压力很大。"}]}
    batch = read_files([write(tmp_path, "zh.jsonl", line(d))], "jsonl")
    assert batch.sessions[0].language == "zh"
    assert batch.sessions[0].source == "jsonl" and [t.index for t in batch.sessions[0].turns] == [0, 1]
    assert any("states no language; detected 'zh'" in w for w in batch.warnings)


def test_jsonl_unknown_speaker_and_map(tmp_path):
    d = session_dict()
    d["turns"][0]["speaker"] = "therapist"
    path = write(tmp_path, "sp.jsonl", line(d))
    msg = error([path], "jsonl")
    assert "unknown speaker label: 'therapist' (1 time, first at line 1)" in msg
    assert '--speaker-map "therapist=counselor"' in msg
    batch = read_files([path], "jsonl", speaker_map={"therapist": "counselor"})
    assert batch.sessions[0].turns[0].speaker == "counselor"


def test_jsonl_duplicates(tmp_path):
    a = line(session_dict())
    batch = read_files([write(tmp_path, "same.jsonl", a + "\n" + a)], "jsonl")
    assert len(batch.sessions) == 1
    assert any("session 's1' repeats" in w and "same.jsonl:1" in w for w in batch.warnings)

    other = session_dict()
    other["turns"][1]["text"] = "Better today."
    path = write(tmp_path, "dup.jsonl", a + "\n" + line(other))
    msg = error([path], "jsonl")
    assert f"{path}:2: session 's1' was already read at {path}:1 with different content (they differ in turns)" in msg
    assert "Fix: Ids must be unique" in msg

    # across two files of one call too
    path2 = write(tmp_path, "dup2.jsonl", line(other))
    assert f"{path2}:1: session 's1' was already read at {tmp_path / 'same.jsonl'}:1" in \
        error([tmp_path / "same.jsonl", path2], "jsonl")


def test_jsonl_empty_file_and_whitespace_only(tmp_path):
    for name, content in (("empty.jsonl", ""), ("blank.jsonl", "\n  \n")):
        path = write(tmp_path, name, content)
        msg = error([path], "jsonl")
        assert msg.startswith(f"{path}: the file is empty.") and "Fix:" in msg


def test_unknown_fields_are_reported_not_silently_dropped(tmp_path):
    d = session_dict(notes="x")
    batch = read_files([write(tmp_path, "x.jsonl", line(d))], "jsonl")
    assert any("ignored unknown field 'notes'" in w for w in batch.warnings)
