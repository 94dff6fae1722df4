"""store.formats.common: speaker maps, the language argument, and text decoding every format shares."""
from __future__ import annotations

import pytest

from care_model.core.errors import ImportFormatError
from store.formats import parse_speaker_map, read_files
from formats_testing import FIX, ITEMS, error, write


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
