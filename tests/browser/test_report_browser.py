"""The report and the cross-validation results in the Models & training tab, in Debian's Chromium.

A finished cross-validation run (built with the real preparation, statistics and store record,
predictions written directly: :mod:`crossval_fixture`, no training) shows its results as a table
(fold rows, pooled with intervals, mean ± SD, the baselines) with its report one click away; the
report (Table 2, the four plots, candidate vs active) is shown in an isolated frame that leaves the
review tab's layout unchanged, its tables scrolling inside their box. The real cross-validation
process from the app: tests/studio/test_crossval_runs.py (slow) and the training browser test.

Screenshots go to ``test-artifacts/`` (crossval-table, report-crossval, report-candidate, report-loss-curve).
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.core.records import SHARED, Label, Prediction
from care_model.training.runs import ProgressWriter
from crossval_fixture import finished_crossval_run
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
BOXES = """() => Array.from(document.querySelectorAll('#care-review-tab [id], .tab-wrapper, header'))
  .filter(e => e.offsetParent !== null)
  .map(e => { const r = e.getBoundingClientRect();
              return [e.id || e.className, ...[r.x, r.y, r.width, r.height].map(Math.round)]; })
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-browser")
    repo = make_store(tmp / "store")
    for sid in repo.session_ids():  # the clients' self-reports as the curated set the run was made on
        client = repo.get_session(sid).ratings.get("client") or {}
        repo.save_labels([(Label(session_id=sid, item=int(i), annotator=SHARED, score=v, status="submitted",
                                 rationale=f"The client rates it {v}.", score_source="client_self_report",
                                 rationale_source="expert"), 0) for i, v in client.items()], actor="admin")
    t0 = time.perf_counter()
    cv = finished_crossval_run(repo, k=3)
    print(f"\nfixture cross-validation run built in {time.perf_counter() - t0:.1f} s")
    # a candidate with a real loss curve in its run folder and predictions on every session
    run_dir = tmp / "run"
    progress = ProgressWriter(run_dir)
    for step in range(1, 41):
        progress.emit("step", step=step, total_steps=40, loss=round(2.4 * 0.97 ** step + 0.05 * (step % 3), 4))
    progress.emit("eval", step=40, validation_loss=1.35)
    ids = repo.session_ids()
    preds = []
    for sid in ids:
        client = repo.get_session(sid).ratings.get("client") or {}
        for item, v in client.items():
            guess = min(5, max(1, int(v) + (hash((sid, item)) % 3) - 1))
            preds.append(Prediction(uuid.uuid4().hex, sid, int(item), "cand-lora", guess,
                                    expected_score=guess * 0.8 + 0.5,
                                    mode="scores_only", parse_status="scores_only"))
    repo.add_predictions(preds)
    repo.collection("model_versions").put({"id": "cand-lora", "kind": "lora", "status": "candidate", "base": "x",
                                           "adapter": str(tmp / "adapter"), "run_id": "r1", "run_dir": str(run_dir),
                                           "data_hash": "h", "parent": "test-model",
                                           "split": {"train": ids[:8], "validation": ids[8:]}}, actor="admin",
                                          action="register")
    repo.collection("model_versions").put({"id": "test-model", "kind": "base", "status": "base", "base": "test"},
                                          actor="admin", action="register")
    demo = build_app(repo, None)
    ART.mkdir(exist_ok=True)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, cv=cv)
    repo.close()


@pytest.fixture(scope="module")
def page(app, browser):
    """The admin's page (the shared module browser; fails if any request left the machine)."""
    with logged_in_pages(browser, app.url, width=1500, height=1100, timeout_ms=30_000) as make:
        yield make("admin")


def _frame(page):
    return page.frame_locator("#care-report-frame")


def _show(page, label_part: str):
    pick = page.locator("#care-report-subject input")
    pick.click()
    page.get_by_role("option", name=re.compile(re.escape(label_part))).first.click()
    page.click("#care-report-show")
    expect(_frame(page).locator("#care-subject-title")).to_contain_text(label_part, timeout=180_000)


def test_crossval_table_then_its_report_in_a_frame_that_leaves_the_app_alone(app, page):
    page.wait_for_selector("#care-table")
    before = page.evaluate(BOXES)
    body_before = page.evaluate("() => getComputedStyle(document.body).maxWidth")
    assert len(before) > 5

    page.get_by_role("tab", name="Models & training").click()
    table = page.locator("#care-cv-table")
    expect(table).to_be_visible(timeout=60_000)          # the tab's 2-second timer brings it
    k = app.cv["k"]
    expect(table.locator("tr.care-cv-fold")).to_have_count(k)
    expect(table.locator("tr.care-cv-pooled")).to_contain_text("Pooled held-out (23 sessions)")
    expect(table.locator("tr.care-cv-mean")).to_contain_text(f"Mean ± SD over {k} folds")
    for system in ("base", "counselor", "mean", "mode"):   # the two constants: the trivial baselines
        expect(table.locator(f'tr.care-cv-baseline[data-system="{system}"]')).to_have_count(2)
    goal_r = next(r for r in app.cv["rows"] if (r["system"], r["dimension"], r["metric"]) == ("crossval", "goal",
                                                                                               "pearson"))
    cells = table.locator("tr.care-cv-fold").first.locator("td")
    expect(cells.nth(1)).to_have_text(f"{goal_r['fold_values'][0]:.2f}")       # fold 1, goal, r
    expect(table.locator("tr.care-cv-mean td").nth(1)).to_have_text(
        f"{goal_r['fold_mean']:.2f} ± {goal_r['fold_sd']:.2f}")
    page.locator("#care-cv-results-box").screenshot(path=str(ART / "crossval-table.png"))

    page.click("#care-cv-report")                                              # one click to its report
    frame = _frame(page)
    expect(frame.locator("#care-subject-title")).to_contain_text(f"Cross-validation {app.cv['id']}",
                                                                 timeout=180_000)
    expect(frame.locator("#care-table2")).to_contain_text(f"Cross-validation {app.cv['id']}: fold adapters")
    expect(frame.locator("#care-table2")).to_contain_text("published, different corpus")
    for name in ("dimensions", "calibration", "item_mae"):
        img = frame.locator(f"#care-plot-{name}")
        expect(img).to_be_visible()
        assert img.evaluate("e => e.naturalWidth") > 300, name
    # Table 2 scrolls inside its box: its right edge stays inside the frame, which stays inside the tab
    t2 = frame.locator("table.care-t2").first
    assert t2.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert t2.evaluate("e => e.getBoundingClientRect().right <= document.documentElement.clientWidth + 1")
    frame_box = page.locator("#care-report-frame").bounding_box()
    tab_box = page.locator("#care-training-tab").bounding_box()
    assert frame_box["x"] + frame_box["width"] <= tab_box["x"] + tab_box["width"] + 1
    page.locator("#care-report-box").screenshot(path=str(ART / "report-crossval.png"))

    # the report's CSS stays in its frame: the review tab looks exactly as before
    assert page.evaluate("() => getComputedStyle(document.body).maxWidth") == body_before
    page.get_by_role("tab", name="Review").click()
    page.wait_for_selector("#care-table")
    assert page.evaluate(BOXES) == before

    page.get_by_role("tab", name="Models & training").click()
    _show(page, "cand-lora")
    frame = _frame(page)
    expect(frame.locator("#care-comparison")).to_contain_text("better")        # direction column
    expect(frame.locator("body")).to_contain_text("8 session(s) excluded")
    expect(frame.locator("#care-plot-loss")).to_be_visible()
    page.locator("#care-report-box").screenshot(path=str(ART / "report-candidate.png"))
    frame.locator("#care-plot-loss").screenshot(path=str(ART / "report-loss-curve.png"))
