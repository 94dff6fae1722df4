"""Importers of real transcript formats: good files, every kind of bad input, real AnnoMI."""
from __future__ import annotations

import collections
import json
import time
from pathlib import Path

import pytest

from care_model.core.errors import ImportFormatError
from care_model.core.records import Label, Prediction, Session, Turn
from store.formats import FORMATS, ImportBatch, RatingRecord, parse_speaker_map, read_files

FIX = Path(__file__).parent / "fixtures" / "formats"
ANNOMI = Path(__file__).resolve().parents[2] / "shared" / "data" / "annomi" / "AnnoMI-simple.csv"
ITEMS = ",".join(f"item_{i}" for i in range(1, 13))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def error(paths, fmt, **kw) -> str:
    with pytest.raises(ImportFormatError) as info:
        read_files(paths, fmt, **kw)
    return str(info.value)


def line(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def session_dict(sid="s1", **over) -> dict:
    d = {"id": sid, "language": "en", "source": "jsonl", "client_id": "c1", "counselor_id": "t1",
         "turns": [{"index": 0, "speaker": "counselor", "text": "How are you?"},
                   {"index": 1, "speaker": "client", "text": "Tired."}]}
    d.update(over)
    return d


# ----- API ---------------------------------------------------------------------------------
def test_public_api_and_unknown_format(tmp_path):
    assert FORMATS == ("jsonl", "annomi", "esconv", "text", "ratings")
    msg = error([FIX / "session_en.txt"], "docx")
    assert "Unknown import format 'docx'" in msg and "jsonl, annomi, esconv, text, ratings" in msg


def test_missing_path_is_named(tmp_path):
    msg = error([tmp_path / "nope.txt"], "text")
    assert "nope.txt: no such file" in msg and "Fix:" in msg


def test_parse_speaker_map():
    assert parse_speaker_map("Dr. Lee=counselor, Patient = client") == {"Dr. Lee": "counselor", "Patient": "client"}
    assert parse_speaker_map("医生＝咨询师，病人=来访者") == {"医生": "counselor", "病人": "client"}
    assert parse_speaker_map("") == {}
    with pytest.raises(ImportFormatError, match="unknown role 'doctor'"):
        parse_speaker_map("A=doctor")
    with pytest.raises(ImportFormatError, match="has no '='"):
        parse_speaker_map("A:counselor")
    with pytest.raises(ImportFormatError, match="both counselor and client"):
        parse_speaker_map("A=counselor,a=client")


def test_bad_language_argument():
    msg = error([FIX / "session_en.txt"], "text", language="fr")
    assert "unknown language 'fr'" in msg and "en, zh" in msg


# ----- jsonl -------------------------------------------------------------------------------
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
                        mode="full", perspective="client", warnings=["truncated"], created_at="2025-01-03T00:00:00+00:00"),
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


# ----- encodings (all formats read text the same way) ---------------------------------------
def test_non_utf8_chinese_file_names_line_and_encoding(tmp_path):
    content = "咨询师：你好。\n来访者：我睡不着。\n".encode("gbk")
    path = write(tmp_path, "gbk.txt", content)
    msg = error([path], "text")
    assert msg.startswith(f"{path}:1: not UTF-8 text")
    assert "GBK/GB18030" in msg and "iconv -f GB18030 -t UTF-8" in msg


def test_non_utf8_latin1_csv_names_the_line(tmp_path):
    content = ("session_id,rater," + ITEMS + "\n" + "caf\xe9,client," + ",".join(["3"] * 12) + "\n").encode("latin-1")
    path = write(tmp_path, "r.csv", content)
    msg = error([path], "ratings")
    assert msg.startswith(f"{path}:2: not UTF-8 text: byte 0xE9 at column 4")
    assert "Windows-1252" in msg and "Fix: Convert the file to UTF-8" in msg


def test_utf16_and_bom(tmp_path):
    path = write(tmp_path, "u16.txt", "Counselor: hi\nClient: hello\n".encode("utf-16"))
    assert "UTF-16" in error([path], "text")
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + "Counselor: hi\nClient: hello\n".encode())
    assert read_files([path], "text").sessions[0].turns[0].text == "hi"


# ----- annomi ------------------------------------------------------------------------------
def test_annomi_small_fixture():
    batch = read_files([FIX / "annomi_small.csv"], "annomi")
    assert [s.id for s in batch.sessions] == ["annomi-7", "annomi-12"]
    s = batch.sessions[0]
    assert (s.counselor_id, s.language, s.source) == ("annomi-therapist", "en", "annomi")
    assert s.client_id.startswith("annomi-client-") and s.client_id != batch.sessions[1].client_id
    # ordered by utterance_id, not by row order; quoted commas, quotes and line breaks survive
    assert [t.speaker for t in s.turns] == ["counselor", "client", "counselor"]
    assert s.turns[0].text == 'You really need to quit. Smoking causes cancer, heart disease, "the works".'
    assert s.turns[2].text == "Then why haven't you quit?\nYou said last time you would."
    assert s.metadata["mi_quality"] == "low" and s.metadata["topic"] == "smoking cessation"
    assert s.metadata["video_title"] == 'Bad MI: "The Lecture"'
    assert s.metadata["turn_annotations"] == [
        {"utterance_id": 0, "timestamp": "00:00:01", "main_therapist_behaviour": "therapist_input", "client_talk_type": "n/a"},
        {"utterance_id": 1, "timestamp": "00:00:05", "main_therapist_behaviour": "n/a", "client_talk_type": "sustain"},
        {"utterance_id": 2, "timestamp": "00:00:09", "main_therapist_behaviour": "question", "client_talk_type": "n/a"}]
    assert batch.warnings == []


def _annomi_csv(rows, header="transcript_id,mi_quality,video_title,video_url,topic,utterance_id,interlocutor,"
                             "timestamp,utterance_text,main_therapist_behaviour,client_talk_type"):
    return header + "\n" + "\n".join(rows) + "\n"


def test_annomi_missing_column_lists_expected(tmp_path):
    path = write(tmp_path, "a.csv", "transcript_id,utterance_id,utterance_text\n0,0,Hello\n")
    msg = error([path], "annomi")
    assert msg.startswith(f"{path}:1: missing column interlocutor.")
    assert "The header has: transcript_id, utterance_id, utterance_text" in msg
    assert "Fix: The first line must name the columns transcript_id, utterance_id, interlocutor, utterance_text" in msg


def test_annomi_unknown_interlocutor_and_map(tmp_path):
    path = write(tmp_path, "a.csv", _annomi_csv([
        "0,high,t,u,x,0,interviewer,00:00:01,Hi there,question,n/a",
        "0,high,t,u,x,1,client,00:00:02,Hello,n/a,neutral",
        "0,high,t,u,x,2,interviewer,00:00:03,How are you?,question,n/a"]))
    msg = error([path], "annomi")
    assert "unknown interlocutor value: 'interviewer' (2 times, first at line 2)" in msg
    assert '--speaker-map "interviewer=counselor"' in msg
    batch = read_files([path], "annomi", speaker_map=parse_speaker_map("interviewer=counselor"))
    assert [t.speaker for t in batch.sessions[0].turns] == ["counselor", "client", "counselor"]
    assert batch.sessions[0].metadata["speaker_labels"] == {"interviewer": "counselor", "client": "client"}


def test_annomi_bad_rows(tmp_path):
    path = write(tmp_path, "a.csv", _annomi_csv(["0,high,t,u,x,zero,client,00:00:01,Hi,n/a,neutral"]))
    msg = error([path], "annomi")
    assert f"{path}:2: column utterance_id is 'zero', not a whole number" in msg

    path = write(tmp_path, "b.csv", _annomi_csv(["0,high,t,u,x,0,client,00:00:01,Hi,n/a,neutral",
                                                 "0,high,t,u,x,0,client,00:00:01,Hi,n/a,neutral"]))
    msg = error([path], "annomi")
    assert f"{path}:3: transcript 0 has utterance_id 0 twice" in msg and "AnnoMI-full.csv" in msg

    path = write(tmp_path, "c.csv", _annomi_csv(["0,high,t,u,x,0,client,00:00:01,Hi, there,n/a,neutral"]))
    msg = error([path], "annomi")
    assert f"{path}:2: the row has 12 cells but the header has 11" in msg and 'Wrap text' in msg

    path = write(tmp_path, "d.csv", _annomi_csv(["0,high,t,u,x,0,client,00:00:01,Hi,n/a,neutral",
                                                 "0,low,t,u,x,1,therapist,00:00:02,Hello,question,n/a"]))
    msg = error([path], "annomi")
    assert "rows disagree on mi_quality: 'high' (line 2) vs 'low' (line 3)" in msg

    path = write(tmp_path, "e.csv", _annomi_csv(['0,high,t,u,x,0,client,00:00:01,"Hi there,n/a,neutral']))
    assert f"{path}:2: the CSV cannot be read" in error([path], "annomi")

    path = write(tmp_path, "f.csv", _annomi_csv([]))
    assert "header but no utterances" in error([path], "annomi")


def test_annomi_empty_utterance_is_left_out_with_warning(tmp_path):
    path = write(tmp_path, "a.csv", _annomi_csv(["0,high,t,u,x,0,therapist,00:00:01,Hi,question,n/a",
                                                 "0,high,t,u,x,1,client,00:00:02,,n/a,neutral",
                                                 "0,high,t,u,x,2,client,00:00:03,Sorry. Hello.,n/a,neutral"]))
    batch = read_files([path], "annomi")
    s = batch.sessions[0]
    assert [t.text for t in s.turns] == ["Hi", "Sorry. Hello."]
    assert [a["utterance_id"] for a in s.metadata["turn_annotations"]] == [0, 2]
    assert s.metadata["empty_utterances"][0]["utterance_id"] == 1
    assert any("left out 1 utterance with no text (utterance_id 1)" in w for w in batch.warnings)


@pytest.fixture(scope="module")
def real_annomi():
    if not ANNOMI.is_file():
        pytest.skip(f"real AnnoMI data not present at {ANNOMI} (shared data is only on the project's machines)")
    start = time.perf_counter()
    batch = read_files([ANNOMI], "annomi")
    return batch, time.perf_counter() - start


def test_real_annomi_counts(real_annomi):
    batch, seconds = real_annomi
    assert len(batch.sessions) == 133
    assert sum(len(s.turns) for s in batch.sessions) == 9699
    speakers = collections.Counter(t.speaker for s in batch.sessions for t in s.turns)
    assert speakers == {"counselor": 4882, "client": 4817}
    assert all({t.speaker for t in s.turns} == {"counselor", "client"} for s in batch.sessions)
    quality = collections.Counter(s.metadata["mi_quality"] for s in batch.sessions)
    assert quality == {"high": 110, "low": 23}
    assert all(len(s.metadata["turn_annotations"]) == len(s.turns) for s in batch.sessions)
    assert all(s.id == f"annomi-{s.metadata['transcript_id']}" for s in batch.sessions)
    assert batch.warnings == []


def test_real_annomi_parts_of_one_video_share_a_client(real_annomi):
    batch, _ = real_annomi
    by_video = collections.defaultdict(set)
    for s in batch.sessions:
        by_video[s.metadata["video_url"]].add(s.client_id)
    assert all(len(ids) == 1 for ids in by_video.values())
    assert len({s.client_id for s in batch.sessions}) == len(by_video) < 133


def test_real_annomi_is_stable(real_annomi):
    batch, _ = real_annomi
    again = read_files([str(ANNOMI)], "annomi")
    assert [s.id for s in again.sessions] == [s.id for s in batch.sessions]
    assert [s.content_hash for s in again.sessions] == [s.content_hash for s in batch.sessions]
    assert [s.to_dict() for s in again.sessions] == [s.to_dict() for s in batch.sessions]
    first = batch.sessions[0]
    assert first.id == "annomi-0" and first.turns[1].text == "Sure."


# ----- esconv ------------------------------------------------------------------------------
def test_esconv_fixture():
    batch = read_files([FIX / "esconv_sample.json"], "esconv")
    assert len(batch.sessions) == 3 and batch.warnings == []
    s = batch.sessions[0]
    assert s.id.startswith("esconv-") and len(s.id) == len("esconv-") + 12
    assert s.client_id == "esconv-client-" + s.id[len("esconv-"):] and s.counselor_id == "esconv-supporter"
    assert (s.source, s.language) == ("esconv", "en")
    # seeker = client, supporter = counselor; consecutive same-speaker turns stay separate; text stripped
    assert [t.speaker for t in s.turns[:5]] == ["client", "counselor", "client", "client", "counselor"]
    assert s.turns[3].text == "Nobody tells me anything, and I keep checking my email at night."
    assert s.metadata["problem_type"] == "job crisis" and s.metadata["emotion_type"] == "anxiety"
    assert s.metadata["survey_score"]["seeker"]["final_emotion_intensity"] == "2"
    assert s.metadata["supporter_question2"] == "The seeker was open about what was going on."
    assert s.metadata["turn_annotations"][1] == {"strategy": "Question"}
    assert s.metadata["turn_annotations"][5] == {"feedback": "5"}
    assert len(s.metadata["turn_annotations"]) == len(s.turns) == 13
    # the third conversation has no seeker/supporter questions and no supporter survey: tolerated
    assert "seeker_question1" not in batch.sessions[2].metadata
    assert len({x.id for x in batch.sessions}) == 3


def test_esconv_ids_are_stable_across_reimport_and_order(tmp_path):
    first = read_files([FIX / "esconv_sample.json"], "esconv")
    data = json.loads((FIX / "esconv_sample.json").read_text(encoding="utf-8"))
    reordered = write(tmp_path, "rev.json", json.dumps(data[::-1], indent=1))
    second = read_files([reordered], "esconv")
    assert [s.id for s in second.sessions] == [s.id for s in first.sessions][::-1]
    assert [s.to_dict() for s in second.sessions] == [s.to_dict() for s in first.sessions][::-1]


def test_esconv_bad_json_and_shape(tmp_path):
    path = write(tmp_path, "bad.json", '[\n  {"dialog": [\n    {"speaker": "seeker" "content": "hi"}\n  ]}\n]')
    msg = error([path], "esconv")
    assert msg.startswith(f"{path}:3: not valid JSON at column 26: Expecting ',' delimiter")

    path = write(tmp_path, "nodialog.json", json.dumps([{"situation": "x", "dialog": []}, {"situation": "y"}]))
    msg = error([path], "esconv")
    assert f"{path}, conversation 2 (index 1): the conversation has no 'dialog'" in msg

    path = write(tmp_path, "empty.json", "[]")
    assert "no conversations" in error([path], "esconv")

    path = write(tmp_path, "nocontent.json", json.dumps([{"dialog": [{"speaker": "seeker", "annotation": {}}]}]))
    assert "conversation 1 (index 0), dialog turn 0: the turn has no text" in error([path], "esconv")


def test_esconv_unknown_speaker_and_map(tmp_path):
    conv = {"dialog": [{"speaker": "helper", "annotation": {}, "content": "Hi, what's up?"},
                       {"speaker": "seeker", "annotation": {}, "content": "I can't sleep."}]}
    path = write(tmp_path, "sp.json", json.dumps([conv]))
    msg = error([path], "esconv")
    assert "unknown speaker: 'helper' (1 time, first at conversation 1 (index 0), dialog turn 0)" in msg
    assert '--speaker-map "helper=counselor"' in msg
    assert read_files([path], "esconv", speaker_map={"helper": "counselor"}).sessions[0].turns[0].speaker == "counselor"


def test_esconv_duplicates(tmp_path):
    data = json.loads((FIX / "esconv_sample.json").read_text(encoding="utf-8"))
    path = write(tmp_path, "twice.json", json.dumps([data[0], data[1], data[0]]))
    batch = read_files([path], "esconv")
    assert len(batch.sessions) == 2 and any("repeats" in w for w in batch.warnings)

    changed = dict(data[0], situation="A different situation.")
    path = write(tmp_path, "clash.json", json.dumps([data[0], changed]))
    msg = error([path], "esconv")
    assert f"{path}, conversation 2 (index 1): session 'esconv-" in msg
    assert f"already read at {path}, conversation 1 (index 0) with different content (they differ in metadata)" in msg


# ----- text --------------------------------------------------------------------------------
def test_text_english_with_headers_and_multiline_turns():
    batch = read_files([FIX / "session_en.txt"], "text")
    s = batch.sessions[0]
    assert (s.id, s.language, s.source, s.client_id, s.counselor_id) == ("text-session_en", "en", "text", "c-12", "t-03")
    assert s.metadata["session_number"] == 2
    assert s.metadata["header_comments"] == ["recorded at the university counseling centre"]
    assert [t.speaker for t in s.turns] == ["counselor", "client", "counselor", "client", "counselor", "client"]
    # "... on Thursday: I just sat" is text, not a label; the indented "Note:" line continues the turn
    assert s.turns[1].text == ("Yes. It got worse this week.\n"
                               "I stayed late every day, and on Thursday: I just sat in the car and couldn't go in.")
    assert s.turns[3].text == "I don't know. I froze.\nNote: the client was quiet for about a minute here."
    assert batch.warnings == []


def test_text_chinese_round_trip(tmp_path):
    batch = read_files([FIX / "session_zh.txt"], "text")
    s = batch.sessions[0]
    assert (s.id, s.language, s.client_id, s.counselor_id) == ("text-session_zh", "zh", "c-201", "t-07")
    assert s.metadata["session_number"] == 3
    assert [t.speaker for t in s.turns] == ["counselor", "client"] * 3
    assert s.turns[1].text == "还行吧，就是睡得不太好。\n晚上总是想工作的事情，一直到两三点。"
    assert s.turns[2].text == "听起来你很疲惫。能说说是哪些工作上的事吗？"  # half-width colon
    assert s.turns[4].text == "你刚才说“什么都做不好”，这句话对你来说意味着什么？"
    # write it back as text and as jsonl: both read back to the same session
    labels = {"counselor": "咨询师", "client": "来访者"}
    back = "# 来访者: c-201\n# 咨询师: t-07\n# 会谈: 3\n" + "\n".join(
        f"{labels[t.speaker]}：{t.text}" for t in s.turns) + "\n"
    again = read_files([write(tmp_path, "session_zh.txt", back)], "text").sessions[0]
    assert again == s and again.content_hash == s.content_hash
    exported = read_files([write(tmp_path, "zh.jsonl", line(s.to_dict()))], "jsonl").sessions[0]
    assert exported == s


def test_text_unknown_labels_hint_and_map():
    path = FIX / "session_unknown_labels.txt"
    msg = error([path], "text")
    assert msg.startswith(f"{path}: unknown speaker labels: 'Dr. Lee' (3 times, first at line 1); "
                          "'Patient' (2 times, first at line 2); 'A' (1 time, first at line 5).")
    assert 'Fix: Say who is who with --speaker-map "Dr. Lee=counselor,Patient=client,A=client"' in msg
    hint = msg.split('--speaker-map "')[1].split('"')[0]
    batch = read_files([path], "text", speaker_map=parse_speaker_map(hint))
    s = batch.sessions[0]
    assert [t.speaker for t in s.turns] == ["counselor", "client", "counselor", "client", "client", "counselor"]
    assert s.metadata["speaker_labels"] == {"Dr. Lee": "counselor", "Patient": "client", "A": "client"}
    assert any("client_id left empty" in w for w in batch.warnings)


def test_text_single_letters_are_not_guessed(tmp_path):
    path = write(tmp_path, "tc.txt", "T: How was your week?\nC: Long.\n")
    msg = error([path], "text")
    assert "'T' (1 time, first at line 1); 'C' (1 time, first at line 2)" in msg
    s = read_files([path], "text", speaker_map=parse_speaker_map("T=counselor,C=client")).sessions[0]
    assert [(t.speaker, t.text) for t in s.turns] == [("counselor", "How was your week?"), ("client", "Long.")]


def test_text_speaker_map_overrides_and_unused_entries_warn(tmp_path):
    path = write(tmp_path, "x.txt", "Client: I am the counselor here, the file is mislabelled.\nCounselor: ok\n")
    batch = read_files([path], "text", speaker_map={"Client": "counselor", "Counselor": "client", "Bob": "client"})
    assert [t.speaker for t in batch.sessions[0].turns] == ["counselor", "client"]
    assert any("no speaker is labelled 'Bob'" in w for w in batch.warnings)


def test_text_lines_that_only_look_like_labels_continue_the_turn(tmp_path):
    path = write(tmp_path, "u.txt", "Counselor: Here is the leaflet:\nhttps://example.org/sleep\n"
                                    "He said: call me.\nClient: Thanks.\n")
    s = read_files([path], "text").sessions[0]
    assert s.turns[0].text == "Here is the leaflet:\nhttps://example.org/sleep\nHe said: call me."
    assert len(s.turns) == 2


def test_text_bad_inputs(tmp_path):
    path = write(tmp_path, "a.txt", "Hello there, nice to meet you.\nClient: Hi.\n")
    msg = error([path], "text")
    assert msg.startswith(f"{path}:1: text before the first speaker label")

    path = write(tmp_path, "b.txt", "Counselor: How are you?\nClient:\nCounselor: Take your time.\n")
    msg = error([path], "text")
    assert msg.startswith(f"{path}:2: the 'Client' turn has no text.") and "[silence]" in msg

    path = write(tmp_path, "c.txt", "# client: c-1\n\n")
    assert "no transcript lines, only headers" in error([path], "text")

    path = write(tmp_path, "d.txt", "# language: fr\nClient: Bonjour\n")
    assert f"{path}:1: header language 'fr' is unknown" in error([path], "text")

    assert "the file is empty" in error([write(tmp_path, "e.txt", "")], "text")


def test_text_language_override_and_detection(tmp_path):
    path = write(tmp_path, "mixed.txt", "A: 你好，最近怎么样？\nB: 不太好，工作压力很大。\n")
    smap = {"A": "counselor", "B": "client"}
    assert read_files([path], "text", speaker_map=smap).sessions[0].language == "zh"  # from the text
    assert read_files([path], "text", speaker_map=smap, language="en").sessions[0].language == "en"


def test_text_duplicate_stems_in_one_call(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write(tmp_path / "x", "s.txt", "Counselor: hi\nClient: hello\n")
    b = write(tmp_path / "y", "s.txt", "Counselor: hi\nClient: good morning\n")
    msg = error([a, b], "text")
    assert f"{b}: session 'text-s' was already read at {a} with different content" in msg
    assert "rename one of the files" in msg


def test_text_folder_expands_to_its_txt_files(tmp_path):
    write(tmp_path, "b.txt", "Counselor: hi\nClient: hello\n")
    write(tmp_path, "a.txt", "咨询师：你好\n来访者：你好\n")
    write(tmp_path, "notes.md", "Counselor: not a transcript\n")
    batch = read_files([tmp_path], "text")
    assert [s.id for s in batch.sessions] == ["text-a", "text-b"]
    assert batch.files == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    assert [s.language for s in batch.sessions] == ["zh", "en"]
    (tmp_path / "empty").mkdir()
    assert "the folder has no .txt files" in error([tmp_path / "empty"], "text")


# ----- ratings -----------------------------------------------------------------------------
def test_ratings_good():
    batch = read_files([FIX / "ratings_good.csv"], "ratings")
    assert batch.sessions == [] and len(batch.ratings) == 3
    r = batch.ratings[0]
    assert isinstance(r, RatingRecord)
    assert (r.session_id, r.rater) == ("text-session_en", "client")
    assert r.ratings == {1: 4, 2: 4, 3: 5, 4: 3, 5: 5, 6: 4, 7: 4, 8: 3, 9: 5, 10: 4, 11: 3, 12: 4}
    assert r.where == f"{FIX / 'ratings_good.csv'}:2"
    assert batch.ratings[1].rater == "counselor"


def test_ratings_out_of_range_names_line_column_and_allowed_values(tmp_path):
    path = write(tmp_path, "r.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,3,3,6,3,3,3,3,3\n")
    msg = error([path], "ratings")
    assert msg.startswith(f"{path}:2, column item_7 (column 9): score '6' is not allowed.")
    assert "Fix: Use a whole number from 1 to 5 (1 Seldom, 2 Sometimes, 3 Fairly often, 4 Very often, 5 Always)" in msg
    path = write(tmp_path, "r2.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,3,3,3.5,3,3,3,3,3\n")
    assert "column item_7 (column 9): score '3.5' is not allowed" in error([path], "ratings")
    path = write(tmp_path, "r3.csv", f"session_id,rater,{ITEMS}\ns1,client,3,3,3,3,,3,3,3,3,3,3,3\n")
    assert f"{path}:2, column item_5 (column 7): no score for item 5" in error([path], "ratings")


def test_ratings_missing_column_lists_expected(tmp_path):
    header = "session_id,rater," + ",".join(f"item_{i}" for i in range(1, 12))
    path = write(tmp_path, "r.csv", header + "\ns1,client," + ",".join(["3"] * 11) + "\n")
    msg = error([path], "ratings")
    assert msg.startswith(f"{path}:1: missing column item_12.")
    assert f"Fix: The first line must name the columns session_id, rater, {ITEMS.replace(',', ', ')}" in msg


def test_ratings_other_bad_inputs_and_duplicates(tmp_path):
    path = write(tmp_path, "a.csv", f"session_id,rater,{ITEMS}\ns1,observer," + ",".join(["3"] * 12) + "\n")
    msg = error([path], "ratings")
    assert f"{path}:2: column rater is 'observer'" in msg and "client" in msg and "counselor" in msg

    row = "s1,client," + ",".join(["3"] * 12)
    batch = read_files([write(tmp_path, "b.csv", f"session_id,rater,{ITEMS}\n{row}\n{row}\n")], "ratings")
    assert len(batch.ratings) == 1 and any("repeats" in w for w in batch.warnings)

    other = "s1,client," + ",".join(["4"] * 12)
    path = write(tmp_path, "c.csv", f"session_id,rater,{ITEMS}\n{row}\n{other}\n")
    msg = error([path], "ratings")
    assert f"{path}:3: ratings 's1 by client' was already read at {path}:2 with different content (they differ in item_1, item_10" in msg

    assert "header but no rows" in error([write(tmp_path, "d.csv", f"session_id,rater,{ITEMS}\n")], "ratings")
    assert "the file is empty" in error([write(tmp_path, "e.csv", "")], "ratings")


def test_ratings_excel_variants(tmp_path):
    header = "Session_ID;Rater;" + ";".join(f"Item {i}" for i in range(1, 13)) + ";Notes"
    path = write(tmp_path, "x.csv", header + "\ns1;Client;" + ";".join(["2"] * 12) + ";late\n")
    batch = read_files([path], "ratings")
    assert batch.ratings[0].ratings == {i: 2 for i in range(1, 13)} and batch.ratings[0].rater == "client"
    assert any("ignored column 'Notes'" in w for w in batch.warnings)


def test_all_or_nothing_second_file_bad(tmp_path):
    good = write(tmp_path, "good.txt", "Counselor: hi\nClient: hello\n")
    bad = write(tmp_path, "bad.txt", "Counselor: hi\nPatient: hello\n")
    msg = error([good, bad], "text")
    assert msg.startswith(f"{bad}: unknown speaker label: 'Patient'")
