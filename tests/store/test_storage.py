"""The journaled TinyDB storage: appends, snapshots, torn tails, multi-file transactions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from care_model.core.errors import StoreFormatError
from store.journal import JournaledStorage
from store.storage import TXN_FILE, FileSet

ROOT = Path(__file__).resolve().parents[2]


def fresh(root) -> FileSet:
    fs = FileSet(root)
    fs.recover()
    return fs


def test_single_write_appends_to_the_journal_not_the_snapshot(tmp_path):
    fs = fresh(tmp_path)
    db = fs.db("a.json")
    db.table("t").insert({"x": 1})  # first write: snapshot (the file did not exist)
    snap = (tmp_path / "a.json").read_bytes()
    db.table("t").insert({"x": 2})
    db.table("t").update({"x": 20}, doc_ids=[2])
    assert (tmp_path / "a.json").read_bytes() == snap, "a small change must not rewrite the file"
    lines = (tmp_path / "a.json.log").read_bytes().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["changes"] == [["t", "2", {"x": 20}]]
    again = fresh(tmp_path).db("a.json")
    assert sorted(d["x"] for d in again.table("t").all()) == [1, 20]


def test_chinese_text_is_stored_readable(tmp_path):
    fs = fresh(tmp_path)
    fs.db("zh.json").table("t").insert({"text": "来访者：我最近睡不好。"})
    fs.db("zh.json").table("t").insert({"text": "咨询师：能多说一点吗？"})
    raw = (tmp_path / "zh.json").read_bytes() + (tmp_path / "zh.json.log").read_bytes()
    assert "来访者：我最近睡不好。".encode("utf-8") in raw
    assert b"\\u" not in raw


def test_torn_journal_tail_is_dropped_and_earlier_lines_kept(tmp_path):
    fs = fresh(tmp_path)
    t = fs.db("a.json").table("t")
    t.insert({"x": 1})
    t.insert({"x": 2})
    with open(tmp_path / "a.json.log", "ab") as fh:
        fh.write(b'{"seq": 99, "changes": [["t", "3", {"x"')  # a crash mid-append
    again = fresh(tmp_path).db("a.json").table("t")
    assert sorted(d["x"] for d in again.all()) == [1, 2]
    assert (tmp_path / "a.json.log").read_bytes().endswith(b"\n")
    again.insert({"x": 3})
    assert sorted(d["x"] for d in fresh(tmp_path).db("a.json").table("t").all()) == [1, 2, 3]


def test_snapshot_compacts_journal_and_ignores_stale_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(JournaledStorage, "MAX_LOG_LINES", 3)
    fs = fresh(tmp_path)
    t = fs.db("a.json").table("t")
    for i in range(9):  # snapshot, 3 appends, snapshot, 3 appends, snapshot
        t.insert({"x": i})
    assert (tmp_path / "a.json.log").read_bytes() == b"", "the snapshot emptied the journal"
    snap = json.loads((tmp_path / "a.json").read_text())
    assert snap["_journal"]["seq"] == 6
    # A crash between a snapshot and the journal's truncation leaves lines the snapshot already
    # holds; replaying them would undo later changes, so they must be ignored.
    stale = "".join(json.dumps({"seq": s, "changes": [["t", "1", {"x": "stale"}]]}) + "\n" for s in (4, 5, 6))
    (tmp_path / "a.json.log").write_text(stale)
    again = fresh(tmp_path).db("a.json")
    assert sorted(d["x"] for d in again.table("t").all()) == list(range(9))
    assert "_journal" not in again.tables()
    again.table("t").insert({"x": 9})
    assert sorted(d["x"] for d in fresh(tmp_path).db("a.json").table("t").all()) == list(range(10))


def test_transaction_writes_all_files_or_none(tmp_path):
    fs = fresh(tmp_path)
    fs.db("a.json").table("t").insert({"x": 1})
    with pytest.raises(RuntimeError):
        with fs.transaction():
            fs.db("a.json").table("t").insert({"x": 2})
            fs.db("b/b.json").table("t").insert({"y": 1})
            raise RuntimeError("boom")
    assert [d["x"] for d in fs.db("a.json").table("t").all()] == [1], "memory rolled back"
    assert not (tmp_path / "b" / "b.json").exists()
    again = fresh(tmp_path)
    assert [d["x"] for d in again.db("a.json").table("t").all()] == [1]
    with fs.transaction():
        fs.db("a.json").table("t").insert({"x": 2})
        fs.db("b/b.json").table("t").insert({"y": 1})
    again = fresh(tmp_path)
    assert len(again.db("a.json").table("t")) == 2 and len(again.db("b/b.json").table("t")) == 1


def _crash_child(root: Path, die_at_replace: int) -> int:
    """Run a two-file transaction in a child that dies (os._exit) at the n-th os.replace."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from store.storage import FileSet
        fs = FileSet({str(root)!r}); fs.recover()
        real, calls = os.replace, [0]
        def dying(a, b):
            calls[0] += 1
            if calls[0] == {die_at_replace}:
                os._exit(9)
            real(a, b)
        os.replace = dying
        with fs.transaction():
            fs.db("a.json").table("t").insert({{"x": 2}})
            fs.db("b/b.json").table("t").insert({{"y": 1}})
        print("committed")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode


def test_crash_after_commit_point_rolls_forward(tmp_path):
    fs = fresh(tmp_path)
    fs.db("a.json").table("t").insert({"x": 1})
    del fs
    assert _crash_child(tmp_path, die_at_replace=2) == 9  # first rename done, second not
    assert (tmp_path / TXN_FILE).exists()
    again = fresh(tmp_path)
    assert not (tmp_path / TXN_FILE).exists()
    assert sorted(d["x"] for d in again.db("a.json").table("t").all()) == [1, 2]
    assert [d["y"] for d in again.db("b/b.json").table("t").all()] == [1]


def test_crash_before_commit_point_changes_nothing(tmp_path):
    fs = fresh(tmp_path)
    fs.db("a.json").table("t").insert({"x": 1})
    del fs
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        import store.storage as st
        fs = st.FileSet({str(tmp_path)!r}); fs.recover()
        real = st.write_durable
        def dying(path, payload):
            if str(path).endswith("txn.json"):
                os._exit(9)
            real(path, payload)
        st.write_durable = dying
        with fs.transaction():
            fs.db("a.json").table("t").insert({{"x": 2}})
            fs.db("b/b.json").table("t").insert({{"y": 1}})
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert list(tmp_path.rglob("*.tmp-care")), "the staged files were left behind by the crash"
    again = fresh(tmp_path)
    assert not list(tmp_path.rglob("*.tmp-care"))
    assert [d["x"] for d in again.db("a.json").table("t").all()] == [1]
    assert not (tmp_path / "b" / "b.json").exists()


def test_corrupt_snapshot_gives_a_clear_error(tmp_path):
    (tmp_path / "a.json").write_text('{"t": {"1": {"x": 1}')
    with pytest.raises(StoreFormatError, match="not valid JSON.*Fix: Restore it"):
        fresh(tmp_path).db("a.json")
    assert os.path.getsize(tmp_path / "a.json") > 0, "the broken file is left for inspection"
