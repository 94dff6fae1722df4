"""The review card's "Draft a rationale for this score": the handler and the HTTP API on a real
app (gradio_client) with the tiny random Llama in the background worker."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from care_model.core.errors import CareError, ValidationError
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from studio.access import Access
from studio.app import build_app
from studio.review_draft import start_draft
from studio_testing import make_store, password, serve, wait_for


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    repo = make_store(tmp_path_factory.mktemp("draft") / "store")
    repo.assign(["sample-en-02"], ["ann"], actor="admin")
    predictor = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=12, calibration="none"))
    demo = build_app(repo, predictor)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, ctx=demo.studio_ctx, predictor=predictor,
                              ann=Client(url, auth=("ann", password("ann")), verbose=False),
                              bob=Client(url, auth=("bob", password("bob")), verbose=False))
    repo.close()


def finished(client, job_id):
    return wait_for(lambda: (lambda j: j if j["state"] in ("done", "failed") else None)(
        client.predict(job_id, api_name="/draft_status")), 300)


def test_draft_for_the_experts_score_via_the_api(app):
    before = {p.item: p.id for p in app.repo.predictions("sample-en-02")}
    labels_before = app.repo.labels("sample-en-02")
    job = app.ann.predict("sample-en-02", 4, 2, "expert", api_name="/draft_rationale")
    assert job["kind"] == "draft" and job["state"] in ("queued", "running")
    assert app.ann.predict("sample-en-02", 4, 2, "expert", api_name="/draft_rationale")["id"] == job["id"]  # reused
    done = finished(app.ann, job["id"])
    assert done["state"] == "done", done
    (res,) = done["result"]
    assert res["item"] == 4 and res["score"] == 2 and res["source"] == "expert"
    stored = app.repo.get_prediction("sample-en-02", res["prediction_id"])
    assert stored.mode == "draft" and stored.drafted_for_score == 2 and stored.rationale == res["rationale"]
    # the same draft, made directly: the job drafted exactly for the card's score
    direct = app.predictor.draft(app.repo.get_session("sample-en-02"), {4: 2}, source="expert")[0]
    assert direct.raw_output == stored.raw_output and direct.prompt_hash == stored.prompt_hash
    # nothing else changed: suggestions and labels are as they were
    assert {p.item: p.id for p in app.repo.predictions("sample-en-02")} == before
    assert app.repo.labels("sample-en-02") == labels_before
    view = app.ann.predict("sample-en-02", api_name="/open_session")
    assert view["items"][3]["prediction"]["id"] == before[4]


def test_draft_for_the_clients_score_defaults_to_the_self_report(app):
    job = app.ann.predict("sample-en-02", 7, None, "client", api_name="/draft_rationale")
    want = app.repo.get_session("sample-en-02").ratings["client"][7]
    assert job["targets"] == {"7": want} and job["source"] == "client"
    assert finished(app.ann, job["id"])["result"][0]["score"] == want


def test_the_curation_mode_picks_the_source(app):
    from studio.curation_modes import set_curation_mode

    want = app.repo.get_session("sample-en-02").ratings["client"][5]
    job = app.ann.predict("sample-en-02", 5, None, "", api_name="/draft_rationale")  # client-anchored (default)
    assert job["source"] == "client" and job["targets"] == {"5": want}
    with pytest.raises(AppError, match=f"self-report is {want}"):
        app.ann.predict("sample-en-02", 5, 1 if want != 1 else 2, "client", api_name="/draft_rationale")
    set_curation_mode(app.repo, Access("admin", "admin"), ["sample-en-02"], "expert_judged")
    try:
        job = app.ann.predict("sample-en-02", 5, 3, "", api_name="/draft_rationale")
        assert job["source"] == "expert" and job["targets"] == {"5": 3}
        assert finished(app.ann, job["id"])["result"][0]["score"] == 3
    finally:
        set_curation_mode(app.repo, Access("admin", "admin"), ["sample-en-02"], "default")


def test_bad_requests_are_refused_with_the_fix(app):
    with pytest.raises(AppError, match="outside"):
        app.ann.predict("sample-en-02", 4, 9, "expert", api_name="/draft_rationale")
    with pytest.raises(AppError, match="Choose a score"):
        app.ann.predict("sample-en-02", 4, None, "expert", api_name="/draft_rationale")
    with pytest.raises(AppError, match="client, expert"):
        app.ann.predict("sample-en-02", 4, 3, "counselor", api_name="/draft_rationale")
    with pytest.raises(AppError):  # bob is not assigned to the session
        app.bob.predict("sample-en-02", 4, 3, "expert", api_name="/draft_rationale")
    with pytest.raises(AppError, match="No draft job"):
        app.ann.predict("nope", api_name="/draft_status")


def test_start_draft_handler_checks_access(app):
    ann, bob = Access("ann", "annotator"), Access("bob", "annotator")
    with pytest.raises(CareError, match="sample-en-02"):
        start_draft(app.repo, bob, app.ctx.jobs, "sample-en-02", 1, 3)
    with pytest.raises(ValidationError, match="not an item number"):
        start_draft(app.repo, ann, app.ctx.jobs, "sample-en-02", "x", 3)
