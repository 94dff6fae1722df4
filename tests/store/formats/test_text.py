"""store.formats.text: plain transcripts in English and Chinese, speaker labels, folders."""
from __future__ import annotations


from store.formats import parse_speaker_map, read_files
from formats_testing import FIX, error, line, write


def test_text_english_with_headers_and_multiline_turns():
    batch = read_files([FIX / "session_en.txt"], "text")
    s = batch.sessions[0]
    assert (s.id, s.language, s.source, s.client_id, s.counselor_id) == ("text-session_en", "en", "text", "c-12",
                                                                         "t-03")
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
