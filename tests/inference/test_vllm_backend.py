"""The vLLM backend for real: SmolLM2 in vLLM (the worker in .venv-vllm) against our engine.

Slow (model loads take minutes on 2 cores) and needs ``make setup-vllm``: run by ``make test-vllm``
(and by CI when the venv can be made in time), never by ``make test`` or ``make test-slow``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from care_model.text.evidence import TranscriptIndex
from care_model.inference.models import ModelSpec, model_version_id
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.core.records import Session
from store import Repository
from store.formats import read_files

# model loads take minutes on 2 busy cores: well past pytest.ini's 900 s per test
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [Session.from_dict(json.loads(line))
           for line in (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()]
# the three shortest sample sessions (by transcript length), to keep the test to minutes
SHORT = sorted(SAMPLES, key=lambda s: (sum(len(t.text) for t in s.turns), s.id))[:3]
MAX_NEW = 64  # full grounded answers: score line, lead-in, a quote and the sentence after it


@pytest.fixture(scope="module", autouse=True)
def _needs_the_vllm_venv():
    from care_model.inference.backends.vllm_backend import vllm_python

    vllm_python()  # raises, naming `make setup-vllm`, instead of skipping: make test-vllm sets it up first
    yield
    from care_model.inference.backends.vllm_backend import close_all

    close_all()


def _argmax(p) -> int:
    return max(range(5), key=lambda k: p.probs[k]) + 1


def test_three_sessions_through_vllm_agree_with_the_engine(tmp_path):
    store = tmp_path / "store"
    with Repository(store) as repo:
        batch = read_files([ROOT / "data" / "sessions.jsonl"], "jsonl")
        batch.sessions = [s for s in batch.sessions if s.id in {x.id for x in SHORT}]
        repo.import_batch(batch)
    cmd = [sys.executable, "-m", "care_model.jobs.predict", "--store", str(store), "--backend", "vllm",
           "--max-new-tokens", str(MAX_NEW), "--json"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    counts = json.loads(first.stdout.strip().splitlines()[-1])
    assert counts["sessions"] == 3 and counts["predictions"] == 36 and counts["skipped"] == 0
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["skipped"] == 3  # resume

    # the engine, grounded as well (the default decoding): vLLM ran the same row constraint
    engine = Predictor(ModelSpec(), PredictConfig(max_new_tokens=MAX_NEW))
    version = model_version_id(ModelSpec())
    with Repository(store, create=False) as repo:
        stored = {s.id: {p.item: p for p in repo.predictions(s.id, version)} for s in SHORT}
    agree = same_text = same_parsed = quoted = 0
    worst = 0.0
    disagreements, text_diffs = [], []
    for session in SHORT:
        mine = stored[session.id]
        assert sorted(mine) == list(range(1, 13))
        index = TranscriptIndex(session.turns)
        for ref in engine.predict_session(session):
            got = mine[ref.item]
            assert got.model_version == version and got.prompt_hash == ref.prompt_hash  # same prompt, same version
            assert got.mode == "full" and got.decoding == "grounded" == ref.decoding
            assert got.candidate_turns == ref.candidate_turns
            worst = max(worst, max(abs(a - b) for a, b in zip(got.probs, ref.probs)))
            if _argmax(got) == _argmax(ref):
                agree += 1
            else:
                disagreements.append((session.id, ref.item, got.probs, ref.probs))
            if got.raw_output == ref.raw_output:
                same_text += 1
            else:
                text_diffs.append((session.id, ref.item, got.raw_output, ref.raw_output))
            same_parsed += got.score == ref.score
            # grounded inside vLLM: every quote verbatim from the transcript, linked to its turn
            assert got.parse_status == "ok" and got.rationale, got.raw_output
            assert got.unsupported_quotes == [] == index.link(got.rationale).unsupported, got.rationale
            assert got.evidence and set(got.evidence) <= set(got.candidate_turns), (got.evidence, got.candidate_turns)
            quoted += 1
    print(f"vLLM vs engine, grounded: chosen scores {agree}/36, written scores {same_parsed}/36, texts "
          f"{same_text}/36, quoted {quoted}/36, max option-probability difference {worst:.2e}; "
          f"disagreements: {disagreements}; text differences: {text_diffs}")
    assert agree >= 34, disagreements
    assert worst <= 0.02
    assert same_parsed >= 34 and same_text >= 30, text_diffs


def _random_adapter(out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from care_model.inference.model_files import smollm2_folder

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(smollm2_folder()))
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                     "o_proj"],
                                                 init_lora_weights=False, lora_dropout=0.0))
    with torch.no_grad():  # small enough to keep SmolLM2 talking, large enough to move the scores
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.5)
    peft_model.save_pretrained(str(out))
    return out


def test_lora_candidate_and_active_are_served_by_one_vllm_server(tmp_path):
    active = ModelSpec(adapter=str(_random_adapter(tmp_path / "run-active", 1)))
    candidate = ModelSpec(adapter=str(_random_adapter(tmp_path / "run-candidate", 2)))
    session = SHORT[0]
    cfg = PredictConfig(backend="vllm")
    results, stats = {}, {}
    for name, spec in (("active", active), ("candidate", candidate), ("base", ModelSpec())):
        predictor = Predictor(spec, cfg)
        results[name] = predictor.predict_session(session, scores_only=True)
        stats[name] = dict(predictor.vllm().last_stats)
        assert all(p.model_version == predictor.model_version for p in results[name])
    # each request carried its adapter (the worker reports the LoRA request vLLM served it with) ...
    assert stats["active"]["lora"] == [model_version_id(active)] * 12
    assert stats["candidate"]["lora"] == [model_version_id(candidate)] * 12
    assert stats["base"]["lora"] == [None] * 12
    # ... to one server: the same worker process for the two versions and the base
    assert stats["active"]["worker_pid"] == stats["candidate"]["worker_pid"] == stats["base"]["worker_pid"]

    def diff(a, b):
        return max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p.probs, q.probs))

    assert diff(results["active"], results["candidate"]) > 0.01 and diff(results["active"], results["base"]) > 0.01
    # and the adapter is applied as our engine (peft) applies it
    ref = Predictor(active, PredictConfig()).predict_session(session, scores_only=True)
    assert diff(results["active"], ref) <= 0.02
    assert sum(_argmax(a) == _argmax(b) for a, b in zip(results["active"], ref)) >= 11


def test_the_apps_predict_worker_uses_the_vllm_backend(tmp_path):
    from studio.bootstrap import ActivePredictor
    from studio.jobs import PredictJobs
    from studio_testing import make_store

    repo = make_store(tmp_path / "store", sessions=[SHORT[1]], predictions=False)
    predictor = ActivePredictor(repo, ModelSpec(), config=PredictConfig(backend="vllm"))
    jobs = PredictJobs(repo, predictor)
    try:
        job = jobs.wait(jobs.submit(SHORT[1].id, actor="admin", scores_only=True)["id"], timeout=1500)
        assert job["state"] == "done", job
        preds = repo.predictions(SHORT[1].id, predictor.model_version)
        assert len(preds) == 12 and all(len(p.probs) == 5 and p.mode == "scores_only" for p in preds)
        assert predictor.current().vllm().last_stats["cached_prompt_tokens"][1] > 0  # prefix shared in vLLM
        # free decoding in vLLM (same worker group) is labelled as the quote check it relies on
        free = Predictor(ModelSpec(), PredictConfig(backend="vllm", decoding="free", max_new_tokens=8))
        got = free.predict_session(SHORT[1], items=[1, 2])
        assert [p.decoding for p in got] == ["free+quote-check"] * 2 and got[0].candidate_turns == []
        # a grounded row made for another tokenizer is refused by name, and the worker goes on serving
        from care_model.core.errors import ModelError
        from care_model.inference.modes import grounding_rows

        backend = free.vllm()
        prompt = free.session_prompt(SHORT[1], [1, 2])
        rows, _ = grounding_rows(backend, SHORT[1], [1, 2], PredictConfig())

        class Forged:  # the spec of row 2, claiming another vocabulary
            vocab = rows[2].vocab

            def spec(self):
                return dict(rows[2].spec(), vocabulary="0" * 16)

        with pytest.raises(ModelError, match="item 2: .*another vocabulary"):
            backend.run(prompt, scores_only=False, max_new_tokens=8, rows={1: rows[1], 2: Forged()})
        again = backend.run(prompt, scores_only=False, max_new_tokens=8, rows=grounding_rows(
            backend, SHORT[1], [1, 2], PredictConfig())[0])
        assert sorted(again) == [1, 2] and backend.last_stats["grounding_violations"] == 0
    finally:
        jobs.close()
        repo.close()


def test_two_data_parallel_replicas_split_the_sessions_and_agree_with_one():
    """``data_parallel=2`` for real: two vLLM replicas of SmolLM2, four sessions spread over them
    (both replicas serve), grounded answers identical to the single replica's."""
    sessions = sorted(SAMPLES, key=lambda s: (sum(len(t.text) for t in s.turns), s.id))[:4]
    one = Predictor(ModelSpec(), PredictConfig(backend="vllm", max_new_tokens=24))
    two = Predictor(ModelSpec(), PredictConfig(backend="vllm", max_new_tokens=24, data_parallel=2))
    backend = two.vllm()
    served = {}

    def predict_one(session):
        served[session.id] = backend._local.worker.pid
        return two.predict_session(session)

    try:
        got = list(backend.spread(sessions, predict_one))
        assert sorted(s.id for s, _ in got) == sorted(s.id for s in sessions)
        assert len(set(served.values())) == 2, served  # both replicas did work
        backend.close()  # one replica group at a time on 2 cores
        for session, preds in got:
            ref = one.predict_session(session)
            assert [p.raw_output for p in preds] == [p.raw_output for p in ref], session.id
            assert all(p.decoding == "grounded" and not p.unsupported_quotes for p in preds)
    finally:
        backend.close()
        one.close()


def test_crossval_predicts_its_held_out_folds_through_vllm(tmp_path):
    """``--predict-backend vllm``: each fold's adapter is served to vLLM as a LoRA adapter and its
    held-out scores equal our engine's (peft) for the same adapter; the workers stop after each
    version's predictions, so no vLLM process is left when the run ends."""
    from care_model.inference.backends import vllm_backend
    from care_model.training.crossval import fold_dir
    from care_model.jobs.crossval import main
    from care_model.training.evaluation import predictor_config
    from care_model.training.config import RetrainConfig
    from care_model.training.runs import read_json
    from rule_stores import make_cv_store

    store = make_cv_store(tmp_path / "store")
    argv = ["--store", str(store), "--folds", "2", "--base-model", "smollm2", "--cv-id", "cvv", "--actor", "boss",
            "--json", "--max-steps", "2", "--eval-n-boot", "50", "--save-every-steps", "0", "--max-prompt-tokens",
            "1024", "--lora-last-layers", "4", "--predict-backend", "vllm"]
    assert main(argv) == 0
    assert not any(g.workers for g in vllm_backend._GROUPS.values()), "a vLLM worker outlived its predictions"
    cv_dir = store / "crossval" / "cvv"
    config = RetrainConfig.from_dict(read_json(cv_dir / "config.json")["config"])
    assert config.predict_backend == "vllm"
    run = read_json(fold_dir(cv_dir, 0) / "run.json")
    got = read_json(fold_dir(cv_dir, 0) / "predictions.json")["predictions"]
    with Repository(store, create=False) as repo:
        test = sorted({p["session_id"] for p in got})
        sessions = [repo.get_session(sid) for sid in test]
    engine = Predictor(ModelSpec(base="smollm2", adapter=run["adapter"]),
                       PredictConfig(**{**vars(predictor_config(config)), "backend": "engine"}))
    ref = {(p.session_id, p.item): p for s in sessions for p in engine.predict_session(s, scores_only=True)}
    assert len(ref) == len(got) == 12 * len(test)
    worst = max(abs(a - b) for p in got for a, b in zip(p["probs"], ref[(p["session_id"], p["item"])].probs))
    agree = sum(max(range(5), key=p["probs"].__getitem__) + 1 == _argmax(ref[(p["session_id"],
                                                                              p["item"])]) for p in got)
    assert worst <= 0.02 and agree >= len(got) - 1, (worst, agree, len(got))
    assert {p["model_version"] for p in got} == {engine.model_version}
