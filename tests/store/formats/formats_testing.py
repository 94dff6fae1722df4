"""Helpers shared by the importer tests of tests/store/formats/ (one test file per format module)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from care_model.core.errors import ImportFormatError
from store.formats import read_files

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures" / "formats"
ANNOMI = ROOT.parent / "shared" / "data" / "annomi" / "AnnoMI-simple.csv"
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
