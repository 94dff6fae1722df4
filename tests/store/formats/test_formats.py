"""store.formats (read_files): the format list, missing paths, all or nothing across files."""
from __future__ import annotations


from store.formats import FORMATS
from formats_testing import FIX, error, write


def test_public_api_and_unknown_format(tmp_path):
    assert FORMATS == ("jsonl", "annomi", "esconv", "text", "ratings")
    msg = error([FIX / "session_en.txt"], "docx")
    assert "Unknown import format 'docx'" in msg and "jsonl, annomi, esconv, text, ratings" in msg


def test_missing_path_is_named(tmp_path):
    msg = error([tmp_path / "nope.txt"], "text")
    assert "nope.txt: no such file" in msg and "Fix:" in msg



def test_all_or_nothing_second_file_bad(tmp_path):
    good = write(tmp_path, "good.txt", "Counselor: hi\nClient: hello\n")
    bad = write(tmp_path, "bad.txt", "Counselor: hi\nPatient: hello\n")
    msg = error([good, bad], "text")
    assert msg.startswith(f"{bad}: unknown speaker label: 'Patient'")
