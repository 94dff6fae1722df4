"""studio.crossval_runs.CrossvalManager: a cross-validation run started from the app, cancelled, and
resumed from the app (the tiny model in a real separate process, a real store)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from care_model.training.crossval import CROSSVAL_RUNS, fold_dir
from care_model.core.errors import PermissionDenied, TrainingError
from care_model.training.runs import read_events, read_json
from store import Repository
from studio.access import access_of
from studio.crossval_runs import CrossvalManager
from studio.report_tab import POLL_IDLE_S, POLL_RUNNING_S, ReportUI
from studio.training import TrainingManager
from rule_stores import make_cv_store
from studio_testing import TRAINER_ENV


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
        mgr = CrossvalManager(repo, env=TRAINER_ENV)  # its trainer on one thread (studio_testing)
        boss = access_of(repo, "boss")
        with pytest.raises(TrainingError, match="There is no cross-validation run"):
            mgr.resume(boss)
        run = mgr.start(boss, TrainingManager(repo).recipe_path("cpu-smoke.yaml"), 3, overrides)
        # stop it once the first fold is done, before the run is over
        end = time.time() + 600
        while not any(e.get("event") == "fold_done" for e in read_events(run["run_dir"])):
            assert mgr.poll() is not None and time.time() < end, "the run ended before its first fold was done"
            time.sleep(0.3)
        page, as_boss = ReportUI(SimpleNamespace(repo=repo), None, mgr), SimpleNamespace(username="boss")
        assert page.refresh(as_boss)[-1].value == POLL_RUNNING_S  # the tab follows a running run every 2 s
        mgr.cancel(boss)
        stopped = _wait(mgr)
        assert page.refresh(as_boss)[-1].value == POLL_IDLE_S  # and looks every 15 s once none runs
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


def _row(system, dim, metric, folds, pooled, field="score"):
    import statistics

    return {"system": system, "score_field": field, "dimension": dim, "metric": metric, "pooled": pooled,
            "low": pooled - 0.1, "high": pooled + 0.1, "n": 9, "reason": "", "fold_values": folds,
            "fold_mean": statistics.mean(folds), "fold_sd": statistics.stdev(folds), "n_folds": len(folds)}


def test_a_finished_runs_results_are_a_table_of_folds_pooled_mean_sd_and_baselines():
    from studio.report_tab import crossval_table_html

    rows = [_row(s, d, m, [0.1 * i + j for i in range(1, 4)], 0.5 + j, "-" if s == "counselor" else "score")
            for j, s in enumerate(("crossval", "base", "counselor", "mean", "mode")) for d in ("goal", "task", "bond")
            for m in ("pearson", "spearman", "mse")]
    run = {"id": "cv-1", "status": "done", "rows": rows + [{**rows[0], "score_field": "expected_score"}]}
    html = crossval_table_html(run, sizes=[3, 3, 3])
    assert html.count('class="care-cv-fold"') == 3 and 'data-fold="3"' in html and "Fold 2 (3 sessions)" in html
    assert "<td>0.20</td>" in html                                     # fold 2, goal, r of the fold adapters
    assert "Pooled held-out (9 sessions) [95% CI, clients resampled]" in html
    assert '0.50 <span class="ci">[0.40, 0.60]</span>' in html
    assert "Mean ± SD over 3 folds" in html and "0.20 ± 0.10" in html
    assert all(html.count(f'data-system="{s}"') == 2 for s in ("base", "counselor", "mean", "mode"))
    assert "Baseline: training mean per item (a constant): pooled" in html   # the trivial baselines are shown
    assert "Baseline: most frequent training score per item (a constant): mean ± SD" in html
    assert html.count("A constant has no correlation") == 2 * 2 * 3 * 2   # r and ρ of 2 constants, 3 dims, 2 rows
    assert html.count("<td>") == 3 * 9 + 9 + 9 + 8 * 9                  # every cell: 9 per row, labels apart
    assert crossval_table_html({**run, "status": "running"}) == "" and crossval_table_html(None) == ""


def test_the_report_is_framed_so_its_css_cannot_reach_the_app():
    from studio.report_tab import report_frame

    out = report_frame('<div id="care-report"><table class="care-t2"><tr><td>"x" & y</td></tr></table></div>')
    assert out.startswith('<iframe id="care-report-frame"') and 'sandbox="allow-same-origin"' in out
    assert "<style" not in out and "<table" not in out                 # all of it escaped inside srcdoc
    assert "max-width:1200px" in out and "overflow-x:auto" in out      # the page's CSS, and the frame's scrolling
