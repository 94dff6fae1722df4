"""studio.crossval_runs.CrossvalManager: a cross-validation run started from the app, cancelled, and
resumed from the app (the tiny model in a real separate process, a real store)."""
from __future__ import annotations

import time

import pytest

from care_model.training.crossval import CROSSVAL_RUNS, fold_dir
from care_model.core.errors import PermissionDenied, TrainingError
from care_model.training.runs import read_events, read_json
from store import Repository
from studio.access import access_of
from studio.crossval_runs import CrossvalManager
from studio.training import TrainingManager
from rule_stores import make_cv_store


def _wait(mgr: CrossvalManager, timeout: float = 600) -> dict:
    end = time.time() + timeout
    while mgr.poll() is not None:
        assert time.time() < end, "the cross-validation run did not finish in time"
        time.sleep(0.5)
    return mgr.runs(limit=1)[0]


def test_a_cancelled_run_resumes_from_the_app_and_keeps_finished_folds(tmp_path, tiny_model_dir):
    store = make_cv_store(tmp_path / "store")
    overrides = {"base_model": str(tiny_model_dir), "rationales": "curated", "max_prompt_tokens": 1024,
                 "lora_last_layers": None, "max_steps": 2, "save_every_steps": 1, "eval_n_boot": 200}
    with Repository(store) as repo:
        repo.add_user("ann", "password123", "annotator")
        mgr = CrossvalManager(repo)
        boss = access_of(repo, "boss")
        with pytest.raises(TrainingError, match="There is no cross-validation run"):
            mgr.resume(boss)
        run = mgr.start(boss, TrainingManager(repo).recipe_path("cpu-smoke.yaml"), 3, overrides)
        # stop it once the first fold is done, before the run is over
        end = time.time() + 600
        while not any(e.get("event") == "fold_done" for e in read_events(run["run_dir"])):
            assert mgr.poll() is not None and time.time() < end, "the run ended before its first fold was done"
            time.sleep(0.3)
        mgr.cancel(boss)
        stopped = _wait(mgr)
        assert stopped["status"] == "cancelled", stopped
        done_before = read_json(fold_dir(run["run_dir"], 0) / "run.json")["finished_at"]

        with pytest.raises(PermissionDenied):
            mgr.resume(access_of(repo, "ann"))
        resumed = mgr.resume(boss)
        assert resumed["status"] == "running" and resumed["resumed_at"] and resumed["cancel_requested"] is None
        with pytest.raises(TrainingError, match="already in progress"):
            mgr.resume(boss)
        finished = _wait(mgr)
        assert finished["status"] == "done" and finished["id"] == run["id"], finished
        assert finished["rows"], "the result is recorded"
        assert read_json(fold_dir(run["run_dir"], 0) / "run.json")["finished_at"] == done_before  # kept
        events = [e["event"] for e in read_events(run["run_dir"])]
        assert events.count("start") == 2 and events[-1] == "done" and "cancelled" in events
        assert sorted({e["fold"] for e in read_events(run["run_dir"]) if e.get("event") == "fold_done"}) == [0, 1, 2]
        with pytest.raises(TrainingError, match="is done: only a cancelled or failed run"):
            mgr.resume(boss)
        actions = [a["action"] for a in repo.collection(CROSSVAL_RUNS).audit() if a["entity_id"] == run["id"]]
        assert "resume" in actions and "cancel" in actions
