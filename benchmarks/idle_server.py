"""What an idle app server costs, and what calming its queue's polling costs in latency.

Gradio's queue looks for work every 1 ms when it has none (``Queue.sleep_when_free`` on Linux);
``studio.gradio_boot.calm_queue`` makes that 10 ms (progress 50 ms). This serves the review app
(``studio.app.build_app`` on an empty store with one user, login on, in this process) and measures,
for Gradio's own polling and for ours in the same run: the CPU seconds the process spends per
second with no client at all, and the p50/p95 of a no-op event's round trip through the queue
(``gradio_client``, an endpoint that returns its input, added to the same app). The baseline is
Gradio's default polling, measured in the same run, alternating with ours.

    python -m benchmarks.idle_server --json                  # about 1 minute
    python -m benchmarks.idle_server --json --idle 3 --calls 20   # a quick smoke run
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _serve(demo) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo.local_url


def measure(polling: str, idle_s: float, calls: int) -> dict:
    import gradio as gr
    from gradio_client import Client

    from store import Repository
    from studio import gradio_boot
    from studio.app import build_app

    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(Path(tmp) / "store")
        repo.add_user("bench-admin", "bench-password-1", "admin", actor="bench")
        demo = build_app(repo, None)
        with demo:
            box = gr.Textbox(visible=False)
            box.submit(lambda v: v, box, box, api_name="bench_echo")
        demo.queue(default_concurrency_limit=8)  # the queue again, now with the endpoint in it
        if polling == "calm":
            gradio_boot.calm_queue(demo)
        else:
            demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free = 0.001, 0.01
        url = _serve(demo)
        try:
            time.sleep(1.0)
            c0, t0 = time.process_time(), time.perf_counter()
            time.sleep(idle_s)
            idle = (time.process_time() - c0) / (time.perf_counter() - t0)
            client = Client(url, auth=("bench-admin", "bench-password-1"), verbose=False)
            client.predict("warm", api_name="/bench_echo")
            rt = []
            for i in range(calls):
                t = time.perf_counter()
                assert client.predict(f"x{i}", api_name="/bench_echo") == f"x{i}"
                rt.append((time.perf_counter() - t) * 1000)
            client.close() if hasattr(client, "close") else None
        finally:
            with contextlib.redirect_stdout(sys.stderr):  # Gradio says "Closing server..." on stdout
                demo.close()
            repo.close()
    rt.sort()
    return {"polling": polling, "poll_s": demo._queue.sleep_when_free, "idle_cpu_s_per_s": round(idle, 4),
            "roundtrip_ms_p50": round(statistics.median(rt), 1),
            "roundtrip_ms_p95": round(rt[int(0.95 * (len(rt) - 1))], 1)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=float, default=15.0, help="seconds of idling measured per setting")
    ap.add_argument("--calls", type=int, default=100, help="no-op round trips per setting")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = [measure(p, a.idle, a.calls) for p in ("gradio", "calm", "gradio", "calm")]  # alternated
    by = {p: [r for r in runs if r["polling"] == p] for p in ("gradio", "calm")}
    mean = {p: {k: statistics.mean(r[k] for r in rs) for k in ("idle_cpu_s_per_s", "roundtrip_ms_p50",
                                                               "roundtrip_ms_p95")} for p, rs in by.items()}
    out = {"runs": runs, "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
           "idle_cpu_gradio_over_calm": round(mean["gradio"]["idle_cpu_s_per_s"] / mean["calm"]["idle_cpu_s_per_s"], 2),
           "roundtrip_p50_calm_minus_gradio_ms": round(mean["calm"]["roundtrip_ms_p50"]
                                                       - mean["gradio"]["roundtrip_ms_p50"], 1)}
    print(json.dumps(out, indent=1) if a.json else out)
    return out


if __name__ == "__main__":
    main()
