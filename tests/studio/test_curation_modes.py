"""Curation modes through the HTTP API of a launched app (gradio_client with login):
client-anchored curation (the score is the client's and cannot be changed; the rationale is the
expert's; the label records client_self_report; the next training snapshot holds exactly that
pair) and expert-judged curation (annotators code blind to the client's and counselor's ratings
unless an admin shows them)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from care_model.text.snapshot import read_snapshot
from care_model.core.records import SHARED, Prediction
from care_model.training.run import prepare_run
from care_model.training.config import RetrainConfig
from care_model.training.runs import run_path
from store.export import export_jsonl
from studio.app import build_app
from studio_testing import make_store, password, serve

from factories import make_session

ANCHORED = "sample-en-01"   # has the client's self-report: client-anchored by default
BLIND = "sample-en-05"      # has it (and the counselor's) too; the admin makes it expert-judged
NO_SELF_REPORT = "no-self-report"
DRAFTED = "sample-en-03"    # client-anchored, with rationales the model drafted for given scores
SWITCHED = "sample-en-06"   # has a self-report; made expert-judged, an item saved, then client-anchored again


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on the sample store with its default modes (every sample session has a self-report)."""
    repo = make_store(tmp_path_factory.mktemp("modes") / "store")
    repo.add_sessions([make_session(NO_SELF_REPORT, client="c-x")])
    repo.assign([ANCHORED, BLIND, NO_SELF_REPORT, DRAFTED, SWITCHED], ["ann"], actor="admin")
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo, clients={u: Client(url, auth=(u, password(u)), verbose=False)
                                                           for u in ("admin", "ann")})
    repo.close()


def rationale(item: int) -> str:
    return f"Expert's rationale for item {item}: the client's account of the week fits their own rating."


def test_client_anchored_score_is_the_clients_and_the_snapshot_learns_the_experts_rationale(app, tmp_path):
    ann, repo = app.clients["ann"], app.repo
    client = repo.get_session(ANCHORED).ratings["client"]
    view = ann.predict(ANCHORED, api_name="/open_session")
    assert view["curation"]["mode"] == "client_anchored" and view["curation"]["score_locked"]
    assert view["curation"]["score_source"] == "client_self_report" and not view["curation"]["chosen"]
    assert {it["item"]: it["anchored_score"] for it in view["items"]} == client
    assert {it["item"]: it["draft"]["score"] for it in view["items"]} == client   # the card shows the client's rating

    # a different score is refused with a clear message and nothing is written
    wrong = client[1] % 5 + 1
    with pytest.raises(AppError, match=rf"client-anchored: its score is the client's own rating \({client[1]}\) "
                                       rf"and cannot be changed to {wrong}.*Leave the score"):
        ann.predict(ANCHORED, 1, wrong, rationale(1), [], [], 0, api_name="/save_draft")
    assert repo.labels(ANCHORED) == []

    # the expert writes the rationale; a save without a score (or with the client's) stores the client's score
    versions = {}
    for it in view["items"]:
        i = it["item"]
        score = None if i % 2 else client[i]
        res = ann.predict(ANCHORED, i, score, rationale(i), [1], [], 0, api_name="/save_draft")
        assert res["status"] == "saved" and res["label"]["score"] == client[i], res
        assert res["label"]["score_source"] == "client_self_report"
        versions[str(i)] = res["version"]
    done = ann.predict(ANCHORED, versions, api_name="/submit_session")
    assert done["status"] == "submitted", done

    labels = {lab.item: lab for lab in repo.labels(ANCHORED)}
    assert set(labels) == set(client) and {lab.annotator for lab in labels.values()} == {SHARED}
    assert all((lab.score, lab.rationale, lab.score_source, lab.status, lab.updated_by)
               == (client[i], rationale(i), "client_self_report", "submitted", "ann") for i, lab in labels.items())
    with pytest.raises(AppError, match="cannot be changed"):  # still refused after submission
        ann.predict(ANCHORED, 2, client[2] % 5 + 1, rationale(2), [], [], versions["2"], api_name="/save_draft")

    # exports show where each label's score came from
    export_jsonl(repo, tmp_path / "export.jsonl", [ANCHORED])
    exported = json.loads((tmp_path / "export.jsonl").read_text(encoding="utf-8").splitlines()[0])["labels"]
    assert {(lab["item"], lab["score"], lab["score_source"]) for lab in exported} == \
        {(i, client[i], "client_self_report") for i in client}

    # the next training run's snapshot (the paper's default: client self-reports with curated rationales)
    run_dir = prepare_run(repo, RetrainConfig(validation_fraction=0.0), run_dir=tmp_path / "run", actor="admin")
    snap = read_snapshot(run_path(run_dir, "snapshot"))
    assert list(snap.labels) == [ANCHORED]                   # nothing else in the store is curated this way
    assert [(c.item, c.score, c.rationale, c.score_source) for c in snap.labels[ANCHORED]] == \
        [(i, client[i], rationale(i), "client_self_report") for i in sorted(client)]
    assert snap.header()["score_sources"] == ["client_self_report"] and snap.header()["items_without_rationale"] == 0


def test_expert_judged_annotators_code_blind_unless_an_admin_shows_the_ratings(app):
    admin, ann, repo = app.clients["admin"], app.clients["ann"], app.repo
    with pytest.raises(AppError, match="may not do this.*needs the role admin"):
        ann.predict([BLIND], "expert_judged", None, api_name="/set_curation_mode")
    with pytest.raises(AppError, match=f"{NO_SELF_REPORT} have no client self-report.*expert-judged"):
        admin.predict([BLIND, NO_SELF_REPORT], "client_anchored", None, api_name="/set_curation_mode")
    assert repo.collection("curation_modes").all() == []     # checked before anything changed
    res = admin.predict([BLIND], "expert_judged", None, api_name="/set_curation_mode")
    assert res["modes"] == {BLIND: "expert_judged"}
    modes = {r["session_id"]: r for r in admin.predict(api_name="/list_curation_modes")}
    assert modes[BLIND]["mode"] == "expert_judged" and modes[BLIND]["chosen"]
    assert modes[NO_SELF_REPORT]["mode"] == "expert_judged" and not modes[NO_SELF_REPORT]["chosen"]
    assert modes[ANCHORED]["mode"] == "client_anchored"

    assert set(repo.get_session(BLIND).ratings) == {"client", "counselor"}
    view = ann.predict(BLIND, api_name="/open_session")
    assert view["curation"]["mode"] == "expert_judged" and not view["curation"]["score_locked"]
    assert (view["session"]["ratings"] == {} and view["summary"]["client"] is None
            and view["summary"]["counselor"] is None)
    assert all(it["anchored_score"] is None and it["draft"]["score"] is None for it in view["items"])
    res = ann.predict(BLIND, 3, 1, "My own judgement.", [], [], 0, api_name="/save_draft")
    assert (res["label"]["score"], res["label"]["score_source"]) == (1, "expert")
    staff = admin.predict(BLIND, api_name="/open_session")          # admins and adjudicators see them
    assert set(staff["session"]["ratings"]) == {"client", "counselor"} and staff["summary"]["client"]
    anchored = ann.predict(ANCHORED, api_name="/open_session")      # client-anchored: the client's, not the counselor's
    assert set(repo.get_session(ANCHORED).ratings) == {"client", "counselor"}
    assert set(anchored["session"]["ratings"]) == {"client"} and anchored["summary"]["counselor"] is None

    admin.predict([BLIND], "expert_judged", True, api_name="/set_curation_mode")   # per session
    assert set(ann.predict(BLIND, api_name="/open_session")["session"]["ratings"]) == {"client", "counselor"}
    admin.predict([BLIND], "expert_judged", None, api_name="/set_curation_mode")   # back to the store setting
    assert ann.predict(BLIND, api_name="/open_session")["session"]["ratings"] == {}
    admin.predict("show_ratings", True, api_name="/set_setting")                   # store-wide
    try:
        assert set(ann.predict(BLIND, api_name="/open_session")["session"]["ratings"]) == {"client", "counselor"}
    finally:
        admin.predict("show_ratings", False, api_name="/set_setting")


def test_switching_a_session_to_client_anchored_asks_for_items_saved_under_the_old_mode(app):
    """Self-contained (its own session): an item saved under expert-judged curation must be saved
    again once the session is client-anchored."""
    admin, ann, repo = app.clients["admin"], app.clients["ann"], app.repo
    admin.predict([SWITCHED], "expert_judged", None, api_name="/set_curation_mode")
    saved = ann.predict(SWITCHED, 3, 1, "My own judgement.", [], [], 0, api_name="/save_draft")
    assert (saved["label"]["score"], saved["label"]["score_source"]) == (1, "expert")
    admin.predict([SWITCHED], "client_anchored", None, api_name="/set_curation_mode")
    try:
        view = ann.predict(SWITCHED, api_name="/open_session")
        client = repo.get_session(SWITCHED).ratings["client"]
        assert view["curation"]["score_locked"] and view["items"][2]["draft"]["score"] == client[3]
        versions = {}
        for it in view["items"]:
            if it["item"] != 3:
                versions[str(it["item"])] = ann.predict(SWITCHED, it["item"], None, rationale(it["item"]), [], [], 0,
                                                        api_name="/save_draft")["version"]
        res = ann.predict(SWITCHED, versions, api_name="/submit_session")
        assert res["status"] == "invalid" and "now curated for client self report" in str(res["problems"]["3"])
        assert repo.get_label(SWITCHED, 3, SHARED).score_source == "expert"
    finally:
        admin.predict([SWITCHED], "expert_judged", None, api_name="/set_curation_mode")


def test_client_anchored_cards_start_from_the_rationale_drafted_for_the_clients_score(app):
    """Score-conditioned drafting (care_model.text.drafting) writes mode "draft" predictions; an
    unreviewed client-anchored card starts from the one drafted for the client's score."""
    repo, ann = app.repo, app.clients["ann"]
    client = repo.get_session(DRAFTED).ratings["client"]

    def draft(item, score, text, stamp):
        return Prediction(id=f"draft-{item}-{score}-{stamp}", session_id=DRAFTED, item=item, model_version="test-model",
                          score=score, rationale=text, evidence=[2], mode="draft", drafted_for_score=score,
                          draft_source="client", created_at=f"2026-11-26T00:00:0{stamp}+00:00")
    repo.add_predictions([draft(2, client[2], "An older draft.", 1),
                          draft(2, client[2], "Drafted for the client's score.", 2),
                          draft(3, client[3] % 5 + 1, "Drafted for another score.", 3)])
    items = {it["item"]: it for it in ann.predict(DRAFTED, api_name="/open_session")["items"]}
    assert (items[2]["score_draft"]["rationale"] == "Drafted for the client's score."
            and items[2]["score_draft"]["score"] == client[2])
    assert items[2]["draft"] == {**items[2]["draft"], "score": client[2],
                                 "rationale": "Drafted for the client's score.",
                                 "evidence": [2]}
    assert items[3]["score_draft"] is None                                      # drafted for another score: not used
    assert items[3]["draft"]["rationale"] == items[3]["prediction"]["rationale"]  # the model's free rationale
    assert items[3]["prediction"]["id"] != "draft-3" and not items[3]["prediction"].get("drafted_for_score")
