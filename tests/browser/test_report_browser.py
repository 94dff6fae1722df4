"""The report in the Models & training tab, in Debian's Chromium: a cross-validation run started from
the page (tiny model, separate process) shows its progress fold by fold, then the report of that run
and of a candidate (Table 2, the four plots, a numeric loss curve, candidate vs active) is shown.

Screenshots go to ``test-artifacts/`` (report-crossval-running, report-crossval, report-candidate,
report-loss-curve).
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.core.records import Prediction
from care_model.training.runs import ProgressWriter
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("report-browser")
    repo = make_store(tmp / "store")
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
        yield SimpleNamespace(url=url, repo=repo, tiny=tiny_model_dir)
    repo.close()


@pytest.fixture(scope="module")
def page(app, browser):
    """The admin's page (the shared module browser; fails if any request left the machine)."""
    with logged_in_pages(browser, app.url, width=1500, height=1100, timeout_ms=30_000) as make:
        yield make("admin")


def _show(page, label_part: str):
    pick = page.locator("#care-report-subject input")
    pick.click()
    page.get_by_role("option", name=re.compile(re.escape(label_part))).first.click()
    page.click("#care-report-show")
    expect(page.locator("#care-report-box #care-subject-title")).to_contain_text(label_part, timeout=180_000)


def test_crossval_from_the_tab_then_its_report_and_a_candidates(app, page):
    page.get_by_role("tab", name="Models & training").click()
    page.fill("#care-train-overrides textarea", f"base_model: {app.tiny}\nmax_steps: 2\neval_n_boot: 100\n"
                                                "max_prompt_tokens: 1024\nlora_last_layers: null\nsave_every_steps: 0")
    page.fill("#care-cv-folds input", "3")
    page.click("#care-cv-start")
    expect(page.locator("#care-train-msg")).to_contain_text("Started cross-validation", timeout=120_000)
    expect(page.locator("#care-cv-state")).to_contain_text("fold", timeout=120_000)
    page.locator("#care-cv-progress").screenshot(path=str(ART / "report-crossval-running.png"))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = page.locator("#care-cv-state").get_attribute("data-status")
        if status in ("done", "failed", "cancelled"):
            break
        time.sleep(1.0)
    assert status == "done", page.locator("#care-cv-log textarea").input_value()[-2000:]
    expect(page.locator("#care-cv-state")).to_contain_text("3/3 folds done", timeout=60_000)
    expect(page.locator("#care-cv-resume")).to_be_disabled()  # only a cancelled or failed run resumes
    run = app.repo.collection("crossval_runs").all()[0]
    assert not [v for v in app.repo.collection("model_versions").all() if v["id"].startswith(run["id"])]

    page.reload()
    page.wait_for_selector("#care-table")
    page.get_by_role("tab", name="Models & training").click()
    _show(page, f"Cross-validation {run['id']}")
    box = page.locator("#care-report-box")
    expect(box.locator("#care-table2")).to_contain_text(f"Cross-validation {run['id']}: fold adapters")
    expect(box.locator("#care-table2")).to_contain_text("published, different corpus")
    for name in ("dimensions", "calibration", "item_mae", "loss"):
        img = box.locator(f"#care-plot-{name}")
        expect(img).to_be_visible()
        assert img.evaluate("e => e.naturalWidth") > 300, name
    box.screenshot(path=str(ART / "report-crossval.png"))

    _show(page, "cand-lora")
    expect(box.locator("#care-comparison")).to_contain_text("better")        # direction column
    expect(box).to_contain_text("8 session(s) excluded")
    box.screenshot(path=str(ART / "report-candidate.png"))
    box.locator("#care-plot-loss").screenshot(path=str(ART / "report-loss-curve.png"))
    expect(page.locator("#care-train-plot")).to_be_visible()
