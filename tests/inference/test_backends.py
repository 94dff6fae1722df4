"""care_model.inference.backends: the backend choice, the vLLM worker's protocol and the clear error
without the vLLM venv (all without vLLM itself; tests/inference/test_vllm_backend.py runs vLLM)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from care_model.inference.backends import BACKENDS, check_backend
from care_model.inference.backends.vllm_backend import WorkerProcess, vllm_python
from care_model.core.errors import ConfigError, ModelError
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.core.records import Session
from store import Repository
from store.formats import read_files

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [json.loads(line) for line in (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()]


def test_backend_names():
    assert BACKENDS == ("engine", "vllm", "openai") and check_backend("vllm") == "vllm"
    with pytest.raises(ConfigError, match="engine, vllm, openai"):
        Predictor(ModelSpec(), PredictConfig(backend="tgi"))


def test_missing_vllm_venv_names_make_setup_vllm(monkeypatch, tmp_path):
    monkeypatch.setenv("CARE_VLLM_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ModelError) as err:
        vllm_python()
    assert "make setup-vllm" in str(err.value)
    predictor = Predictor(ModelSpec(), PredictConfig(backend="vllm"))  # cheap: nothing starts yet
    with pytest.raises(ModelError, match="make setup-vllm"):
        predictor.predict_session(Session.from_dict(SAMPLES[0]))


def test_predict_command_without_vllm_venv_fails_clearly_and_leaves_the_store(tmp_path):
    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.import_batch(read_files([ROOT / "data" / "sessions.jsonl"], "jsonl"))
    before = (store).stat().st_mtime_ns, sorted(p.name for p in store.iterdir())
    env = dict(os.environ, CARE_VLLM_PYTHON=str(tmp_path / "missing" / "python"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "care_model.jobs.predict", "--store", str(store), "--backend", "vllm",
                           "--session", SAMPLES[0]["id"]], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "make setup-vllm" in proc.stderr and "Traceback" not in proc.stderr
    with Repository(store) as repo:
        assert repo.predictions(SAMPLES[0]["id"]) == []
    assert sorted(p.name for p in store.iterdir()) == before[1]


def test_help_lists_the_backend_options():
    out = subprocess.run([sys.executable, "-m", "care_model.jobs.predict", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120).stdout
    for flag in ("--backend {engine,vllm,openai}", "--tensor-parallel", "--data-parallel", "--base-url"):
        assert flag in out


def test_engine_predictions_say_how_they_were_decoded(tiny_model_dir):
    """Through the shared post-processing: grounded rows are labelled grounded, the rest free."""
    session = Session.from_dict(SAMPLES[2])
    free = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=6, decoding="free"))
    assert {p.decoding for p in free.predict_session(session, items=[1, 2])} == {"free"}
    assert {p.decoding for p in free.predict_session(session, items=[1], scores_only=True)} == {"free"}


def test_worker_protocol_without_vllm(monkeypatch):
    """The worker speaks JSON lines on its own stream even when libraries print; errors come back
    as replies (ModelError here), never as a hung pipe. Runs the worker in this venv: no model is
    loaded, so vllm is never imported."""
    monkeypatch.setenv("CARE_VLLM_PYTHON", sys.executable)
    worker = WorkerProcess()
    try:
        assert worker.call({"op": "ping"}) == {"ok": True, "loaded": False}
        with pytest.raises(ModelError, match="not loaded"):
            worker.call({"op": "generate", "requests": []})
        with pytest.raises(ModelError, match="unknown op"):
            worker.call({"op": "dance"})
        worker.proc.stdin.write("{not json\n")
        worker.proc.stdin.flush()
        assert "bad JSON" in worker._read()["error"]
        assert worker.call({"op": "ping"})["ok"]
    finally:
        worker.close(timeout=20)
    assert worker.proc.returncode == 0
    with pytest.raises(ModelError, match="not running"):
        worker.call({"op": "ping"})


def test_a_worker_without_the_grounding_processor_refuses_grounded_requests_and_says_why(monkeypatch):
    """The model still loads for scores and free decoding when the processor cannot be registered
    (here: vllm is not importable, or the V2 model runner is forced); grounded requests are refused
    with the reason, before anything reaches vLLM."""
    from care_model.inference.backends.vllm_worker import Worker

    monkeypatch.delenv("VLLM_USE_V2_MODEL_RUNNER", raising=False)
    ok, why = Worker._grounding_available()
    assert not ok and "does not import" in why  # this venv has no vllm
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "1")
    ok, why = Worker._grounding_available()
    assert not ok and "V2 model runner" in why
    worker = Worker()
    worker.llm = object()  # "loaded", without grounding
    worker.grounding, worker.grounding_unavailable = False, why
    reply = worker.generate({"requests": [{"prompt_token_ids": [1], "max_tokens": 4},
                                          {"prompt_token_ids": [1], "max_tokens": 4, "grounding": {"row": {}}}]})
    assert reply["ok"] is False and reply["kind"] == "Grounding" and reply["request"] == 1
    assert "V2 model runner" in reply["error"]


def test_app_with_vllm_backend_but_no_venv_stops_at_start(tmp_path):
    env = dict(os.environ, CARE_VLLM_PYTHON=str(tmp_path / "missing" / "python"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "annotate_app.py", "--store", str(tmp_path / "store"), "--backend", "vllm"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "make setup-vllm" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "store").exists(), "the store is not created when the app cannot start"


def test_data_parallel_spreads_sessions_over_the_workers(monkeypatch, tiny_model_dir):
    """``--data-parallel 2``: two worker processes, each session predicted once, both workers used.
    Real worker processes (in this venv, so without a model: they answer pings); the prediction
    function stands in for the model call and reports which worker its thread was given."""
    from care_model.inference.backends.vllm_backend import VllmBackend, close_all

    monkeypatch.setenv("CARE_VLLM_PYTHON", sys.executable)
    backend = VllmBackend(ModelSpec(base=str(tiny_model_dir)), PredictConfig(backend="vllm", data_parallel=2),
                          model_version="tiny")
    group = backend.group()
    group.workers = [WorkerProcess(), WorkerProcess()]
    try:
        import time

        def predict_one(session):
            worker = backend._local.worker
            assert worker.call({"op": "ping"})["ok"]
            time.sleep(0.3)  # long enough that both workers are busy at once
            return worker.pid

        sessions = [Session.from_dict(d) for d in SAMPLES[:6]]
        done = list(backend.spread(sessions, predict_one))
        assert sorted(s.id for s, _ in done) == sorted(s.id for s in sessions)
        assert {pid for _, pid in done} == {w.pid for w in group.workers}
        assert list(backend.spread([], predict_one)) == []
    finally:
        close_all()
