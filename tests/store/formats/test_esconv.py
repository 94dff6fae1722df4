"""store.formats.esconv: the fixture, stable ids, bad JSON, speakers, duplicates."""
from __future__ import annotations

import json


from store.formats import read_files
from formats_testing import FIX, error, write


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
