"""Cancelling a retraining run from the app and resuming it (the same trainer process story as
tests/studio/test_training_tab.py, on an app of its own so the two modules run in parallel).

One run serves both tests (:func:`cancelled`: started and cancelled from the app once, one trainer
process instead of two); the cancel test reads what the app said at the cancel, the resume test
resumes that run, so either passes alone and in either order."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from gradio_client.exceptions import AppError

from studio.access import access_of
from studio_testing import training_overrides
from studio_testing import wait_for as _wait_for

STEPS = 24  # the cancel lands a few steps after step 3 (a checkpoint every 3): room to stop before the end


def wait_for(fn, timeout=600.0, step=0.5):
    return _wait_for(fn, timeout, step)


@pytest.fixture(scope="module")
def app(training_app):
    return training_app


@pytest.fixture(scope="module")
def cancelled(app, tiny_model_dir):
    """A run started from the app and cancelled from the app after its third step: the run as
    started, the cancel's answer, and the status the app gives once the trainer has stopped."""
    app.mgr.set_settings(access_of(app.repo, "admin"), min_new_sessions=0)
    run = app.admin.predict("cpu-smoke.yaml", training_overrides(tiny_model_dir, max_steps=STEPS, save_every_steps=3,
                                                                evaluate="false"),  # the evaluation has its own tests
                            api_name="/start_training")
    wait_for(lambda: (app.admin.predict(api_name="/training_status")["progress"] or {}).get("step", 0) >= 3, step=0.2)
    answer = app.admin.predict(api_name="/cancel_training")
    wait_for(lambda: app.mgr.poll() is None, timeout=180, step=0.2)  # in-process: no HTTP round trip per look
    return SimpleNamespace(run=run, answer=answer, status=app.admin.predict(api_name="/training_status"))


def test_cancel_from_the_app(cancelled):
    assert cancelled.answer["cancel_requested"]["by"] == "admin"
    st = cancelled.status
    assert st["run"]["id"] == cancelled.run["id"] and st["run"]["status"] == "cancelled"
    assert st["progress"]["status"] == "cancelled" and 3 <= st["progress"]["step"] < STEPS


def test_resume_a_cancelled_run_from_the_app(app, cancelled):
    assert cancelled.status["run"]["status"] == "cancelled"
    stopped_at = cancelled.status["progress"]["step"]
    with pytest.raises(AppError, match="needs the role admin"):
        app.ann.predict("", api_name="/resume_training")
    assert app.admin.predict("", api_name="/resume_training")["id"] == cancelled.run["id"]
    wait_for(lambda: app.mgr.poll() is None)
    st = app.admin.predict(api_name="/training_status")
    assert st["run"]["id"] == cancelled.run["id"] and st["run"]["status"] == "registered", st["log"][-2000:]
    assert st["progress"]["step"] == STEPS and stopped_at < STEPS
    assert [s for s, _ in st["progress"]["losses"]] == list(range(1, STEPS + 1))  # one curve across the two processes
