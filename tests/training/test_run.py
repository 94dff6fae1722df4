"""Retraining: config and recipes, training data built as inference builds it, a run that learns,
cancel and resume, the distributed path (2 CPU processes) and the command line.

Real models throughout: the tiny random Llama (tests/tiny_model.py), real peft, real accelerate.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from care_model.training import versions as V
from care_model.text.curation import CuratedLabel
from care_model.core.errors import ConfigError
from care_model.core.records import Turn
from care_model.training.run import execute_run, finish_run, launch_subprocess, prepare_run
from care_model.jobs.retrain import main
from care_model.training.config import RetrainConfig, load_recipe, resolve_config
from care_model.training.evaluation import predictor_config
from care_model.training.runs import last_checkpoint, read_events, read_json, read_progress, request_cancel
from rule_stores import make_rule_store, rule_sessions
from tiny_model import _EN, build_tiny_model
from store import Repository

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread (tests/training/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def learnable_model(tmp_path_factory):
    """The tiny Llama with weights drawn at std 0.08 instead of 0.02.

    At 0.02 the frozen output layer of a 64-wide random model caps every logit near +-1.3, so no
    adapter can make it prefer one option clearly; at 0.15 its attention is so peaked that moving
    a turn changes the last hidden state more than the phrase does. 0.08 sits between the two.
    """
    return build_tiny_model(tmp_path_factory.mktemp("learnable") / "tiny", seed=0, initializer_range=0.08)


# Plain supervised fine-tuning (score_weight 1); the rule is learned after 60-80 steps with seeds 0, 1, 2.
LEARN = dict(lora_r=16, lora_alpha=32, lora_dropout=0.0, learning_rate=5e-3, lr_scheduler="cosine", warmup_ratio=0.0,
             lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
             validation_fraction=0.25, max_steps=120, eval_n_boot=0, eval_scores_only=True)


# ----------------------------------------------------------------------------- config
def test_recipes_resolve_and_flags_override():
    cpu = resolve_config(ROOT / "recipes/cpu-smoke.yaml")
    assert cpu.base_model == "smollm2" and cpu.max_steps == 10
    assert cpu.score_sources == ["client_self_report"] and cpu.rationales == "curated_or_none"
    gpu = resolve_config(ROOT / "recipes/gpu-llama31-8b.yaml", {"learning_rate": "3e-5",
                                                                "lora_target_modules": "q_proj,v_proj"})
    assert gpu.dtype == "bfloat16" and gpu.gradient_checkpointing and gpu.max_prompt_tokens == 8192
    assert gpu.learning_rate == 3e-5 and gpu.lora_target_modules == ["q_proj", "v_proj"]
    assert resolve_config(None, {"max_steps": "none"}).max_steps is None
    assert RetrainConfig.help()["lora_r"]
    assert cpu.decoding == "grounded" and gpu.decoding == "free" and RetrainConfig().decoding == "grounded"
    assert predictor_config(cpu).decoding == "grounded" and predictor_config(gpu).decoding == "free"


def test_unknown_and_bad_keys_are_errors(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("lora_rank: 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lora_rank.*did you mean 'lora_r'"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="Unknown config key"):
        resolve_config(None, {"epochs": 3})
    with pytest.raises(ConfigError, match="learning_rate='fast' is not a valid float"):
        resolve_config(None, {"learning_rate": "fast"})
    with pytest.raises(ConfigError, match="lr_scheduler"):
        RetrainConfig(lr_scheduler="wavy")
    with pytest.raises(ConfigError, match="flash_attention_2"):
        RetrainConfig(attn_implementation="flash_attention_2")
    with pytest.raises(ConfigError, match="decoding.*'grounded'"):
        RetrainConfig(decoding="beam")
    with pytest.raises(ConfigError, match="predict_backend='tgi'.*Use one of engine, vllm"):
        RetrainConfig(predict_backend="tgi")
    from care_model.training.evaluation import predictor_config

    assert predictor_config(RetrainConfig(predict_backend="vllm")).backend == "vllm"  # what held-out predictions use
    assert predictor_config(RetrainConfig()).backend == "engine"
    assert main(["--store", str(tmp_path), "--lora-rank", "8"]) == 2


def test_recipes_say_which_score_sources_they_learn_from(tmp_path):
    assert RetrainConfig().score_sources == ["client_self_report"] and RetrainConfig().rationales == "curated"
    both = resolve_config(None, {"score_sources": "expert,client_self_report"})
    assert both.score_sources == ["client_self_report", "expert"]
    old = tmp_path / "old.yaml"
    old.write_text("self_reports: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="removed key 'self_reports'.*score_sources.*curated_or_none"):
        resolve_config(old)
    with pytest.raises(ConfigError, match="score_sources=.*invalid.*known sources"):
        resolve_config(None, {"score_sources": "clients"})
    with pytest.raises(ConfigError, match="Unknown rationales policy"):
        resolve_config(None, {"rationales": "maybe"})
    with pytest.raises(ConfigError, match="leave client_self_report out"):
        resolve_config(None, {"score_sources": "expert", "rationales": "curated_or_none"})


# ----------------------------------------------------------------------------- data
def test_training_tokens_are_the_inference_tokens(tiny_model_dir):
    """Prompt ids equal the Predictor's, labels cover only the answer, packing does not change the loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from care_model.inference.models import ModelSpec
    from care_model.inference.predictor import PredictConfig, Predictor
    from care_model.training.data import (IGNORE, answer_loss, collate, item_rows, packed_row, score_positions,
        session_tokens)

    long = rule_sessions(1)[0]
    long.turns = [Turn(i, ("counselor", "client")[i % 2], _EN[i % len(_EN)]) for i in range(60)]
    labels = [CuratedLabel(long.id, k, 1 + k % 5, f"Because of [{k}] \"quote {k}\".") for k in range(1, 13)]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    predictor = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=40, max_prompt_tokens=900))
    prompt = predictor.session_prompt(long)
    assert prompt.warnings, "the 60-turn transcript must be cut at 900 tokens"
    prefix_ids, suffix_ids = predictor.engine().encode_prompt(prompt)
    st = session_tokens(long, labels, tok, model_config=model.config, max_prompt_tokens=900, answer_reserve_tokens=40)
    assert st.prefix_ids == prefix_ids and st.warnings == prompt.warnings
    assert {it.item: it.suffix_ids for it in st.items} == suffix_ids
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    for it in st.items:
        assert it.answer_ids[-1] == eot
        assert tok.decode(it.answer_ids[:-1]).startswith(f"{it.score}\nBecause of [{it.item}]")
    rows = item_rows(st)
    for row, it in zip(rows, st.items):
        n_prompt = len(st.prefix_ids) + len(it.suffix_ids)
        assert row["labels"][:n_prompt] == [IGNORE] * n_prompt and row["labels"][n_prompt:] == it.answer_ids
    with torch.no_grad():
        packed, n1 = answer_loss(model, collate([packed_row(st)], tok.pad_token_id), reduction="sum")
        separate, n2 = answer_loss(model, collate(rows, tok.pad_token_id), reduction="sum")
    assert n1 == n2 == sum(len(it.answer_ids) for it in st.items)
    assert float(packed) == pytest.approx(float(separate), rel=1e-4)
    # score_weight w counts each item's score token w times: sum + (w - 1) * (score tokens' loss)
    batch = collate([packed_row(st)], tok.pad_token_id)
    only_scores = dict(batch, labels=torch.where(score_positions(batch["labels"]), batch["labels"], IGNORE))
    with torch.no_grad():
        weighted, _ = answer_loss(model, batch, reduction="sum", score_weight=3.0)
        scores, n_scores = answer_loss(model, only_scores, reduction="sum")
    assert n_scores == 12
    assert float(weighted) == pytest.approx(float(packed) + 2 * float(scores), rel=1e-4)


# ----------------------------------------------------------------------------- it learns
def test_retraining_learns_a_rule_the_base_model_does_not_know(tmp_path, learnable_model):
    """Scores follow a phrase in the transcript; after retraining, held-out clients are scored right."""
    store = make_rule_store(tmp_path / "store")
    flags = [f"--{k.replace('_', '-')}={','.join(v) if isinstance(v, list) else v}" for k, v in LEARN.items()]
    t0 = time.perf_counter()
    assert main(["--store", str(store), "--base-model", str(learnable_model), "--run-id", "learn", "--actor", "boss",
                 *flags]) == 0
    seconds = time.perf_counter() - t0
    run = read_json(store / "runs" / "learn" / "run.json")
    assert run["status"] == "done" and run["steps"] == 120
    m = run["metrics"]
    print(f"\nlearning run: {seconds:.1f} s; validation loss {m['validation_loss_before']:.3f} -> "
          f"{m['validation_loss_after']:.3f}; held-out {m['evaluation']}")
    assert m["validation_loss_after"] < 0.6 * m["validation_loss_before"]
    cand, base = m["evaluation"]["candidate"], m["evaluation"]["baseline"]
    assert cand["experts.exact"] >= 0.9
    assert cand["experts.exact"] - base["experts.exact"] >= 0.4
    assert cand["goal.pearson"] > 0.9 and cand["task.pearson"] > 0.9 and cand["bond.pearson"] > 0.9

    # By session (the 12 items of a session share one transcript, so they are not independent): a
    # session is right when its mean predicted score is on the side of its true score; a guesser
    # that ignores the transcript gets each held-out session right with probability 1/2 at best.
    split = run["split"]
    assert not set(split["train_clients"]) & set(split["validation_clients"])
    # the candidate's own calibration choice, by the fixed rule, on these held-out sessions
    from care_model.stats.calibration_rule import RULE

    choice = run["evaluation"]["versions"]["candidate"]["calibration"]
    assert choice["rule"] == RULE and choice["choice"] in ("none", "content-free") and choice["reason"]
    assert choice["model_version"] == run["evaluation"]["versions"]["candidate"]["version_id"]
    assert "calibration" not in run["evaluation"]["versions"]["baseline"]
    preds = [json.loads(line) for line in open(run["evaluation"]["predictions_file"], encoding="utf-8")]
    truth = {s.id: s.ratings["client"][1] for s in rule_sessions(32)}
    held_out = split["validation"]
    assert len(held_out) >= 8 and {truth[s] for s in held_out} == {1, 5}
    def mean_score(sid):
        scores = [p["score"] for p in preds if p["role"] == "candidate" and p["session_id"] == sid]
        assert len(scores) == 12
        return sum(scores) / 12

    right = sum((mean_score(s) > 3) == (truth[s] == 5) for s in held_out)
    p_value = sum(math.comb(len(held_out), k) for k in range(right, len(held_out) + 1)) / 2 ** len(held_out)
    assert p_value < 0.01, (right, len(held_out))

    with Repository(store) as repo:                     # registered as a candidate, with lineage
        doc = V.get_version(repo, run["version_id"])
        assert doc["status"] == "candidate" and doc["data_hash"] == run["data_hash"]
        assert doc["parent"] == run["baseline"]["version_id"] and doc["metrics"]["validation_loss_after"]
        assert repo.collection("training_runs").get("learn")["status"] == "registered"
        V.promote(repo, doc["id"], actor="boss")
        assert V.active_spec(repo).adapter == doc["adapter"]


# ----------------------------------------------------------------------------- loss per token
def test_accumulated_micro_batches_give_the_gradient_of_one_large_batch(tiny_model_dir):
    """Gradient accumulation normalises by the answer tokens of the whole step: four micro-batches of
    one row each give the gradient of one batch of the four rows, however long each row's answer."""
    import random

    import torch

    from care_model.training.run import make_accelerator
    from care_model.training.data import answer_loss, collate
    from care_model.training.loop import accumulate_gradients, load_for_training

    accelerator = make_accelerator()
    tokenizer, model = load_for_training(RetrainConfig(base_model=str(tiny_model_dir), lora_dropout=0.0), accelerator)
    gen = torch.Generator().manual_seed(0)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for p in trainable.values():  # LoRA's B starts at zero (so A would get no gradient): draw both
        p.data.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    rng = random.Random(0)

    def row(n, answer):
        ids = [rng.randrange(5, tokenizer.vocab_size) for _ in range(n)]
        return {"input_ids": ids, "labels": [-100] * (n - answer) + ids[n - answer:], "position_ids": list(range(n)),
                "packed": False}

    rows = [row(40, 1), row(25, 3), row(50, 12), row(60, 30)]  # 1 to 30 answer tokens
    pad = tokenizer.pad_token_id

    def grads(fn):
        model.zero_grad(set_to_none=True)
        loss = fn()
        return loss, {n: p.grad.detach().clone() for n, p in trainable.items()}

    def per_micro_batch_mean(weight):  # the old rule: each micro-batch's mean, divided by their number
        for r in rows:
            loss, _ = answer_loss(model, collate([r], pad), score_weight=weight)
            (loss / len(rows)).backward()

    for weight in (1.0, 3.0):
        big_loss, big = grads(lambda: accumulate_gradients(model, [rows], accelerator, pad, torch.float32, weight))
        acc_loss, acc = grads(lambda: accumulate_gradients(model, [[r] for r in rows], accelerator, pad, torch.float32,
                                                           weight))
        assert acc_loss == pytest.approx(big_loss, rel=1e-5)
        scale = max(g.abs().max().item() for g in big.values())
        for name in big:
            assert torch.allclose(acc[name], big[name], rtol=1e-4, atol=1e-5 * scale), name
        _, old = grads(lambda: per_micro_batch_mean(weight))  # the test tells the two rules apart
        assert max((old[n] - big[n]).abs().max().item() for n in big) > 100 * 1e-5 * scale


# ----------------------------------------------------------------------------- cancel and resume
def _wait_for(predicate, timeout=240.0, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def _adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def _cancel_config(tiny_model_dir) -> RetrainConfig:
    return RetrainConfig(base_model=str(tiny_model_dir), max_steps=16, lora_dropout=0.1, learning_rate=1e-3,
                         validation_fraction=0.25, evaluate=False, save_every_steps=4, keep_checkpoints=1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir) -> dict:
    """The run a cancelled and resumed run must equal: the same rule store (8 sessions) and config,
    prepared in a store of its own and run straight through; trained once for both ways of cancelling."""
    from studio_testing import one_torch_thread

    store = make_rule_store(tmp_path_factory.mktemp("uninterrupted") / "store", n=8)
    with Repository(store) as repo:
        run_b = prepare_run(repo, _cancel_config(tiny_model_dir), run_id="b", actor="boss")
    with one_torch_thread():
        return execute_run(run_b)


def test_sigterm_and_ctrl_c_raise_the_loops_cancel_flag_and_the_old_handlers_come_back():
    """The loop checks ``stop.signalled or cancel_requested(run_dir)`` before every step, so a signal
    cancels exactly as the CANCEL file does (the real trainer cancelled by SIGTERM, then resumed:
    the ``sigterm`` case below, marked slow; the file case runs by default)."""
    from care_model.training.loop import _Stop

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with _Stop() as stop:
            assert not stop.signalled
            os.kill(os.getpid(), sig)
            deadline = time.monotonic() + 5
            while not stop.signalled and time.monotonic() < deadline:  # delivered between bytecodes
                time.sleep(0.01)
            assert stop.signalled
        assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("how", ["file", pytest.param("sigterm", marks=pytest.mark.slow)])
def test_cancel_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_model_dir, uninterrupted, how):
    store = make_rule_store(tmp_path / "store", n=8)
    with Repository(store) as repo:
        run_a = prepare_run(repo, _cancel_config(tiny_model_dir), run_id="a", actor="boss")
    proc = launch_subprocess(run_a, env={"HF_HUB_OFFLINE": "1"})
    try:
        assert _wait_for(lambda: read_progress(run_a).step >= 3 or proc.poll() is not None)
        if how == "file":
            request_cancel(run_a, "boss")
        else:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    progress = read_progress(run_a)
    assert progress.status == "cancelled" and 3 <= progress.step < 16, (run_a / "train.log").read_text()
    assert read_json(run_a / "run.json")["status"] == "cancelled"
    assert last_checkpoint(run_a).name == f"step-{progress.step}"
    resumed = execute_run(run_a, resume=True)
    assert resumed["status"] == "done" and resumed["steps"] == 16
    starts = [e for e in read_events(run_a) if e["event"] == "start"]
    assert [s["start_step"] for s in starts] == [0, progress.step]
    straight = uninterrupted
    assert straight["status"] == "done" and straight["steps"] == 16
    a, b = _adapter_tensors(resumed["adapter"]), _adapter_tensors(straight["adapter"])
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key
    assert resumed["data_hash"] == straight["data_hash"]
    with Repository(store) as repo:
        version = finish_run(repo, run_a, actor="boss")
        assert version["status"] == "candidate"
        from care_model.training.calibration_choice import version_calibration
        from care_model.training.versions import get_version

        # this run was not evaluated: no calibration choice is recorded, so its predictions use none
        assert get_version(repo, version["id"]).get("calibration") is None
        assert version_calibration(repo, version["id"]) == "none"


# ----------------------------------------------------------------------------- distributed
def test_two_cpu_processes_with_gloo(tmp_path, tiny_model_dir):
    store = make_rule_store(tmp_path / "store", n=8)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the two processes' rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # accelerate launch --cpu runs ONE process whatever --num_processes says (its simple launcher);
    # torchrun starts the two ranks and Accelerator() joins them over gloo (MULTI_CPU).
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port),
           "-m", "care_model.jobs.retrain", "--store", str(store), "--base-model", str(tiny_model_dir), "--run-id",
           "ddp",
           "--max-steps", "3", "--save-every-steps", "2", "--validation-fraction", "0.25", "--evaluate", "false",
           "--actor", "boss"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(f"\ndistributed run: {time.perf_counter() - t0:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = store / "runs" / "ddp"
    events = read_events(run_dir)
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]        # written once, by the main process
    assert [e["world_size"] for e in events if e["event"] == "start"] == [2]
    assert (run_dir / "checkpoints" / "step-2" / "rng_1.pt").is_file()              # rank 1 ran and saved its state
    run = read_json(run_dir / "run.json")
    assert run["status"] == "done" and run["world_size"] == 2
    assert (Path(run["adapter"]) / "adapter_model.safetensors").is_file()
    with Repository(store) as repo:
        assert V.get_version(repo, run["version_id"])["status"] == "candidate"


def test_strategies_other_than_one_device_and_ddp_are_refused():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from care_model.training.run import make_accelerator
    from care_model.training.loop import check_strategy

    check_strategy(make_accelerator())  # one process: supported
    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(ConfigError, match=f"{kind.name} strategy.*Fix: Train on one device or with DDP"):
            check_strategy(SimpleNamespace(distributed_type=kind))


# ----------------------------------------------------------------------------- command line
def test_cli_refuses_what_it_cannot_do(tmp_path, tiny_model_dir, capsys):
    store = make_rule_store(tmp_path / "store", n=4)
    assert main(["--store", str(store), "--resume", "--learning-rate", "1"]) == 2
    assert "saved config" in capsys.readouterr().err
    with Repository(store):                               # the app holds the store
        assert main(["--store", str(store), "--base-model", str(tiny_model_dir)]) == 2
        assert "is open in" in capsys.readouterr().err
    assert main(["--run-dir", str(tmp_path / "nothing")]) == 2
    assert "not a prepared run" in capsys.readouterr().err
