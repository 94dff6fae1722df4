"""The DPO stage after SFT (care_model.training.dpo): pairs frozen from the training sessions only, tokens
exactly the SFT stage's, the config keys, what a cross-validation fold predicts, and (slow) the stage
itself and a whole cross-validation with it on the tiny random Llama. Real parts: a real store, the
tiny model's real tokenizer, TRL's DPOTrainer and collator, peft.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from care_model.core.errors import ConfigError, TrainingError
from care_model.core.records import SHARED, Label, Prediction
from care_model.text.curation import CuratedLabel
from care_model.text.snapshot import take_snapshot
from care_model.training.config import RetrainConfig, resolve_config
from care_model.training.dpo import dpo_rows, pick_rows, read_pairs, write_pairs
from rule_stores import BAD, GOOD, rule_sessions

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread (tests/training/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
WRONG = "3\nThe client is unsure about it."


def _right(score: int) -> str:
    return f'The client said "{GOOD if score == 5 else BAD}".'


def _pairs(sessions, items=(1, 2)) -> list[dict]:
    """Hand-built pairs in preference_pairs' shape: chosen conversational, rejected standard (both occur)."""
    out = []
    for s in sessions:
        score = s.ratings["client"][1]
        for item in items:
            out.append({"session_id": s.id, "item": item, "chosen_score": score, "rejected_score": 3,
                        "chosen": [{"role": "assistant", "content": f"{score}\n{_right(score)}"}],
                        "rejected": WRONG})
    return out


def corrections_store(repo, n: int = 12) -> list:
    """Sessions whose model said 3 with a vague reason; experts corrected it to the client's score.
    Item 12 was saved unchanged (accepted): a label, but no correction."""
    sessions = rule_sessions(n)
    repo.add_sessions(sessions)
    for s in sessions:
        preds = [Prediction(id=f"{s.id}-p{k}", session_id=s.id, item=k, model_version="m0", score=3,
                            rationale=WRONG.split("\n")[1]) for k in range(1, 13)]
        repo.add_predictions(preds)
        score = s.ratings["client"][1]
        repo.save_labels([(Label(session_id=s.id, item=k, annotator=SHARED, score=score,
                                 rationale=_right(score) if k < 12 else preds[k - 1].rationale, status="submitted",
                                 prediction_id=preds[k - 1].id, score_source="client_self_report",
                                 rationale_source=("edited" if k % 2 else "expert") if k < 12 else "accepted"), 0)
                          for k in range(1, 13)], actor="boss")
    return sessions


# ----------------------------------------------------------------------------- fast
def test_dpo_rows_are_exactly_the_sft_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    from care_model.training.data import IGNORE, item_rows, session_tokens

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    sessions = {s.id: s for s in rule_sessions(2)}
    config = RetrainConfig(base_model=str(tiny_model_dir), max_prompt_tokens=2048, max_answer_tokens=64)
    rows = dpo_rows(_pairs(sessions.values()), sessions, tok, config)
    assert [(r["session_id"], r["item"]) for r in rows] == [("rule-00", 1), ("rule-00", 2), ("rule-01", 1),
                                                            ("rule-01", 2)]
    for r in rows:
        s = sessions[r["session_id"]]
        score = s.ratings["client"][1]
        cur = CuratedLabel(s.id, r["item"], score, _right(score))
        sft = item_rows(session_tokens(s, [cur], tok, max_prompt_tokens=2048, max_answer_tokens=64))[0]
        # prompt + chosen is the SFT example of the curated answer, token for token
        assert r["prompt_ids"] + r["chosen_ids"] == sft["input_ids"]
        assert len(r["chosen_ids"]) == sum(lab != IGNORE for lab in sft["labels"])
        assert tok.decode(r["rejected_ids"]) == WRONG + "<|im_end|>"
        assert r["chosen_ids"][-1] == r["rejected_ids"][-1] == tok.convert_tokens_to_ids("<|im_end|>")
    # the same prompt for both answers of an item, a different one per item
    assert rows[0]["prompt_ids"] != rows[1]["prompt_ids"]
    # answers are cut to max_answer_tokens (end of turn kept), as SFT cuts them
    short = dpo_rows(_pairs([sessions["rule-00"]], (1,)), sessions, tok, config.replace(max_answer_tokens=4))[0]
    assert len(short["chosen_ids"]) == 4 and short["chosen_ids"][-1] == rows[0]["chosen_ids"][-1]
    with pytest.raises(TrainingError, match="not in the run's snapshot"):
        dpo_rows(_pairs(rule_sessions(3)[2:]), sessions, tok, config)
    # the stage's budget: steps x batch pairs, seeded, all of them when fewer
    assert pick_rows(rows, 3, 0) == pick_rows(rows, 3, 0) and len(pick_rows(rows, 10, 0)) == 4


def test_pairs_are_frozen_from_the_training_sessions_only(repo, tmp_path):
    sessions = corrections_store(repo, n=4)
    config = RetrainConfig(dpo_steps=2)
    snapshot = take_snapshot(repo, rationale_provenance=["expert", "edited", "accepted"])
    train = [sessions[0].id, sessions[2].id]
    header = write_pairs(repo, snapshot, train, config, tmp_path)
    got_header, pairs = read_pairs(tmp_path)
    assert got_header == header
    assert {p["session_id"] for p in pairs} == set(train)              # never a held-out session
    assert header["n_pairs"] == len(pairs) == 2 * 11                    # item 12 was accepted, not corrected
    assert header["skipped"]["provenance"] == 2 and header["score_differs"] == 22
    p = pairs[0]
    assert p["chosen_score"] == sessions[0].ratings["client"][1] and p["rejected_score"] == 3
    assert p["rejected"][0]["content"] == WRONG and p["prediction_id"] == f"{sessions[0].id}-p1"
    # naming accepted in dpo_provenance makes the accepted label a pair only where its text differs: it does not
    _, more = write_pairs(repo, snapshot, train, config.replace(dpo_provenance=["expert", "edited", "accepted"]),
                          tmp_path), read_pairs(tmp_path)[1]
    assert len(more) == 22
    with pytest.raises(TrainingError, match="no preference_pairs.jsonl"):
        read_pairs(tmp_path / "elsewhere")


def test_a_prepared_retraining_run_freezes_the_pairs_of_its_training_split(repo, tmp_path, tiny_model_dir):
    from care_model.training.run import prepare_run
    from care_model.training.runs import read_json, run_path

    corrections_store(repo, n=6)
    config = RetrainConfig(base_model=str(tiny_model_dir), dpo_steps=2, validation_fraction=0.34)
    run_dir = prepare_run(repo, config, run_dir=tmp_path / "run", actor="boss")
    split = read_json(run_path(run_dir, "split"))
    header, pairs = read_pairs(run_dir)
    assert split["validation"] and {p["session_id"] for p in pairs} == set(split["train"])
    assert read_json(run_path(run_dir, "config"))["dpo_pairs"] == header and header["n_pairs"] == len(pairs)
    plain = prepare_run(repo, config.replace(dpo_steps=0), run_dir=tmp_path / "plain", actor="boss")
    assert not (plain / "preference_pairs.jsonl").exists()


def test_the_dpo_keys_of_the_recipe():
    assert RetrainConfig().dpo_stage() is None                          # SFT only unless asked
    stage = RetrainConfig(dpo_steps=3, dpo_beta=0.2, dpo_provenance="edited").dpo_stage()
    assert (stage.steps, stage.beta, stage.provenance, stage.loss_type) == (3, 0.2, ("edited",), "sigmoid")
    recipe = resolve_config(ROOT / "recipes" / "cpu-dpo-smoke.yaml", {"dpo_steps": "4"})
    assert recipe.dpo_stage().steps == 4 and recipe.base_model == "smollm2"
    for bad, match in (({"dpo_loss_type": "kto"}, "dpo_loss_type"), ({"dpo_beta": 0}, "dpo_beta"),
                       ({"dpo_steps": -1}, "dpo_steps"), ({"dpo_provenance": ["typed"]}, "dpo_provenance")):
        with pytest.raises(ConfigError, match=match):
            RetrainConfig(**bad)
    assert "DPO" in RetrainConfig.help()["dpo_steps"]


def test_a_fold_with_a_dpo_stage_predicts_sft_alone_sft_dpo_and_the_base_model(tmp_path):
    from care_model.training.crossval import DPO_PREDICTIONS, fold_systems

    run = {"adapter": "/r/adapter-dpo", "dpo": {"sft_adapter": "/r/adapter"}}
    got = fold_systems(RetrainConfig(base_model="b", dpo_steps=2), run, tmp_path)
    assert [(spec.adapter, path.name) for _, spec, path in got] == [
        ("/r/adapter", "predictions.json"), ("/r/adapter-dpo", DPO_PREDICTIONS), (None, "base_predictions.json")]
    plain = fold_systems(RetrainConfig(base_model="b"), {"adapter": "/r/adapter"}, tmp_path)
    assert [(spec.adapter, path.name) for _, spec, path in plain] == [
        ("/r/adapter", "predictions.json"), (None, "base_predictions.json")]


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_dpo_steps_raise_the_chosen_answers_margin_on_the_tiny_model(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from care_model.training.dpo import run_dpo_stage
    from care_model.training.loop import load_for_training
    from care_model.training.run import make_accelerator

    config = RetrainConfig(base_model=str(tiny_model_dir), dtype="float32", max_prompt_tokens=2048,
                           max_answer_tokens=64, dpo_steps=4, dpo_beta=0.5, dpo_learning_rate=5e-3)
    tok, model = load_for_training(config, make_accelerator())
    sessions = {s.id: s for s in rule_sessions(4)}
    pairs = _pairs(sessions.values())
    rows = dpo_rows(pairs, sessions, tok, config)
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(rows[:2])   # TRL's collator on our rows
    assert batch["completion_mask"].sum(1).tolist() == [len(r["chosen_ids"]) for r in rows[:2]] + [
        len(r["rejected_ids"]) for r in rows[:2]]
    events = []
    result = run_dpo_stage(tmp_path, config, model, tok, pairs, sessions,
                           progress=lambda event, **kw: events.append((event, kw)))
    assert result.n_pairs_available == 8 and result.n_pairs_used == 4 and len(result.losses) == 4
    assert result.margin_after > result.margin_before and result.pairs_preferred_after == 1.0
    assert result.losses[-1] < result.losses[0]
    assert [e for e, _ in events].count("dpo_step") == 4 and events[-1][0] == "dpo_done"
    saved = Path(result.adapter_dir)
    assert json.loads((saved / "adapter_config.json").read_text())["r"] == config.lora_r
    assert not (saved / "ref").exists()                                 # the frozen reference is not saved
    assert not (tmp_path / "dpo").exists()                              # nor TRL's empty output folder
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    loaded = PeftModel.from_pretrained(base, str(saved))
    assert list(loaded.peft_config) == ["default"]
    AutoTokenizer.from_pretrained(str(saved))


@pytest.mark.slow
def test_crossval_with_a_dpo_stage_reports_sft_alone_and_sft_dpo(tmp_path, tiny_model_dir, capsys):
    from care_model.jobs.crossval import main
    from care_model.report.data import crossval_rows
    from care_model.training.crossval import DPO_PREDICTIONS, fold_dir
    from care_model.training.runs import read_json
    from store import Repository

    root = tmp_path / "store"
    with Repository(root) as repo:
        repo.add_user("boss", "password123", "admin")
        corrections_store(repo, n=9)
    argv = ["--store", str(root), "--folds", "3", "--base-model", str(tiny_model_dir), "--cv-id", "cv1",
            "--actor", "boss", "--json", "--max-steps", "1", "--eval-n-boot", "100", "--save-every-steps", "0",
            "--max-prompt-tokens", "2048", "--dpo-steps", "2", "--dpo-learning-rate", "1e-3"]
    assert main(argv) == 0
    cv_dir = root / "crossval" / "cv1"
    meta = read_json(cv_dir / "config.json")
    for i, test in enumerate(meta["folds"]):
        d = fold_dir(cv_dir, i)
        _, pairs = read_pairs(d)
        assert pairs and not {p["session_id"] for p in pairs} & set(test)     # pairs of training clients only
        run = read_json(d / "run.json")
        assert run["status"] == "done" and run["adapter"].endswith("adapter-dpo")
        assert run["dpo"]["sft_adapter"].endswith("adapter") and run["dpo"]["n_pairs_used"] == 2
        for name in ("predictions.json", DPO_PREDICTIONS, "base_predictions.json"):
            preds = read_json(d / name)["predictions"]
            assert {p["session_id"] for p in preds} == set(test)
        assert read_json(d / DPO_PREDICTIONS)["predictions"][0]["model_version"] != read_json(
            d / "predictions.json")["predictions"][0]["model_version"]
    result = read_json(cv_dir / "result.json")
    systems = {r["system"] for r in result["rows"]}
    assert {"crossval", "crossval_dpo", "base", "mean", "mode"} <= systems
    assert result["dpo_comparison"]["rows"] and all(f["dpo"]["n_pairs_used"] == 2 for f in result["folds"])
    with Repository(root) as repo:
        doc = repo.collection("crossval_runs").get("cv1")
    labels = [r["label"] for r in crossval_rows(doc)]
    assert any("(SFT alone)" in x for x in labels) and any("(SFT+DPO)" in x for x in labels)
    assert any("training mean per item" in x for x in labels)
