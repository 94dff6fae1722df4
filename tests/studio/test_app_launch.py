"""The README's first command: `python annotate_app.py` on a fresh store brings the app up."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env=None, timeout=240):
    """Run annotate_app.py until it prints its URL; returns (process, printed lines)."""
    proc = subprocess.Popen([sys.executable, "annotate_app.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("the app exited:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("CARE Review Studio on http://"):
            return proc, lines
    proc.kill()
    raise AssertionError("no URL within the time limit:\n" + "".join(lines))


def wait_up(url, auth, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(url, auth=auth, verbose=False)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_first_run_imports_the_samples_and_prints_the_admin_once(tmp_path):
    store, port = tmp_path / "care_store", free_port()
    env = {"CARE_ADMIN_USER": "", "CARE_ADMIN_PASSWORD": ""}
    proc, lines = start(["--store", str(store), "--port", str(port)], env)
    try:
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}" in text  # bound to this machine only by default
        assert "imported 23 sample sessions with 276 predictions and 276 drafts" in text
        m = re.search(r"user: (\S+)\s+password: (\S+)", text)
        assert m, text
        client = wait_up(f"http://127.0.0.1:{port}/", (m.group(1), m.group(2)))
        assert client.predict(api_name="/whoami")["role"] == "admin"
        queue = client.predict("all", "", "id", api_name="/list_queue")
        assert queue["counts"]["total"] == 23
        # the first screen needs no model run: every sample comes with the embedded default's predictions
        assert {r["model_version"] for r in queue["rows"]} == {"smollm2-135m-instruct"}
        view = client.predict("sample-zh-01", api_name="/open_session")
        assert all(it["prediction"] and len(it["prediction"]["probs"]) == 5 for it in view["items"])
    finally:
        proc.terminate()
        proc.wait(30)
    proc, lines = start(["--store", str(store), "--port", str(port)], env)  # second start: nothing printed again
    try:
        assert "password" not in "".join(lines) and "imported" not in "".join(lines)
    finally:
        proc.terminate()
        proc.wait(30)


def test_admin_account_from_the_environment(tmp_path):
    port = free_port()
    proc, lines = start(["--store", str(tmp_path / "s"), "--port", str(port), "--no-samples"],
                        {"CARE_ADMIN_USER": "boss", "CARE_ADMIN_PASSWORD": "boss-password-1"})
    try:
        assert "created admin account 'boss' with the given password" in "".join(lines)
        assert "boss-password-1" not in "".join(lines)
        client = wait_up(f"http://127.0.0.1:{port}/", ("boss", "boss-password-1"))
        assert client.predict("all", "", "id", api_name="/list_queue")["counts"]["total"] == 0
    finally:
        proc.terminate()
        proc.wait(30)
