"""store.formats.annomi: the small fixture, bad CSVs, and the real AnnoMI corpus."""
from __future__ import annotations

import collections
import time

import pytest

from store.formats import parse_speaker_map, read_files
from formats_testing import ANNOMI, FIX, error, write


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
        {"utterance_id": 0, "timestamp": "00:00:01", "main_therapist_behaviour": "therapist_input",
         "client_talk_type": "n/a"},
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
