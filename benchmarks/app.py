"""Review app speed through its HTTP API, against Gradio's own round trip measured in the same run.

Builds a store of 800 sessions (80 turns, about 30 KB of transcript each, 12 predictions each)
and 10,000 labels, launches the review app on it (``studio.app.build_app``, login on) and, in the
same process, a trivial Gradio app whose one endpoint returns its input (same login). Through
``gradio_client`` with login it then times, interleaved so both see the same machine load,
200 session opens (``/open_session``: transcript, 12 predictions and labels, checks, summary),
200 item saves (``/save_draft`` on top of the version the open returned) and 200 no-op calls.

    python -m benchmarks.app --json                       # the full benchmark (a few minutes)
    python -m benchmarks.app --json --sessions 80 --labels 1000 --ops 40   # a quick smoke run

Targets (issue 5): open_p95_ms - noop_p95_ms <= 50 and save_p95_ms - noop_p95_ms <= 30.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

from .synthetic import build_store  # noqa: E402

USER, PASSWORD = "bench-annotator", "bench-password-1"


def pct(values, q) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def noop_app():
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        def echo(text: str) -> str:
            return text

        gr.api(echo, api_name="echo", concurrency_limit=None)
    return demo


def run(n_sessions: int, n_labels: int, ops: int, seed: int) -> dict:
    from gradio_client import Client

    from store import Repository
    from studio.app import build_app
    from studio.testing import serve

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="care-bench-app-") as tmp:
        repo = Repository(Path(tmp) / "store")
        t0 = time.perf_counter()
        built = build_store(repo, n_sessions, n_labels, seed=seed)
        build_s = time.perf_counter() - t0
        repo.add_user(USER, PASSWORD, "annotator", actor="bench")
        ids = repo.session_ids()
        repo.assign(ids, [USER], actor="bench")  # the annotator's queue holds every session (shared coding)
        app = build_app(repo, None)
        baseline = noop_app()
        auth = [(USER, PASSWORD)]
        with serve(app) as url, serve(baseline, auth=auth) as noop_url:
            client = Client(url, auth=(USER, PASSWORD), verbose=False)
            noop = Client(noop_url, auth=(USER, PASSWORD), verbose=False)
            for _ in range(10):  # warm both paths (first calls open connections, fill caches)
                noop.predict("warm-up", api_name="/echo")
                client.predict(rng.choice(ids), api_name="/open_session")
            targets = rng.sample(ids, min(ops, len(ids)))
            opens, saves, noops, payload = [], [], [], []
            for k, sid in enumerate(targets):
                # the no-op runs first, between or last in turn, so no kind always follows another
                slot = k % 3
                if slot == 0:
                    noops.append(_timed(noop.predict, f"{sid} item {k}", api_name="/echo")[1])
                view, dt = _timed(client.predict, sid, api_name="/open_session")
                opens.append(dt)
                payload.append(len(json.dumps(view, ensure_ascii=False)))
                if slot == 1:
                    noops.append(_timed(noop.predict, f"{sid} item {k}", api_name="/echo")[1])
                item = view["items"][rng.randrange(len(view["items"]))]
                res, dt = _timed(client.predict, sid, item["item"], rng.randint(1, 5),
                                 f"Benchmark edit {k}: " + item["draft"]["rationale"], item["draft"]["evidence"],
                                 ["style"], item["version"], api_name="/save_draft")
                saves.append(dt)
                if res["status"] != "saved":
                    raise RuntimeError(f"save {k} was not saved: {res['status']}")
                if slot == 2:
                    noops.append(_timed(noop.predict, f"{sid} item {k}", api_name="/echo")[1])
        repo.close()

    def stats(name, values):
        ms = [v * 1000 for v in values]
        return {f"{name}_p50_ms": round(statistics.median(ms), 1), f"{name}_p95_ms": round(pct(ms, 95), 1),
                f"{name}_mean_ms": round(statistics.fmean(ms), 1)}

    out = {"sessions": built["sessions"], "labels": built["labels"], "turns_per_session": 80, "ops": len(opens),
           "store_build_s": round(build_s, 1), "open_payload_kb": round(statistics.median(payload) / 1024, 1)}
    for name, values in (("open", opens), ("save", saves), ("noop", noops)):
        out.update(stats(name, values))
    out["open_minus_noop_p95_ms"] = round(out["open_p95_ms"] - out["noop_p95_ms"], 1)
    out["save_minus_noop_p95_ms"] = round(out["save_p95_ms"] - out["noop_p95_ms"], 1)
    out["targets"] = {"open_minus_noop_p95_ms<=50": out["open_minus_noop_p95_ms"] <= 50,
                      "save_minus_noop_p95_ms<=30": out["save_minus_noop_p95_ms"] <= 30}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sessions", type=int, default=800)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=200, help="session opens, item saves and no-op calls each")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = run(args.sessions, args.labels, args.ops, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
