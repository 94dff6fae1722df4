"""Store speed at the paper's scale, against a SQLite baseline measured in the same run.

Builds a store of 800 sessions (80 turns, about 30 KB of transcript each, 12 predictions each)
and 10,000 labels, then times 500 label saves (durable when the call returns: fsync) and 500
"open a session" reads (the session with its predictions and labels). The same data and the same
operations run on SQLite (WAL, synchronous=FULL: durable on commit) as the baseline.

    python -m benchmarks.store --json                 # the full benchmark (about 1-2 minutes)
    python -m benchmarks.store --json --sessions 80 --labels 1000 --ops 100   # a quick smoke run

Targets (issue 2): save_p95_ms <= 25, open_p95_ms <= 10, save_p95_ms <= 10 x sqlite_save_p95_ms.
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from care_model.records import Label, SHARED, now_iso

from .synthetic import build_store


def pct(values, q) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def bench_repo(root: Path, n_sessions: int, n_labels: int, ops: int, seed: int) -> dict:
    from store import Repository

    repo = Repository(root / "care-store")
    t0 = time.perf_counter()
    built = build_store(repo, n_sessions, n_labels, seed=seed)
    build_s = time.perf_counter() - t0
    repo.close()
    t0 = time.perf_counter()
    repo = Repository(root / "care-store")  # measure a cold open of the full store too
    open_store_s = time.perf_counter() - t0
    rng = random.Random(seed + 1)
    ids = repo.session_ids()
    saves, opens = [], []
    for k in range(ops):
        sid, item = rng.choice(ids), rng.randint(1, 12)
        current = repo.get_label(sid, item, SHARED)
        label = Label(session_id=sid, item=item, annotator=SHARED, score=rng.randint(1, 5),
                      rationale=f"edit {k}: " + current.rationale[:600], evidence=current.evidence,
                      status="draft", prediction_id=current.prediction_id)
        t = time.perf_counter()
        repo.save_label(label, actor="bench-expert", expected_version=current.version)
        saves.append((time.perf_counter() - t) * 1000)
    for _ in range(ops):
        sid = rng.choice(ids)
        t = time.perf_counter()
        view = repo.open_session(sid)
        opens.append((time.perf_counter() - t) * 1000)
        assert view.session.turns and len(view.predictions) == 12
    stats = repo.stats()
    repo.close()
    size_mb = sum(p.stat().st_size for p in (root / "care-store").rglob("*") if p.is_file()) / 1e6
    return {"sessions": stats["sessions"], "labels": stats["labels"], "predictions": stats["predictions"],
            "build_s": round(build_s, 1), "open_store_s": round(open_store_s, 2), "store_mb": round(size_mb, 1),
            "save_p50_ms": round(pct(saves, 50), 2), "save_p95_ms": round(pct(saves, 95), 2),
            "save_mean_ms": round(statistics.mean(saves), 2),
            "open_p50_ms": round(pct(opens, 50), 3), "open_p95_ms": round(pct(opens, 95), 3), "_built": built}


def bench_sqlite(root: Path, n_sessions: int, n_labels: int, ops: int, seed: int) -> dict:
    """The same data model in SQLite: JSON documents keyed and indexed by session."""
    from store import Repository

    # Reuse the exact data: read it back from the TinyDB store built above.
    repo = Repository(root / "care-store")
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
        con.execute("INSERT INTO sessions VALUES(?,?)", (sid, json.dumps(repo.get_session(sid).to_dict(), ensure_ascii=False)))
        for p in repo.predictions(sid):
            con.execute("INSERT INTO predictions VALUES(?,?,?)", (p.id, sid, json.dumps(p.to_dict(), ensure_ascii=False)))
        for lab in repo.labels(sid):
            con.execute("INSERT INTO labels VALUES(?,?,?,?)", (lab.id, sid, lab.version, json.dumps(lab.to_dict(), ensure_ascii=False)))
    con.execute("COMMIT")
    ids = repo.session_ids()
    repo.close()
    rng = random.Random(seed + 1)
    saves, opens = [], []
    for k in range(ops):
        sid, item = rng.choice(ids), rng.randint(1, 12)
        lid = f"{sid}|{item}|{SHARED}"
        version, doc = con.execute("SELECT version, doc FROM labels WHERE id=?", (lid,)).fetchone()
        before = json.loads(doc)
        after = {**before, "score": rng.randint(1, 5), "rationale": f"edit {k}: " + before["rationale"][:600],
                 "version": version + 1, "updated_at": now_iso(), "updated_by": "bench-expert"}
        t = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute("UPDATE labels SET doc=?, version=? WHERE id=? AND version=?",
                          (json.dumps(after, ensure_ascii=False), version + 1, lid, version))
        assert cur.rowcount == 1
        con.execute("INSERT INTO audit(entity_id, doc) VALUES(?,?)",
                    (lid, json.dumps({"before": before, "after": after}, ensure_ascii=False)))
        con.execute("COMMIT")
        saves.append((time.perf_counter() - t) * 1000)
    for _ in range(ops):
        sid = rng.choice(ids)
        t = time.perf_counter()
        session = json.loads(con.execute("SELECT doc FROM sessions WHERE id=?", (sid,)).fetchone()[0])
        preds = [json.loads(r[0]) for r in con.execute("SELECT doc FROM predictions WHERE session_id=?", (sid,))]
        labels = [json.loads(r[0]) for r in con.execute("SELECT doc FROM labels WHERE session_id=?", (sid,))]
        opens.append((time.perf_counter() - t) * 1000)
        assert session["turns"] and len(preds) == 12 and labels is not None
    con.close()
    return {"sqlite_save_p50_ms": round(pct(saves, 50), 3), "sqlite_save_p95_ms": round(pct(saves, 95), 3),
            "sqlite_open_p50_ms": round(pct(opens, 50), 3), "sqlite_open_p95_ms": round(pct(opens, 95), 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sessions", type=int, default=800)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=500, help="saves and opens to time, each")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="care-bench-") as tmp:
        root = Path(tmp)
        out = bench_repo(root, args.sessions, args.labels, args.ops, args.seed)
        out.update(bench_sqlite(root, args.sessions, args.labels, args.ops, args.seed))
    out.pop("_built")
    out["save_vs_sqlite_p95"] = round(out["save_p95_ms"] / max(out["sqlite_save_p95_ms"], 1e-9), 2)
    out["targets_met"] = bool(out["save_p95_ms"] <= 25 and out["open_p95_ms"] <= 10 and out["save_vs_sqlite_p95"] <= 10)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")
    return out


if __name__ == "__main__":
    main()
