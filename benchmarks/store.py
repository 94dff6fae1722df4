"""Store speed at the paper's scale, against a SQLite baseline measured in the same run.

Builds a store of 800 sessions (80 turns, about 30 KB of transcript each, 12 predictions each)
and 10,000 labels and the same data in SQLite (WAL, synchronous=FULL: durable on commit), then
times 500 label saves (durable when the call returns: fsync) and 500 "open a session" reads (the
session with its predictions and labels) on each. Both run the same operations in 10 rounds;
the order of the two systems alternates every round, so neither always runs first or after the
other's writes, and both see the same machine load. The machine's load average is recorded
before and after.

    python -m benchmarks.store --json                 # the full benchmark (about 1-2 minutes)
    python -m benchmarks.store --json --sessions 80 --labels 1000 --ops 100   # a quick smoke run

Target (issue 12): label save p95 within 3x of SQLite's in the same run (``save_vs_sqlite_p95 <= 3``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from care_model.core.records import Label, SHARED, now_iso

from .synthetic import build_store

ROUNDS = 10


def pct(values, q) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class CareStore:
    """The project's store: saves through ``Repository.save_label``, opens through ``open_session``."""

    name = "care"

    def __init__(self, root: Path):
        from store import Repository

        t0 = time.perf_counter()
        self.repo = Repository(root / "care-store")  # a cold open of the full store
        self.open_store_s = time.perf_counter() - t0

    def save(self, k: int, sid: str, item: int, score: int) -> float:
        current = self.repo.get_label(sid, item, SHARED)
        label = Label(session_id=sid, item=item, annotator=SHARED, score=score,
                      rationale=f"edit {k}: " + current.rationale[:600], evidence=current.evidence,
                      status="draft", prediction_id=current.prediction_id)
        t = time.perf_counter()
        self.repo.save_label(label, actor="bench-expert", expected_version=current.version)
        return (time.perf_counter() - t) * 1000

    def open(self, sid: str) -> float:
        t = time.perf_counter()
        view = self.repo.open_session(sid)
        dt = (time.perf_counter() - t) * 1000
        assert view.session.turns and len(view.predictions) == 12
        return dt

    def close(self) -> None:
        self.repo.close()


class SqliteStore:
    """The same data model in SQLite (WAL, synchronous=FULL): JSON documents keyed and indexed by session."""

    name = "sqlite"

    def __init__(self, root: Path):
        from store import Repository

        repo = Repository(root / "care-store")  # the exact data, read back from the store built above
        con = sqlite3.connect(root / "baseline.sqlite", isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript("""
            CREATE TABLE sessions(id TEXT PRIMARY KEY, doc TEXT);
            CREATE TABLE predictions(id TEXT PRIMARY KEY, session_id TEXT, doc TEXT);
            CREATE INDEX p_s ON predictions(session_id);
            CREATE TABLE labels(id TEXT PRIMARY KEY, session_id TEXT, version INTEGER, doc TEXT);
            CREATE INDEX l_s ON labels(session_id);
            CREATE TABLE audit(seq INTEGER PRIMARY KEY, entity_id TEXT, doc TEXT);
        """)
        con.execute("BEGIN")
        for sid in repo.session_ids():
            session = json.dumps(repo.get_session(sid).to_dict(), ensure_ascii=False)
            con.execute("INSERT INTO sessions VALUES(?,?)", (sid, session))
            for p in repo.predictions(sid):
                con.execute("INSERT INTO predictions VALUES(?,?,?)",
                            (p.id, sid, json.dumps(p.to_dict(), ensure_ascii=False)))
            for lab in repo.labels(sid):
                con.execute("INSERT INTO labels VALUES(?,?,?,?)",
                            (lab.id, sid, lab.version, json.dumps(lab.to_dict(), ensure_ascii=False)))
        con.execute("COMMIT")
        repo.close()
        self.con = con

    def save(self, k: int, sid: str, item: int, score: int) -> float:
        lid = f"{sid}|{item}|{SHARED}"
        version, doc = self.con.execute("SELECT version, doc FROM labels WHERE id=?", (lid,)).fetchone()
        before = json.loads(doc)
        after = {**before, "score": score, "rationale": f"edit {k}: " + before["rationale"][:600],
                 "version": version + 1, "updated_at": now_iso(), "updated_by": "bench-expert"}
        t = time.perf_counter()
        self.con.execute("BEGIN IMMEDIATE")
        cur = self.con.execute("UPDATE labels SET doc=?, version=? WHERE id=? AND version=?",
                               (json.dumps(after, ensure_ascii=False), version + 1, lid, version))
        assert cur.rowcount == 1
        self.con.execute("INSERT INTO audit(entity_id, doc) VALUES(?,?)",
                         (lid, json.dumps({"before": before, "after": after}, ensure_ascii=False)))
        self.con.execute("COMMIT")
        return (time.perf_counter() - t) * 1000

    def open(self, sid: str) -> float:
        t = time.perf_counter()
        session = json.loads(self.con.execute("SELECT doc FROM sessions WHERE id=?", (sid,)).fetchone()[0])
        preds = [json.loads(r[0]) for r in self.con.execute("SELECT doc FROM predictions WHERE session_id=?", (sid,))]
        labels = [json.loads(r[0]) for r in self.con.execute("SELECT doc FROM labels WHERE session_id=?", (sid,))]
        dt = (time.perf_counter() - t) * 1000
        assert session["turns"] and len(preds) == 12 and labels is not None
        return dt

    def close(self) -> None:
        self.con.close()


def run(root: Path, n_sessions: int, n_labels: int, ops: int, seed: int) -> dict:
    from store import Repository

    load_before = load_average()
    repo = Repository(root / "care-store")
    t0 = time.perf_counter()
    build_store(repo, n_sessions, n_labels, seed=seed)
    build_s = time.perf_counter() - t0
    repo.close()
    sqlite, care = SqliteStore(root), CareStore(root)
    rng = random.Random(seed + 1)
    ids = care.repo.session_ids()
    saves = [(k, rng.choice(ids), rng.randint(1, 12), rng.randint(1, 5)) for k in range(ops)]
    opens = [rng.choice(ids) for _ in range(ops)]
    times = {name: {"save": [], "open": []} for name in ("care", "sqlite")}
    per = max(1, -(-ops // ROUNDS))
    for r in range(ROUNDS):
        for system in ((care, sqlite) if r % 2 == 0 else (sqlite, care)):  # rotate who goes first
            times[system.name]["save"] += [system.save(*op) for op in saves[r * per:(r + 1) * per]]
            times[system.name]["open"] += [system.open(sid) for sid in opens[r * per:(r + 1) * per]]
    stats = care.repo.stats()
    open_store_s = care.open_store_s
    care.close()
    sqlite.close()
    size_mb = sum(p.stat().st_size for p in (root / "care-store").rglob("*") if p.is_file()) / 1e6
    out = {"sessions": stats["sessions"], "labels": stats["labels"], "predictions": stats["predictions"],
           "ops": len(times["care"]["save"]), "rounds": ROUNDS, "build_s": round(build_s, 1),
           "open_store_s": round(open_store_s, 2), "store_mb": round(size_mb, 1)}
    for name, prefix in (("care", ""), ("sqlite", "sqlite_")):
        for kind in ("save", "open"):
            values = times[name][kind]
            out[f"{prefix}{kind}_p50_ms"] = round(pct(values, 50), 3)
            out[f"{prefix}{kind}_p95_ms"] = round(pct(values, 95), 3)
            out[f"{prefix}{kind}_mean_ms"] = round(statistics.fmean(values), 3)
    out["save_vs_sqlite_p95"] = round(out["save_p95_ms"] / max(out["sqlite_save_p95_ms"], 1e-9), 2)
    out["open_vs_sqlite_p95"] = round(out["open_p95_ms"] / max(out["sqlite_open_p95_ms"], 1e-9), 2)
    out["targets"] = {"save_p95<=3x_sqlite": out["save_vs_sqlite_p95"] <= 3}
    out["load_average_before"], out["load_average_after"] = load_before, load_average()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sessions", type=int, default=800)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=500, help="saves and opens to time on each system")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="care-bench-") as tmp:
        out = run(Path(tmp), args.sessions, args.labels, args.ops, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")
    return out


if __name__ == "__main__":
    main()
