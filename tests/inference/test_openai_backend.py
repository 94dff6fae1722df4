"""The openai backend's error paths against a small local stub server (stdlib http.server on 127.0.0.1):
a server that is down, 429/5xx answers retried with backoff, a failure in the middle of a session
(nothing of it stored; the same command resumes), a server whose tokenizer differs. Plus the
mapping of top log-probabilities onto the five options. The real check against `vllm serve` is
tests/inference/test_openai_vllm_serve.py (slow, vllm).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from care_model.core.errors import ConfigError
from care_model.inference.backends.openai_backend import option_logprobs
from care_model.inference.option_tokens import option_token_ids, score_from_logprobs
from store import Repository
from store.formats import read_files

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ("sample-en-01", "sample-en-02")


class Stub:
    """An OpenAI-compatible stub: /v1/models, /v1/completions (scores: option 4 most probable), and
    ``plan``: a list of (status or None) consumed one per completions request (None: answer)."""

    def __init__(self, tokenizer, *, plan=(), tokenize=None):
        self.plan, self.tokenize, self.calls, self.times = list(plan), tokenize, [], []
        ids = option_token_ids(tokenizer)
        self.top = {f"token_id:{ids[4][0]}": -0.4, f"token_id:{ids[3][0]}": -1.6, f"token_id:{ids[5][0]}": -2.5}
        self.first = ids[4][0]
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, doc, headers=()):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    return self._send(200, {"data": [{"id": "tiny", "max_model_len": 32768}]})
                self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    if stub.tokenize is None:
                        return self._send(404, {"detail": "Not Found"})
                    return self._send(200, {"tokens": stub.tokenize})
                with stub.lock:
                    stub.calls.append(body)
                    stub.times.append(time.monotonic())
                    step = stub.plan.pop(0) if stub.plan else None
                if step is not None:
                    return self._send(step, {"error": {"message": f"stub says {step}"}}, [("Retry-After", "0")])
                self._send(200, {"choices": [{"text": "4", "finish_reason": "length", "logprobs": {
                    "tokens": [f"token_id:{stub.first}"], "token_logprobs": [-0.4], "top_logprobs": [stub.top]}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture
def store(tmp_path):
    with Repository(tmp_path / "store") as repo:
        batch = read_files([ROOT / "data" / "sessions.jsonl"], "jsonl")
        batch.sessions = [s for s in batch.sessions if s.id in SESSIONS]
        repo.import_batch(batch)
    return tmp_path / "store"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setenv("CARE_OPENAI_RETRIES", "3")
    monkeypatch.setenv("CARE_OPENAI_BACKOFF", "0.05")


def _predict(store, url, model_dir, capsys, *extra):
    from care_model.jobs.predict import main

    code = main(["--store", str(store), "--backend", "openai", "--base-url", url, "--served-model", "tiny",
                 "--model", str(model_dir), "--scores-only", "--json", "--max-concurrency", "4", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def _stored(store) -> dict:
    with Repository(store, create=False) as repo:
        return {sid: len(repo.predictions(sid)) for sid in repo.session_ids()}


def test_option_logprobs_by_id_and_by_text_equal_the_engine_mapping(tokenizer):
    ids = option_token_ids(tokenizer)
    lps = {ids[2][0]: -2.0, ids[4][0]: -0.3, ids[4][-1]: -1.0}
    by_id = option_logprobs({f"token_id:{t}": v for t, v in lps.items()}, ids)
    assert score_from_logprobs(*by_id) == score_from_logprobs(lps, ids)
    # by text: " 4" and "4." count for option 4, "**" and "14" for none, full-width "５" for 5
    probs, expected, argmax, mass = score_from_logprobs(*option_logprobs(
        {" 4": -0.5, "4.": -1.5, "2": -2.0, "**": -0.1, "14": -0.2, "\uff15": -3.0}, ids))
    assert argmax == 4 and probs[0] == 0.0 and probs[2] == 0.0
    assert mass == pytest.approx(sum(map(lambda v: 2.718281828 ** v, (-0.5, -1.5, -2.0, -3.0))), rel=1e-6)


def test_a_server_that_is_down_names_its_url_and_nothing_is_stored(store, tiny_model_dir, capsys):
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    t0 = time.monotonic()
    code, _out, err = _predict(store, url, tiny_model_dir, capsys)
    assert code == 2
    assert url in err and "not reachable" in err and "Start the server" in err, err
    assert time.monotonic() - t0 < 20
    assert _stored(store) == {sid: 0 for sid in SESSIONS}


def test_429_and_5xx_are_retried_with_backoff_then_succeed(store, tiny_model_dir, tokenizer, capsys):
    stub = Stub(tokenizer, plan=[429, 503, 500])
    try:
        code, out, err = _predict(store, stub.url, tiny_model_dir, capsys, "--session", SESSIONS[0])
    finally:
        stub.close()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["predictions"] == 12
    assert len(stub.calls) == 12 + 3  # each refused request was sent again
    gaps = [b - a for a, b in zip(stub.times, stub.times[1:4])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps  # doubling backoff
    with Repository(store, create=False) as repo:
        preds = repo.predictions(SESSIONS[0])
    assert sorted(p.item for p in preds) == list(range(1, 13))
    assert all(p.score == 4 and p.mode == "scores_only" for p in preds)
    # the prompt went as the engine's token ids: the transcript prefix shared by the 12 requests
    prompts = [c["prompt"] for c in stub.calls[3:]]
    assert all(isinstance(p, list) and p[:50] == prompts[0][:50] for p in prompts)
    assert {c["logprobs"] for c in stub.calls} == {20} and {c["max_tokens"] for c in stub.calls} == {1}


def test_a_failure_mid_session_stores_nothing_of_it_and_the_rerun_resumes(store, tiny_model_dir, tokenizer, capsys):
    # session 1: 12 good answers; session 2: its 5th request fails for good (400 is not retried)
    stub = Stub(tokenizer, plan=[None] * 16 + [400])
    try:
        code, _out, err = _predict(store, stub.url, tiny_model_dir, capsys, "--max-concurrency", "1")
        assert code == 2 and stub.url in err and "HTTP 400" in err, err
        assert _stored(store) == {SESSIONS[0]: 12, SESSIONS[1]: 0}  # whole sessions only
        stub.calls.clear()
        code, out, err = _predict(store, stub.url, tiny_model_dir, capsys)
    finally:
        stub.close()
    assert code == 0, err
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["skipped"] == 1 and counts["sessions"] == 1 and len(stub.calls) == 12
    assert _stored(store) == {SESSIONS[0]: 12, SESSIONS[1]: 12}


def test_a_server_with_another_tokenizer_is_refused(store, tiny_model_dir, tokenizer, capsys):
    stub = Stub(tokenizer, tokenize=[1, 2, 3])
    try:
        code, _out, err = _predict(store, stub.url, tiny_model_dir, capsys)
    finally:
        stub.close()
    assert code == 2 and "tokenizes text differently" in err and "--model" in err, err
    assert stub.calls == [] and _stored(store) == {sid: 0 for sid in SESSIONS}


def test_openai_flags_are_checked(capsys):
    from care_model.jobs.predict import main

    assert main(["--store", "x", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "--served-model" in capsys.readouterr().err
    assert main(["--store", "x", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "--backend openai" in capsys.readouterr().err
    with pytest.raises(ConfigError):  # no key in the named variable
        from care_model.inference.backends.openai_http import api_key_from_env

        api_key_from_env("CARE_TEST_SURELY_UNSET_KEY")


def test_the_flags_reach_the_app_and_the_retraining_config(tmp_path, capsys):
    from care_model.inference.backends.flags import backend_overrides
    from care_model.jobs.retrain import _parser
    from care_model.training.config import config_overrides, resolve_config
    from care_model.training.evaluation import predictor_config
    from studio.launch import main as app_main

    assert app_main(["--store", str(tmp_path / "s"), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "--served-model" in capsys.readouterr().err and not (tmp_path / "s").exists()
    url = "http://127.0.0.1:9/v1"
    args = _parser().parse_args(["--store", "x", "--backend", "openai", "--base-url", url, "--served-model", "m",
                                 "--api-key-env", "LAB_KEY", "--eval-n-boot", "10"])
    config = resolve_config(None, {**backend_overrides(args), **config_overrides(args)})
    assert (config.predict_backend, config.predict_base_url, config.predict_served_model) == ("openai", url, "m")
    assert config.predict_api_key_env == "LAB_KEY" and config.decoding == "free"  # a plain server: free decoding
    predict = predictor_config(config)
    assert (predict.backend, predict.base_url, predict.served_model, predict.api_key_env) == ("openai", url, "m",
                                                                                             "LAB_KEY")
