"""Preference pairs from experts' corrections (care_model.text.preference_pairs): pure, records in."""
from __future__ import annotations

from factories import make_label, make_prediction, make_session

from care_model.core.records import Prediction
from care_model.core.wai import load_form
from care_model.text.curation import curate_item, submitted_by_item
from care_model.text.preference_pairs import item_prompts, preference_pairs, session_pairs
from care_model.text.prompt import answer_text, build_session_prompt, plain_chat

MODEL = "The client says \"better\" which shows some agreement."


def _suggestion(sid, item, score=2, rationale=MODEL, version="v1"):
    p = make_prediction(sid, item, score, version=version)
    p.rationale = rationale
    return p


def _label(sid, item, rationale, source, score=4, pid=None, annotator="@shared"):
    lab = make_label(sid, item, score, annotator=annotator, status="submitted", rationale=rationale,
                     rationale_source=source)
    lab.prediction_id = pid
    lab.updated_at = "2026-01-01T00:00:00"
    return lab


def _curated(labels):
    return [c for c in (curate_item(labs) for labs in submitted_by_item(labels).values()) if c is not None]


def test_one_pair_per_edited_or_expert_label_with_a_differing_model_text():
    s = make_session("s1", ratings={i: 4 for i in range(1, 13)})
    preds = [_suggestion("s1", i) for i in (1, 2, 3, 4, 5, 6)]
    labels = [
        _label("s1", 1, MODEL + " Also trust.", "edited", pid=preds[0].id),          # pair
        _label("s1", 2, "The client says \"better\" and means it.", "expert", pid=preds[1].id),  # pair
        _label("s1", 3, MODEL, "accepted", pid=preds[2].id),                          # provenance
        _label("s1", 4, "  " + MODEL.replace(" ", "  ") + " ", "edited", pid=preds[3].id),  # same text
        _label("s1", 5, "Written from scratch.", "expert", pid=None),                 # no suggestion
        _label("s1", 6, "", "expert", pid=preds[5].id),                               # no rationale
    ]
    out = session_pairs(s, _curated(labels), labels, preds)
    assert [p["item"] for p in out.pairs] == [1, 2]
    assert out.skipped == {"provenance": 1, "no_rationale": 1, "no_suggestion": 1, "no_model_text": 0,
                           "same_text": 1}
    first = out.pairs[0]
    assert first["chosen"] == [{"role": "assistant", "content": "4\n" + MODEL + " Also trust."}]
    assert first["rejected"] == [{"role": "assistant", "content": "2\n" + MODEL}]
    assert (first["chosen_score"], first["rejected_score"]) == (4, 2)
    assert first["rationale_provenance"] == "edited" and first["score_source"] == "expert"
    assert first["prediction_id"] == preds[0].id and first["model_version"] == "v1"
    assert first["rejected_kind"] == "suggestion" and first["client_id"] == "c-1"
    assert first["label_ids"] == ["s1|1|@shared"] and first["prompt_format"] == "conversational"


def test_the_prompt_is_the_projects_prompt_in_both_formats():
    s = make_session("s1")
    form = load_form()
    preds = [_suggestion("s1", 7)]
    labels = [_label("s1", 7, "Expert text quoting \"better\".", "expert", pid=preds[0].id)]
    conv = session_pairs(s, _curated(labels), labels, preds).pairs[0]
    system, user = conv["prompt"]
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content"].endswith(form.item_text(7, "client", "en"))
    assert "[1] Client: Honestly a bit better, turn 1." in user["content"]
    # the standard format is exactly the rendering training and inference use
    render = lambda m: "<chat>" + plain_chat(m)  # noqa: E731
    std = session_pairs(s, _curated(labels), labels, preds, render_chat=render).pairs[0]
    assert std["prompt"] == build_session_prompt(s, render_chat=render).full(7)
    assert std["chosen"] == answer_text(4, "Expert text quoting \"better\".", "en")
    assert std["prompt_format"] == "standard"
    assert plain_chat(conv["prompt"]) == build_session_prompt(s).full(7)


def test_a_draft_the_expert_started_from_is_the_rejected_text_when_closer():
    s = make_session("s1", ratings={i: 4 for i in range(1, 13)})
    sugg = _suggestion("s1", 3, rationale="Entirely unrelated words about the weather today.")
    draft = Prediction(id="s1|draft|3", session_id="s1", item=3, model_version="v1", score=4,
                       rationale="The client says \"a bit better\", so they agree.", mode="draft",
                       drafted_for_score=4, draft_source="client")
    other_score = Prediction(id="s1|draft3|3", session_id="s1", item=3, model_version="v1", score=2,
                             rationale="The client says \"a bit better\", so they agree!", mode="draft",
                             drafted_for_score=2, draft_source="client")
    labels = [_label("s1", 3, "The client says \"a bit better\", so they mostly agree.", "edited", pid=sugg.id)]
    pair = session_pairs(s, _curated(labels), labels, [sugg, draft, other_score]).pairs[0]
    assert pair["rejected_kind"] == "draft" and pair["prediction_id"] == "s1|draft|3"
    assert pair["rejected_score"] == 4
    # a scores-only suggestion and no draft: no model text to prefer against
    bare = _suggestion("s1", 3, rationale="")
    out = session_pairs(s, _curated(labels), [_label("s1", 3, "x y", "expert", pid=bare.id)], [bare])
    assert out.pairs == [] and out.skipped["no_model_text"] == 1


def test_double_coded_items_take_the_rationale_the_curation_rule_chose():
    s = make_session("s1")
    p = _suggestion("s1", 1)
    a = _label("s1", 1, "Expert A says 3.", "expert", score=3, pid=p.id, annotator="ann")
    b = _label("s1", 1, "Expert B says 5.", "edited", score=5, pid=p.id, annotator="bob")
    cur = _curated([a, b])
    assert cur[0].score == 3  # lower median
    pair = session_pairs(s, cur, [a, b], [p]).pairs[0]
    assert pair["annotator"] == "ann" and pair["chosen"][0]["content"] == "3\nExpert A says 3."
    assert pair["rationale_provenance"] == "expert"


def test_many_sessions_from_dicts_in_order_and_provenance_can_be_widened():
    sessions = {sid: make_session(sid).to_dict() for sid in ("b", "a")}
    preds = [_suggestion(sid, 1).to_dict() for sid in ("a", "b")]
    labels = [_label(sid, 1, "Accepted as is but differs", "accepted", pid=f"{sid}|v1|1") for sid in ("a", "b")]
    curated = {sid: [c.to_dict() for c in _curated([lab for lab in labels if lab.session_id == sid])]
               for sid in ("b", "a")}
    assert preference_pairs(sessions, curated, [x.to_dict() for x in labels], preds).pairs == []
    wide = preference_pairs(sessions, curated, labels, preds, provenance=("accepted",))
    assert [p["session_id"] for p in wide.pairs] == ["a", "b"]


def test_item_prompts_cut_a_long_transcript_as_training_does():
    s = make_session("s1", n_turns=60)
    count = lambda text: len(text.split())  # noqa: E731
    msgs = item_prompts(s, [1], count_tokens=count, max_prompt_tokens=400)[1]
    assert "omitted" in msgs[1]["content"]
    assert plain_chat(msgs) == build_session_prompt(s, count_tokens=count, max_prompt_tokens=400).full(1)
