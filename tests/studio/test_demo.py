"""The public demo: sample sessions or pasted text, no store, share allowed only here."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from care_model.inference.models import ModelSpec
from care_model.inference.predictor import Predictor
from studio.demo import BANNER, build_demo, parse_pasted
from studio_testing import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_url(tiny_model_dir):
    demo = build_demo(Predictor(ModelSpec(base=str(tiny_model_dir))))
    assert demo.studio_ctx.repo is None and demo.studio_ctx.demo
    with serve(demo) as url:
        yield url


def test_demo_predicts_pasted_text_without_login(demo_url):
    page = httpx.get(demo_url + "config", timeout=30)
    assert page.status_code == 200 and BANNER[:40] in page.text  # the banner, and no login page
    c = Client(demo_url, verbose=False)
    res = c.predict("Counselor: How was the week?\nClient: <script>x()</script> better, I went running twice.",
                    "en", api_name="/demo_predict")
    assert res["turns"] == 2 and len(res["predictions"]) == 12 and all(len(p["probs"]) == 5 for p in res["predictions"])
    with pytest.raises(AppError, match="Nothing was pasted"):
        c.predict("   ", "auto", api_name="/demo_predict")
    for args, named in (((None, "en"), "'transcript' must be a string"), (("Client: hi", 5),
                                                                          "'language' must be a string"),
                        (("x" * 60_001, "en"), "the limit is 60,000")):
        with pytest.raises(AppError, match=named):
            c.predict(*args, api_name="/demo_predict")
    names = set(c.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/demo_predict"}  # no store actions exist in the demo


def test_pasted_text_parsing():
    s = parse_pasted("来访者：我最近睡不好。\n咨询师：能多说一点吗？")
    assert s.language == "zh" and [t.speaker for t in s.turns] == ["client", "counselor"]
    with pytest.raises(Exception, match="pasted text|speaker"):
        parse_pasted("Dr. Who: hello\nPatient: hi")
    with pytest.raises(Exception, match="up to"):
        parse_pasted("Client: " + "x" * 70_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_command_with_share_opens_no_store(tmp_path):
    store = tmp_path / "never-created"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "annotate_app.py", "--demo", "--share", "--port", str(port),
                             "--store", str(store)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/config", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        assert BANNER[:40] in r.text
        assert not store.exists()  # the demo never opens a store
    finally:
        proc.terminate()
        proc.wait(30)


def test_predicting_shows_one_progress_indicator():
    """Defect 9 of issue 11: the Predict job's progress shows on the status line only (it showed
    on all four outputs at once); the browser test counts them on screen."""
    from studio.demo import build_demo

    demo = build_demo(None)
    by_id = {c["id"]: c for c in demo.config["components"]}
    deps = [d for d in demo.config["dependencies"] if any(by_id.get(t[0], {}).get("props",
                                                                                  {}).get("elem_id") == "demo-predict"
                                                          for t in d["targets"])]
    assert len(deps) == 1 and len(deps[0]["outputs"]) == 4
    on = deps[0].get("show_progress_on")
    assert deps[0]["show_progress"] != "hidden" and on and len(on) == 1
    assert by_id[on[0]]["props"]["elem_id"] == "demo-status"


def test_the_public_demo_refuses_pasted_text_with_personal_information():
    from care_model.core.errors import DeidentificationRequired
    from studio.demo import DemoUI

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "deid" / "planted_session.txt"
    pasted = parse_pasted(fixture.read_text(encoding="utf-8"))
    assert "[PHONE]" in DemoUI(None, {}, {}, shared=False).check_pasted(pasted)  # local demo: a warning
    with pytest.raises(DeidentificationRequired, match=r"personal information.*\[ADDRESS\].*\[EMAIL\].*\[PHONE\].*"
                                                       r"not sent to the model.*Fix:"):
        DemoUI(None, {}, {}, shared=True).check_pasted(pasted)
    pasted.turns = pasted.turns[:2]
    assert DemoUI(None, {}, {}, shared=True).check_pasted(pasted) == ""
