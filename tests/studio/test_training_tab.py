"""The app's retraining flow over its JSON API: threshold, admin-only start, a real trainer process
(the tiny model) while the app stays responsive, reattaching, promote and rollback. Cancelling and
resuming from the app: tests/studio/test_training_cancel.py (its own app, so the two run in parallel)."""
from __future__ import annotations

import os
import statistics
import time
from types import SimpleNamespace

import pytest
from gradio_client.exceptions import AppError

from care_model.training import versions as V
from care_model.core.errors import PermissionDenied
from care_model.inference.models import ModelSpec, model_version_id
from studio.access import access_of
from studio_testing import TRAINING_CURATED, training_overrides
from studio_testing import wait_for as _wait_for
from studio.report_tab import POLL_IDLE_S, POLL_RUNNING_S
from studio.training import TrainingManager
from studio.training_tab import TrainingUI


STEPS = 40  # the run must still be going after the eight timed requests below (0.15 CPU s a step on one thread)


def wait_for(fn, timeout=600.0, step=0.5):
    return _wait_for(fn, timeout, step)


@pytest.fixture(scope="module")
def app(training_app):
    return training_app


def test_threshold_and_roles(app, tiny_model_dir):
    st = app.admin.predict(api_name="/training_status")
    assert st["readiness"]["new_sessions"] == len(TRAINING_CURATED) and st["readiness"]["min_new_sessions"] == 10
    assert not st["readiness"]["ready"] and st["run"] is None
    with pytest.raises(AppError, match="Only 6 newly curated session.*needs 10"):
        app.admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir), api_name="/start_training")
    with pytest.raises(AppError, match="needs the role admin"):
        app.ann.predict(api_name="/training_status")
    with pytest.raises(AppError, match="needs the role admin"):
        app.ann.predict("cpu-smoke.yaml", "", api_name="/start_training")
    app.mgr.set_settings(access_of(app.repo, "admin"), min_new_sessions=5)
    assert app.admin.predict(api_name="/training_status")["readiness"]["ready"]
    with pytest.raises(AppError, match="Unknown config key.*max_step"):
        app.admin.predict("cpu-smoke.yaml", "max_step: 3", api_name="/start_training")


def test_run_in_a_process_while_the_app_stays_responsive_then_promote_and_rollback(app, tiny_model_dir):
    admin = app.admin
    app.mgr.set_settings(access_of(app.repo, "admin"), min_new_sessions=5)
    t0 = time.perf_counter()
    for _ in range(5):
        admin.predict("sample-en-02", api_name="/open_session")
    idle = (time.perf_counter() - t0) / 5
    run = admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir, max_steps=STEPS),
                        api_name="/start_training")
    assert run["status"] == "running" and run["data_hash"] and run["pid"]
    assert run["learned_from"] == {"score_sources": ["client_self_report"], "rationales": "curated",
                                   "score_source_counts": {"client_self_report": 72}, "items_without_rationale": 0,
                                   "rationale_provenance": ["expert", "edited"],
                                   "provenance_counts": {"expert": 72, "edited": 0, "accepted": 0, "bulk_accepted": 0,
                                                         "unknown": 0},
                                   "excluded_provenance_counts": dict.fromkeys(
                                       ("expert", "edited", "accepted", "bulk_accepted", "unknown"), 0)}
    with pytest.raises(AppError, match="already in progress"):
        admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir), api_name="/start_training")

    # the app answers while the trainer (another process) computes
    wait_for(lambda: (admin.predict(api_name="/training_status")["progress"] or {}).get("step", 0) >= 1)
    # the trainer yields the CPU to the app (CARE_TRAIN_NICE=10 by default)
    assert os.getpriority(os.PRIO_PROCESS, run["pid"]) == os.getpriority(os.PRIO_PROCESS, 0) + 10
    times, steps = [], []
    while len(times) < 8:
        t = time.perf_counter()
        admin.predict("sample-en-02", api_name="/open_session")
        times.append(time.perf_counter() - t)
        steps.append(admin.predict(api_name="/training_status")["progress"]["step"])
    print(f"\nopen_session: idle {idle * 1000:.0f} ms, during training median {statistics.median(times) * 1000:.0f} "
          "ms; "
          f"trainer steps {steps[0]} -> {steps[-1]}")
    assert statistics.median(times) < max(2.0, 10 * idle)

    # a fresh manager (a reloaded page, or a restarted app) finds the running trainer
    other = TrainingManager(app.repo).status()
    assert other["running"] and other["run"]["id"] == run["id"]
    # the tab's progress timer: every 2 s while the run runs, every 15 s once nothing does
    page, as_admin = TrainingUI(app.demo.studio_ctx, app.mgr), SimpleNamespace(username="admin")
    tick = page.refresh(None, as_admin)[-1]
    assert (tick.value, tick.active) == (POLL_RUNNING_S, True)

    wait_for(lambda: app.mgr.poll() is None)  # until the trainer has exited and its run is recorded (in-process)
    tick = page.refresh(None, as_admin)[-1]
    assert (tick.value, tick.active) == (POLL_IDLE_S, True) and POLL_IDLE_S > 5 * POLL_RUNNING_S
    st = admin.predict(api_name="/training_status")
    assert st["run"]["status"] == "registered", st["log"][-2000:]
    assert st["progress"]["step"] == STEPS and len(st["progress"]["losses"]) == STEPS
    assert len(st["progress"]["validation_losses"]) == 2
    cand = V.get_version(app.repo, st["run"]["version_id"])
    assert cand["status"] == "candidate" and cand["data_hash"] == run["data_hash"]
    assert cand["learned_from"] == run["learned_from"]                      # the version records its score sources
    versions = cand["evaluation"]["versions"]
    assert versions["candidate"]["version_id"] == cand["id"] and versions["baseline"]["report"]["n_sessions"] >= 1
    assert "counts" in cand["evaluation"]["comparison"]

    base_id = model_version_id(ModelSpec(base=str(tiny_model_dir)))
    with pytest.raises(PermissionDenied, match="may not promote"):
        V.promote(app.repo, cand["id"], actor="ann")
    admin.predict(cand["id"], "candidate looks fine", api_name="/promote_version")
    assert admin.predict(api_name="/whoami")["model_version"] == cand["id"]
    admin.predict("", "", api_name="/rollback_version")
    assert admin.predict(api_name="/whoami")["model_version"] == base_id
    actions = [(h["action"], h["who"]) for h in V.activation_history(app.repo)]
    assert actions == [("promote", "admin"), ("rollback", "admin")]


def test_progress_and_versions_say_what_a_run_learns_from():
    from care_model.text.snapshot import learned_from
    from studio.training_tab import progress_html, versions_value

    paper = {"score_sources": ["client_self_report"], "rationales": "curated", "items": 24,
             "score_source_counts": {"client_self_report": 24}, "items_without_rationale": 0}
    run = {"id": "r1", "status": "running", "data_hash": "abc", "snapshot": paper}
    html = progress_html({"run": run, "progress": None})
    assert 'id="care-train-sources"' in html and 'class="care-muted"' in html
    assert "Learns from: client self-reports (24 items), with curated rationales." in html
    sample = {**paper, "rationales": "curated_or_none", "items_without_rationale": 200}
    html = progress_html({"run": {**run, "snapshot": sample}, "progress": None})
    assert 'class="care-warn"' in html and "200 items learned as scores without rationale" in html
    version = {"id": "v1", "kind": "lora", "status": "candidate", "learned_from": learned_from(sample)}
    row = versions_value({"versions": [version]})["data"][0]
    assert "client self-reports" in row[4] and "without rationale" in row[4]


def test_the_sentence_before_retraining_names_unused_labels_why_and_the_fix(tmp_path):
    from care_model.core.records import SHARED, Label
    from studio.training_tab import unused_labels_html
    from studio_testing import curate, make_store

    repo = make_store(tmp_path / "store", predictions=False)
    curate(repo, ["sample-en-01"])                                   # 12 client self-reports: used
    repo.save_labels([(Label(session_id="sample-en-02", item=i, annotator=SHARED, score=3, status="submitted",
                             rationale="Judged.", score_source="expert", rationale_source="expert"), 0)
                      for i in range(1, 13)], actor="ann")
    mgr = TrainingManager(repo)
    info = mgr.unused_labels("cpu-smoke.yaml", "")
    assert info == {"unused": {"expert": 12}, "score_sources": ["client_self_report"]}
    html = unused_labels_html(info)
    assert ("12 expert-judged labels are not used: this recipe learns client self-reports; choose a recipe with "
            "score_sources: [expert] to include them.") in html and 'data-unused="expert:12"' in html
    both = mgr.unused_labels("cpu-smoke.yaml", "score_sources: [client_self_report, expert]")
    assert both["unused"] == {} and unused_labels_html(both) == ""
    only_expert = mgr.unused_labels("cpu-smoke.yaml", "score_sources: [expert]\nrationales: curated")
    assert only_expert["unused"] == {"client_self_report": 12}
    assert "12 client self-reported labels are not used: this recipe learns expert judgements" in \
        unused_labels_html(only_expert)
    repo.close()


def test_the_promote_confirmation_states_the_comparisons_verdict():
    from studio.training_tab import promote_verdict

    def version(comparison, n=4):
        return {"versions": [{"id": "c1", "kind": "lora", "status": "candidate", "parent": "base",
                              "evaluation": {"sessions": ["s"] * n, "comparison": comparison,
                                             "versions": {"baseline": {"version_id": "base"}}}}]}

    text, kind = promote_verdict(version({"n_sessions": 4, "too_small": True, "counts": {"too small to decide": 9}}),
                                 "c1")
    assert kind == "warn" and text.startswith("Compared with base on 4 held-out session(s): too small to decide")
    rows = [{"role": "primary", "verdict": "better"}, {"role": "exploratory", "verdict": "not distinguishable"}]
    text, kind = promote_verdict(version({"n_sessions": 30, "too_small": False, "rows": rows,
                                          "counts": {"better": 1, "not distinguishable": 1}}, 30), "c1")
    assert kind == "ok" and "primary metric (item MAE) better; all metrics: 1 better, 1 not distinguishable" in text
    rows[0]["verdict"] = "worse"
    assert promote_verdict(version({"n_sessions": 30, "rows": rows, "counts": {}}, 30), "c1")[1] == "warn"
    assert "No comparison" in promote_verdict(version({}), "c1")[0]
    assert "not a known model version" in promote_verdict(version({}), "nope")[0]
