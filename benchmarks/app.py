"""Review app speed through its HTTP API, against Gradio's own round trip measured in the same run.

Builds a store of 800 sessions (80 turns, about 30 KB of transcript each, 12 predictions each)
and 10,000 labels, then starts the review app on it as its own process, running the code
``make app`` runs (``python annotate_app.py --store DIR --port P``, the same as ``care app``;
login on), and a trivial Gradio app whose
one endpoint returns its input (same login) as another process. The client (``gradio_client``,
logged in) runs in this process. For each of 200 sessions it makes one session open
(``/open_session``: transcript, 12 predictions and labels, checks, summary), one item save
(``/save_draft`` of a new score and rationale on top of the version the open returned; the
sessions are expert-judged) and one no-op call, in an order that
rotates every call. The result is the p95 of the per-call differences ``open_k - noop_k`` and
``save_k - noop_k`` (the app's own cost, with the machine's load of that moment subtracted), not a
difference of p95s. The machine's load average is recorded before and after.

    python -m benchmarks.app --json                       # the full benchmark (a few minutes)
    python -m benchmarks.app --json --sessions 80 --labels 1000 --ops 40   # a quick smoke run

Targets (issue 12): p95(open - noop) <= 50 ms and p95(save - noop) <= 30 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

from .synthetic import build_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "bench-annotator", "bench-password-1"
ADMIN_PASSWORD = "bench-admin-password-1"
# A save needs the version its open returned, so the no-op takes each place around the pair in turn.
ORDERS = [("noop", "open", "save"), ("open", "noop", "save"), ("open", "save", "noop")]


def pct(values, q) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_noop(port: int) -> None:
    """The baseline server (its own process): one endpoint that returns its input, same login."""
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as demo:
        def echo(text: str) -> str:
            return text

        gr.api(echo, api_name="echo", concurrency_limit=None)
    demo.launch(server_name="127.0.0.1", server_port=port, auth=[(USER, PASSWORD)], quiet=True)


def _start(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[1]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{cmd[1]} did not answer on port {port} within 300 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(n_sessions: int, n_labels: int, ops: int, seed: int) -> dict:
    from gradio_client import Client

    from store import Repository
    from studio.access import Access
    from studio.curation_modes import set_curation_mode

    from care_model.core.records import SHARED
    from care_model.core.wai import load_form

    load_before = load_average()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="care-bench-app-") as tmp:
        store = Path(tmp) / "store"
        repo = Repository(store)
        t0 = time.perf_counter()
        built = build_store(repo, n_sessions, n_labels, seed=seed)
        build_s = time.perf_counter() - t0
        repo.add_user(USER, PASSWORD, "annotator", actor="bench")
        ids = repo.session_ids()
        repo.assign(ids, [USER], actor="bench")  # the annotator's queue holds every session (shared coding)
        # expert-judged: the annotator sets the score freely (the synthetic sessions carry client
        # ratings, so by default their scores would be anchored to them and a changed score refused)
        set_curation_mode(repo, Access("bench-admin", "admin"), ids, "expert_judged")
        item_ids = load_form(repo.get_session(ids[0]).form).item_ids
        draftable = {}  # a submitted item is read-only: save items that are drafts or unlabelled
        for sid in ids:
            status = {lab.item: lab.status for lab in repo.labels(sid, annotator=SHARED)}
            items = [i for i in item_ids if status.get(i) != "submitted"]
            if items:
                draftable[sid] = items
        repo.close()  # the app process owns the store from here on
        app_port, noop_port = _free_port(), _free_port()
        app = _start([sys.executable, "annotate_app.py", "--store", str(store), "--port", str(app_port), "--no-samples",
                      "--admin-user", "bench-admin", "--admin-password", ADMIN_PASSWORD],
                     app_port, Path(tmp) / "app.log")
        try:
            noop_server = _start([sys.executable, "-m", "benchmarks.app", "--serve-noop", str(noop_port)], noop_port,
                                 Path(tmp) / "noop.log")
            try:
                client = Client(f"http://127.0.0.1:{app_port}/", auth=(USER, PASSWORD), verbose=False)
                noop = Client(f"http://127.0.0.1:{noop_port}/", auth=(USER, PASSWORD), verbose=False)
                for _ in range(10):  # warm both paths (first calls open connections, fill caches)
                    noop.predict("warm-up", api_name="/echo")
                    client.predict(rng.choice(ids), api_name="/open_session")
                rows, payload = [], []
                for k, sid in enumerate(rng.sample(sorted(draftable), min(ops, len(draftable)))):
                    row, view = {}, None
                    for kind in ORDERS[k % len(ORDERS)]:
                        if kind == "noop":
                            row["noop"] = _timed(noop.predict, f"{sid} item {k}", api_name="/echo")[1]
                        elif kind == "open":
                            view, row["open"] = _timed(client.predict, sid, api_name="/open_session")
                            payload.append(len(json.dumps(view, ensure_ascii=False)))
                        else:
                            number = rng.choice(draftable[sid])
                            item = next(it for it in view["items"] if it["item"] == number)
                            res, row["save"] = _timed(client.predict, sid, item["item"], rng.randint(1, 5),
                                                      f"Benchmark edit {k}: " + item["draft"]["rationale"],
                                                      item["draft"]["evidence"], ["style"], item["version"],
                                                      api_name="/save_draft")
                            if res["status"] != "saved":
                                raise RuntimeError(f"save {k} was not saved: {res['status']}")
                    rows.append(row)
            finally:
                _stop(noop_server)
        finally:
            _stop(app)

    def ms(values):
        return [v * 1000 for v in values]

    out = {"sessions": built["sessions"], "labels": built["labels"], "turns_per_session": 80, "ops": len(rows),
           "app": "annotate_app.py in its own process", "store_build_s": round(build_s, 1),
           "open_payload_kb": round(statistics.median(payload) / 1024, 1)}
    for kind in ("open", "save", "noop"):
        values = ms(r[kind] for r in rows)
        out[f"{kind}_p50_ms"], out[f"{kind}_p95_ms"] = round(statistics.median(values), 1), round(pct(values, 95), 1)
    for kind in ("open", "save"):
        diffs = ms(r[kind] - r["noop"] for r in rows)
        out[f"{kind}_minus_noop_p50_ms"] = round(statistics.median(diffs), 1)
        out[f"{kind}_minus_noop_p95_ms"] = round(pct(diffs, 95), 1)
    out["targets"] = {"p95(open-noop)<=50": out["open_minus_noop_p95_ms"] <= 50,
                      "p95(save-noop)<=30": out["save_minus_noop_p95_ms"] <= 30}
    out["load_average_before"], out["load_average_after"] = load_before, load_average()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.app", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sessions", type=int, default=800)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=200, help="session opens, item saves and no-op calls each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_noop:
        serve_noop(args.serve_noop)
        return {}
    out = run(args.sessions, args.labels, args.ops, args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
