"""Cancelling a retraining run from the app and resuming it (the same trainer process story as
tests/studio/test_training_tab.py, on an app of its own so the two modules run in parallel)."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from studio.access import access_of
from studio_testing import training_overrides
from studio_testing import wait_for as _wait_for


def wait_for(fn, timeout=600.0, step=0.5):
    return _wait_for(fn, timeout, step)


@pytest.fixture(scope="module")
def app(training_app):
    return training_app


def test_cancel_from_the_app(app, tiny_model_dir):
    app.mgr.set_settings(access_of(app.repo, "admin"), min_new_sessions=0)
    run = app.admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir, max_steps=5000, evaluate="false"),
                            api_name="/start_training")
    wait_for(lambda: (app.admin.predict(api_name="/training_status")["progress"] or {}).get("step", 0) >= 2)
    assert app.admin.predict(api_name="/cancel_training")["cancel_requested"]["by"] == "admin"
    st = wait_for(lambda: (s := app.admin.predict(api_name="/training_status"))["run"]["status"] != "running" and s,
                  timeout=180)
    assert st["run"]["id"] == run["id"] and st["run"]["status"] == "cancelled"
    assert st["progress"]["status"] == "cancelled" and 2 <= st["progress"]["step"] < 5000


def test_resume_a_cancelled_run_from_the_app(app, tiny_model_dir):
    app.mgr.set_settings(access_of(app.repo, "admin"), min_new_sessions=0)
    run = app.admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir, max_steps=16, save_every_steps=3,
                                                                evaluate="false"),  # the evaluation has its own tests
                            api_name="/start_training")
    wait_for(lambda: (app.admin.predict(api_name="/training_status")["progress"] or {}).get("step", 0) >= 3)
    app.admin.predict(api_name="/cancel_training")
    st = wait_for(lambda: (s := app.admin.predict(api_name="/training_status"))["run"]["status"] != "running" and s,
                  timeout=180)
    assert st["run"]["status"] == "cancelled"
    stopped_at = st["progress"]["step"]
    with pytest.raises(AppError, match="needs the role admin"):
        app.ann.predict("", api_name="/resume_training")
    assert app.admin.predict("", api_name="/resume_training")["id"] == run["id"]
    st = wait_for(lambda: (s := app.admin.predict(api_name="/training_status"))["run"]["status"] not in
                  ("running", "prepared") and s)
    assert st["run"]["id"] == run["id"] and st["run"]["status"] == "registered", st["log"][-2000:]
    assert st["progress"]["step"] == 16 and stopped_at < 16
    assert [s for s, _ in st["progress"]["losses"]] == list(range(1, 17))   # one curve across the two processes
