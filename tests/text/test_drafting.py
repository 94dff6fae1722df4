"""Score-conditioned drafting: the prompt (pure), targets, the tiny model's drafts, the store and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from care_model.text.drafting import build_draft_prompt, check_targets, chosen_line, draft_rationale, targets_for
from care_model.core.errors import ValidationError
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.jobs.predict import pending_sessions
from care_model.text.prompt import build_session_prompt
from care_model.core.records import ADJUDICATED, SHARED, Prediction, Session
from care_model.core.wai import load_form
from store import Repository
from store.export import export_jsonl
from store.formats import read_files

from factories import make_label, make_prediction, make_session

ROOT = Path(__file__).resolve().parents[2]
FORM = load_form()
SAMPLES = [json.loads(line) for line in (ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()]


# ----- the prompt (pure) -------------------------------------------------------------------
def test_the_prompt_states_each_items_target_after_the_transcript():
    s = make_session("d1", n_turns=4)
    p = build_draft_prompt(s, {1: 2, 5: 4})
    assert sorted(p.suffixes) == [1, 5]
    assert "Chosen option: 2. Sometimes" in p.suffixes[1] and "Chosen option: 4. Very often" in p.suffixes[5]
    assert FORM.item_text(1, "client", "en") in p.suffixes[1]
    assert p.prefix.index(s.turns[-1].text) < len(p.prefix), "the transcript is in the shared prefix"
    assert "reason for the chosen option" in p.prefix and "chosen option (1-5), unchanged" in p.prefix
    # the target is part of each item's prompt and hash: another score, another prompt
    q = build_draft_prompt(s, {1: 4, 5: 4})
    assert q.prefix == p.prefix and q.suffixes[5] == p.suffixes[5]
    assert q.item_hash(1) != p.item_hash(1) and "Chosen option: 4. Very often" in q.suffixes[1]
    assert q.item_hash(5) == p.item_hash(5)
    assert p.item_hash(1) != build_session_prompt(s, items=[1]).item_hash(1), "not the prediction prompt"


def test_chinese_drafting_prompt_and_bad_targets():
    p = build_draft_prompt(make_session("dz", language="zh"), {3: 5})
    assert chosen_line(5, "zh") == "所选选项：5. 总是" and "所选选项：5. 总是" in p.suffixes[3]
    with pytest.raises(ValidationError, match="Score 7"):
        check_targets({1: 7}, FORM)
    with pytest.raises(ValidationError, match="item"):
        check_targets({13: 3}, FORM)
    with pytest.raises(ValidationError, match="No target"):
        check_targets({}, FORM)
    with pytest.raises(ValidationError, match="not an item number"):
        check_targets({"one": "x"}, FORM)


def test_the_reason_is_read_from_the_answer():
    assert draft_rationale('4. Very often\nReason: the client said "yes" [3]') == 'the client said "yes" [3]'
    assert draft_rationale("Chosen option: 2. Sometimes. She hesitates [4].") == "She hesitates [4]."
    assert draft_rationale('He "agreed" [4].\nmore') == 'He "agreed" [4].'
    assert draft_rationale("  \n") == ""


def test_targets_from_the_client_and_from_the_experts():
    s = make_session("t1", ratings={i: (i % 5) + 1 for i in range(1, 13)})
    targets, msgs = targets_for(s, "client")
    assert targets == {i: (i % 5) + 1 for i in range(1, 13)} and msgs == []
    none, msgs = targets_for(make_session("t2"), "client")
    assert none == {} and len(msgs) == 12 and "no client self-report" in msgs[0]
    labels = [make_label("t1", 1, 2, SHARED), make_label("t1", 1, 5, ADJUDICATED),   # adjudicated wins
              make_label("t1", 2, 3, "ann"), make_label("t1", 2, 4, "bob"),           # disagreement: skipped
              make_label("t1", 3, 4, "ann"), make_label("t1", 3, 4, "bob"),           # agreement
              make_label("t1", 4, 1, SHARED, status="discarded"), make_label("t1", 5, 3)]
    targets, msgs = targets_for(s, "expert", labels)
    assert targets == {1: 5, 3: 4, 5: 3}
    assert any("item 2" in m and "disagree" in m for m in msgs) and any("item 4" in m for m in msgs)
    with pytest.raises(ValidationError, match="client, expert"):
        targets_for(s, "counselor")


# ----- the tiny model ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(tiny_model_dir):  # grounded decoding (the default)
    return Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=48, calibration="none"))


@pytest.fixture(scope="module")
def free(tiny_model_dir):
    return Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=10, decoding="free",
                                                                        calibration="none"))


def test_drafts_record_their_target_and_source(predictor):
    session = make_session("m1", n_turns=6)
    seen = []
    preds = predictor.draft(session, {1: 2, 7: 5}, source="expert", progress=lambda f, m: seen.append(f))
    assert [p.item for p in preds] == [1, 7] and seen[0] == 0.0 and seen[-1] == 1.0
    for p, target in zip(preds, (2, 5)):
        assert p.mode == "draft" and p.is_draft and p.draft_source == "expert"
        assert p.drafted_for_score == target and p.score == target
        assert p.raw_output and p.model_version == predictor.model_version
        assert (p.parse_status == "ok") == bool(p.rationale)
    back = Prediction.from_dict(json.loads(json.dumps(preds[1].to_dict())))
    assert back.drafted_for_score == 5 and back.draft_source == "expert" and back.mode == "draft"


def test_another_target_gives_another_prompt_and_draft(free):
    session = make_session("m2", n_turns=6)
    low, high, again = (free.draft(session, {4: t})[0] for t in (1, 5, 1))
    assert low.decoding == "free"
    assert low.prompt_hash != high.prompt_hash and low.prompt_hash == again.prompt_hash
    assert low.raw_output == again.raw_output, "greedy: the same target drafts the same text"
    # the drafts ran on the prompts that state their targets, and the model's output distribution
    # depends on the target (the random tiny model's greedy text is too flat to show it)
    prompts = {t: free.session_prompt(session, [4], builder=build_draft_prompt, targets={4: t}) for t in (1, 5)}
    assert (low.prompt_hash, high.prompt_hash) == (prompts[1].item_hash(4), prompts[5].item_hash(4))
    first = {t: free.run_prompt(prompts[t], scores_only=True)[4].option_probs for t in (1, 5)}
    assert max(abs(a - b) for a, b in zip(first[1], first[5])) > 1e-5
    with pytest.raises(ValidationError):
        free.draft(session, {4: 1}, source="counselor")


@pytest.mark.parametrize("sample", [0, 20])  # English, Chinese
def test_grounded_drafts_write_the_target_and_quote_only_the_transcript(predictor, sample):
    from care_model.text.evidence import TranscriptIndex, find_quotes

    session = Session.from_dict(SAMPLES[sample])
    targets = {1: 1, 6: 3, 9: 5}
    preds = predictor.draft(session, targets, source="client")
    for p in preds:
        assert p.decoding == "grounded" and p.candidate_turns and p.parse_status == "ok", p.raw_output
        assert p.raw_output.lstrip().startswith(str(targets[p.item])), "the score line is the target"
        assert p.score == p.drafted_for_score == targets[p.item] and p.probs is None
        quotes = find_quotes(p.rationale)
        assert quotes and p.unsupported_quotes == [] and p.evidence
        allowed = TranscriptIndex([t for t in session.turns if t.index in p.candidate_turns])
        assert all(allowed.find(q) is not None for q in quotes)


def test_drafts_never_replace_the_models_suggestion(tmp_path, predictor):
    with Repository(tmp_path / "store") as repo:
        repo.add_sessions([make_session("s1")])
        own = [make_prediction("s1", i, 3, predictor.model_version) for i in range(1, 13)]
        repo.add_predictions(own)
        drafts = predictor.draft(repo.get_session("s1"), {1: 5, 2: 1})
        repo.add_predictions(drafts)
        latest = {p.item: p for p in repo.predictions("s1")}
        assert len(latest) == 12 and all(not p.is_draft for p in latest.values()) and latest[1].score == 3
        assert {p.item: p.score for p in repo.open_session("s1").predictions.values()} == {i: 3 for i in range(1, 13)}
        assert repo.predicted_versions("s1") == {predictor.model_version: 12}
        assert pending_sessions(repo, predictor.model_version, ["s1"]) == []
        history = repo.predictions("s1", history=True)
        assert sorted((p.item, p.drafted_for_score) for p in history if p.is_draft) == [(1, 5), (2, 1)]
        out = tmp_path / "export.jsonl"
        export_jsonl(repo, out)
    with Repository(tmp_path / "again") as repo2:  # the export keeps the drafts and their fields
        repo2.import_batch(read_files([out], "jsonl"))
        back = [p for p in repo2.predictions("s1", history=True) if p.is_draft]
        assert sorted((p.item, p.drafted_for_score, p.draft_source) for p in back) == [(1, 5, "client"), (2, 1,
                                                                                                          "client")]
        assert all(not p.is_draft for p in repo2.predictions("s1"))


def test_draft_command_for_clients_and_experts(tmp_path, tiny_model_dir, capsys):
    """`care predict --draft-for ...` (its main, in this process: the subprocess entry is checked by test_cli_help)."""
    from care_model.jobs.predict import main

    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.import_batch(read_files([ROOT / "data" / "sessions.jsonl"], "jsonl"))
        repo.save_label(make_label("sample-en-03", 2, 4), actor="ann", expected_version=0)
    base = ["--store", str(store), "--model", str(tiny_model_dir), "--max-new-tokens", "6", "--calibration", "none",
            "--json"]
    assert main(base + ["--session", "sample-en-02", "--draft-for", "client"]) == 0
    out, err = capsys.readouterr()
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["drafts"] == 12 and counts["skipped_items"] == 0 and counts["draft_for"] == "client"
    assert main(base + ["--session", "sample-en-03", "--draft-for", "expert"]) == 0
    out, err = capsys.readouterr()
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["drafts"] == 1 and counts["skipped_items"] == 11
    assert "sample-en-03: item 1: skipped, no expert label with a score" in err
    with Repository(store) as repo:
        client = json.loads((ROOT / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()[1])
        drafts = {p.item: p for p in repo.predictions("sample-en-02", history=True)}
        assert {i: p.drafted_for_score for i, p in drafts.items()} == {
            int(k): v for k, v in client["ratings"]["client"].items()}
        assert all(p.draft_source == "client" and p.mode == "draft" for p in drafts.values())
        (expert,) = repo.predictions("sample-en-03", history=True)
        assert (expert.item, expert.drafted_for_score, expert.draft_source) == (2, 4, "expert")
        assert repo.predictions("sample-en-02") == [], "drafts are not suggestions"
