"""Training-ready exports (care_model.interchange.sft_export): SFT chat/Alpaca and preference pairs in
the formats TRL and LLaMA-Factory read."""
from __future__ import annotations

import json

import pytest
from factories import make_label, make_prediction, make_session

from care_model.interchange.sft_export import alpaca_row, sft_rows, write_exports
from care_model.text.prompt import build_session_prompt, plain_chat


def _data():
    sessions = {sid: make_session(sid, client=f"c-{sid}") for sid in ("s1", "s2")}
    preds, labels = [], []
    for sid in sessions:
        for i in (1, 2, 3):
            p = make_prediction(sid, i, 2)
            p.rationale = f"The client says \"better\" ({sid}/{i})."
            source = {1: "edited", 2: "expert", 3: "accepted"}[i]
            text = p.rationale if source == "accepted" else p.rationale + " And trusts the counselor."
            lab = make_label(sid, i, 4, status="submitted", rationale=text, rationale_source=source)
            lab.prediction_id = p.id
            preds.append(p)
            labels.append(lab)
    return sessions, labels, preds


def test_sft_rows_are_the_projects_prompt_and_answer_for_written_or_edited_rationales():
    sessions, labels, _ = _data()
    rows = sft_rows(sessions, labels)
    assert [(r["session_id"], r["item"]) for r in rows] == [("s1", 1), ("s1", 2), ("s2", 1), ("s2", 2)]
    r = rows[0]
    assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
    assert plain_chat(r["messages"][:2]) == build_session_prompt(sessions["s1"]).full(1)
    assert r["messages"][2]["content"] == "4\nThe client says \"better\" (s1/1). And trusts the counselor."
    assert (r["rationale_provenance"], r["score_source"], r["client_id"]) == ("edited", "expert", "c-s1")
    a = alpaca_row(r)
    assert (a["instruction"], a["input"], a["output"], a["system"]) == (
        r["messages"][1]["content"], "", r["messages"][2]["content"], r["messages"][0]["content"])


def test_written_files_load_as_trl_conversational_datasets(tmp_path):
    sessions, labels, preds = _data()
    info = write_exports(tmp_path, sessions, labels, preds, {"train": ["s1"], "test": ["s2"]})
    assert info["counts"] == {"sft_chat": {"train": 2, "test": 2}, "sft_alpaca": {"train": 2, "test": 2},
                              "preference": {"train": 2, "test": 2}}
    assert info["skipped"]["provenance"] == 2
    from datasets import load_dataset

    files = {split: str(tmp_path / rel) for split, rel in info["files"]["preference"].items()}
    pref = load_dataset("json", data_files=files)
    ex = pref["train"][0]
    # TRL's conversational preference format: prompt = messages, chosen/rejected = one assistant message
    assert [m["role"] for m in ex["prompt"]] == ["system", "user"]
    assert ex["chosen"] == [{"role": "assistant", "content": "4\nThe client says \"better\" (s1/1). And trusts the "
                                                             "counselor."}]
    assert ex["rejected"] == [{"role": "assistant", "content": "2\nThe client says \"better\" (s1/1)."}]
    chat = load_dataset("json", data_files={k: str(tmp_path / v) for k, v in info["files"]["sft_chat"].items()})
    assert chat["test"][0]["messages"][2]["role"] == "assistant"
    line = json.loads((tmp_path / info["files"]["sft_alpaca"]["train"]).read_text().splitlines()[0])
    assert set(line) >= {"instruction", "input", "output", "system"}
    assert oct((tmp_path / info["files"]["sft_chat"]["train"]).stat().st_mode)[-3:] == "600"


@pytest.mark.slow
def test_a_dpo_trainer_and_an_sft_check_accept_the_files_with_the_tiny_model(tmp_path, tiny_model_dir):
    """TRL 1.16 itself: the preference file builds a DPOTrainer dataset (tokenized prompt/chosen/
    rejected ids), the SFT rows are conversational; no training step (about 5 s with TRL's import)."""
    sessions, labels, preds = _data()
    info = write_exports(tmp_path, sessions, labels, preds, {"train": ["s1", "s2"]})
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    pref = load_dataset("json", data_files=str(tmp_path / info["files"]["preference"]["train"]))["train"]
    sft = load_dataset("json", data_files=str(tmp_path / info["files"]["sft_chat"]["train"]))["train"]
    assert is_conversational(pref[0]) and is_conversational(sft[0])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = DPOTrainer(model=model, args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=0, report_to=[],
                                                     use_cpu=True, max_length=4096),
                         train_dataset=pref.select_columns(["prompt", "chosen", "rejected"]), processing_class=tok)
    row = trainer.train_dataset[0]
    assert len(trainer.train_dataset) == 4 and row["chosen_ids"] != row["rejected_ids"] and row["prompt_ids"]
