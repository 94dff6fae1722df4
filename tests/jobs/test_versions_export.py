"""Model cards on model versions and `care versions export` (care_model.jobs.versions, interchange.model_card)."""
from __future__ import annotations

import json

import pytest
from factories import hand_checked_evaluation

from care_model.interchange.dataset_card import read_header
from care_model.interchange.model_card import render_model_card
from care_model.stats.baselines import quality_against_baselines
from care_model.stats.heldout import HeldOut
from care_model.stats.version_quality import quality_record


def _quality():
    sessions, preds, _ = hand_checked_evaluation()
    rep = quality_against_baselines(sessions, preds, n_boot=50, seed=0)
    return quality_record(rep, HeldOut(kept=[s.id for s in sessions]))


def _doc(adapter=None, quality=None):
    return {"id": "tiny+lora@abc", "kind": "lora", "status": "candidate", "base": "/models/tiny", "adapter": adapter,
            "run_id": "run-1", "data_hash": "d41d8cd98f00b204", "code_commit": "abc123", "parent": "tiny",
            "split": {"train": ["s0", "s1"], "validation": ["s2"]}, "quality": quality,
            "learned_from": {"score_sources": ["client_self_report"], "rationales": "curated",
                             "score_source_counts": {"client_self_report": 24},
                             "rationale_provenance": ["expert", "edited"],
                             "provenance_counts": {"expert": 20, "edited": 4, "accepted": 0},
                             "items_without_rationale": 0},
            "calibration": {"choice": "none", "reason": "too few sessions (4 sessions, 3 clients)"}}


def test_the_card_states_base_lora_data_evaluation_with_baselines_calibration_and_limits():
    q = _quality()
    text = render_model_card(_doc("/x", q), {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                                             "target_modules": ["q_proj", "v_proj"]})
    head = read_header(text)
    assert head["base_model"] == "/models/tiny" and head["library_name"] == "peft" and head["license"] == "other"
    assert "r=8, lora_alpha=16, target_modules=['q_proj', 'v_proj']" in text
    assert "`d41d8cd98f00b204`" in text and "client self report 24" in text and "expert 20, edited 4" in text
    mae = q["report"]["systems"]["model"]["item_mae"]
    assert f"| item MAE (primary; lower is better) | {mae['value']:.2f} [{mae['low']:.2f}, {mae['high']:.2f}]" in text
    assert "training mean (baseline)" in text and "most frequent score (baseline)" in text
    assert f"Verdict: **{q['verdict']}**" in text
    assert "`none`" in text and "too few sessions" in text and "Not a clinical instrument" in text
    unevaluated = render_model_card(_doc("/x", None))
    assert "Not evaluated against the baselines yet" in unevaluated and "| item MAE" not in unevaluated


@pytest.fixture()
def version_store(tmp_path, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from store import Repository
    from studio_testing import add_users
    from transformers import AutoModelForCausalLM

    from care_model.training.versions import VERSIONS

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    repo = Repository(tmp_path / "store")
    add_users(repo)
    doc = {**_doc(str(tmp_path / "adapter"), _quality()), "base": str(tiny_model_dir), "activations": []}
    repo.collection(VERSIONS).put(doc, actor="test", action="register")
    repo.close()
    return tmp_path


def test_export_writes_a_standalone_folder_that_peft_loads_and_promote_writes_the_card(version_store, tiny_model_dir,
                                                                                       capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from care_model.cli import main

    root = version_store
    assert main(["versions", "--store", str(root / "store"), "export", "tiny+lora@abc", "--out",
                 str(root / "out")]) == 0
    card = (root / "out" / "README.md").read_text()
    assert read_header(card)["base_model"] == str(tiny_model_dir) and "r=2, lora_alpha=4" in card
    assert json.loads((root / "out" / "care_version.json").read_text())["id"] == "tiny+lora@abc"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(root / "out"))
    assert model.peft_config["default"].r == 2
    assert main(["versions", "--store", str(root / "store"), "export", "tiny+lora@abc", "--out",
                 str(root / "out")]) == 2
    assert "not empty" in capsys.readouterr().err
    # promotion (re)writes the card in the version's own folder, with its new status
    assert main(["versions", "--store", str(root / "store"), "--actor", "admin", "promote", "tiny+lora@abc"]) == 0
    assert "status in its store: active" in (root / "adapter" / "README.md").read_text()
