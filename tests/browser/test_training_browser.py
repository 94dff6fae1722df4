"""The Models & training tab in Debian's Chromium: the sentence about curated labels the recipe will
not use, one real retraining run (tiny model, separate process; the suite's only real training in a
browser), its progress, loss curve and log while reviewing goes on, reload and reattach, compare,
promote after a confirmation that shows the comparison's verdict, roll back; messages appear beside
the buttons that caused them. Cancelling and resuming a run from the app: tests/studio/test_training_cancel.py.

Screenshots go to ``test-artifacts/`` (training-running, training-done, training-promote-confirm).
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.training import versions as V
from care_model.inference.models import ModelSpec, model_version_id
from care_model.inference.predictor import Predictor
from care_model.core.records import SHARED, Label
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
STEPS = 24
CURATED = ["sample-en-01", "sample-en-02", "sample-en-04", "sample-en-05", "sample-en-06", "sample-en-07"]


def overrides(tiny, steps: int) -> str:
    return (f"base_model: {tiny}\nrationales: curated\nmax_prompt_tokens: 1024\nlora_last_layers: null\n"
            f"max_steps: {steps}\neval_n_boot: 0\nsave_every_steps: 0")


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    repo = make_store(tmp_path_factory.mktemp("training-browser") / "store")
    for sid in CURATED:
        s = repo.get_session(sid)
        repo.save_labels([(Label(session_id=sid, item=i, annotator=SHARED, score=v, status="submitted",
                                 rationale=f"The client's own rating is {v}.", score_source="client_self_report",
                                 rationale_source="expert"), 0)
                          for i, v in s.ratings["client"].items()], actor="ann")
    # two expert-judged items the paper's recipe (client self-reports) leaves out
    repo.save_labels([(Label(session_id="sample-en-08", item=i, annotator=SHARED, score=3, status="submitted",
                             rationale="Judged by the expert.", score_source="expert", rationale_source="expert"), 0)
                      for i in (1, 2)], actor="ann")
    repo.collection("settings").put({"id": "retraining", "min_new_sessions": 5}, actor="admin")
    demo = build_app(repo, Predictor(ModelSpec(base=str(tiny_model_dir))))
    ART.mkdir(exist_ok=True)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, tiny=tiny_model_dir)
    repo.close()


@pytest.fixture(scope="module")
def page(app, browser):
    """The admin's page (the shared module browser; fails if any request left the machine)."""
    with logged_in_pages(browser, app.url, width=1600, height=1200, timeout_ms=60_000) as make:
        yield make("admin")


def state(page):
    loc = page.locator("#care-train-state")
    return loc.get_attribute("data-status"), int(loc.get_attribute("data-step") or 0)


def wait_state(page, predicate, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator("#care-train-state").count():
            st = state(page)
            if predicate(*st):
                return st
        time.sleep(0.5)
    raise AssertionError(f"timed out; last state {state(page) if page.locator('#care-train-state').count() else None}")


def near(page, message: str, button: str) -> None:
    """The message is in the viewport and within 250 px of the button that caused it."""
    m, b = page.locator(message).bounding_box(), page.locator(button).bounding_box()
    view = page.viewport_size
    assert 0 <= m["y"] and m["y"] + m["height"] <= view["height"], (m, view)
    assert abs((m["y"] + m["height"] / 2) - (b["y"] + b["height"] / 2)) < 250, (m, b)


def test_admin_retrains_confirms_the_promotion_and_rolls_back(app, page):
    page.get_by_role("tab", name="Models & training").click(timeout=180_000)  # loaded CI machines
    expect(page.locator(".care-train-ready")).to_have_attribute("data-ready", "true")
    expect(page.locator("#care-train-ready-box")).to_contain_text("7 newly curated session(s)")
    expect(page.locator("#care-train-unused")).to_have_text(
        "2 expert-judged labels are not used: this recipe learns client self-reports; choose a recipe with "
        "score_sources: [expert] to include them.", timeout=60_000)
    page.fill("#care-train-overrides textarea", overrides(app.tiny, STEPS))
    page.click("#care-train-start")
    expect(page.locator("#care-train-msg")).to_contain_text("Started run", timeout=120_000)  # a loaded CI machine
    near(page, "#care-train-msg", "#care-train-start")
    wait_state(page, lambda s, n: s == "running" and n >= 2)
    expect(page.locator("#care-train-cancel")).to_be_enabled()
    expect(page.locator("#care-train-start")).to_be_disabled()

    # the rest of the app stays usable while the trainer runs in its own process
    page.get_by_role("tab", name="Review").click(timeout=180_000)
    t0 = time.perf_counter()
    if not page.is_visible("#care-open-id textarea"):
        page.click("#care-queue button.label-wrap")
    page.fill("#care-open-id textarea", "sample-en-03")
    page.click("#care-open")
    expect(page.locator("#care-sess-head")).to_contain_text("sample-en-03", timeout=120_000)  # CI machines vary
    review_s = time.perf_counter() - t0
    page.get_by_role("tab", name="Models & training").click(timeout=180_000)  # loaded CI machines
    page.screenshot(path=str(ART / "training-running.png"), full_page=True)

    # a reload reattaches to the running job
    page.reload()
    page.wait_for_selector("#care-table")
    page.get_by_role("tab", name="Models & training").click(timeout=180_000)  # loaded CI machines
    status, step = wait_state(page, lambda s, n: s in ("running", "registered"))
    print(f"\nreview opened in {review_s:.1f} s during training; after reload: {status} at step {step}")

    status, step = wait_state(page, lambda s, n: s in ("registered", "failed", "cancelled"))
    assert (status, step) == ("registered", STEPS), page.locator("#care-train-log textarea").input_value()[-2000:]
    expect(page.locator("#care-train-plot")).to_be_visible()
    assert page.locator("#care-train-plot img").evaluate("e => e.naturalWidth") > 300   # a PNG, numeric axes
    assert "step" in page.locator("#care-train-log textarea").input_value() or \
        "retrain" in page.locator("#care-train-log textarea").input_value()
    cand = V.list_versions(app.repo)[-1]
    assert cand["status"] == "candidate"
    expect(page.locator("#care-compare")).to_have_attribute("data-version", cand["id"])
    expect(page.locator("#care-compare")).to_contain_text("Validation loss")
    expect(page.locator("#care-versions")).to_contain_text(cand["id"])
    page.screenshot(path=str(ART / "training-done.png"), full_page=True)

    # promote asks first and shows the comparison's verdict; Cancel changes nothing
    before = V.active_version_id(app.repo)
    pick = page.locator("#care-version-pick input")
    pick.fill(cand["id"])
    pick.press("Enter")
    page.fill("#care-version-reason textarea", "better on held-out clients")
    page.click("#care-promote")
    verdict = page.locator("#care-promote-verdict")
    expect(verdict).to_have_attribute("data-version", cand["id"], timeout=60_000)
    expect(verdict).to_contain_text(f"Promote {cand['id']} to active?")
    expect(verdict).to_contain_text("too small to decide")          # a handful of held-out sessions
    page.locator("#care-promote-confirm").first.screenshot(path=str(ART / "training-promote-confirm.png"))
    assert V.active_version_id(app.repo) == before
    page.click("#care-promote-no")
    expect(page.locator("#care-promote-confirm").first).to_be_hidden()
    expect(page.locator("#care-version-msg")).to_contain_text("Not promoted", timeout=60_000)
    assert V.active_version_id(app.repo) == before
    page.click("#care-promote")
    page.click("#care-promote-yes")
    expect(page.locator("#care-version-msg")).to_contain_text("is now the active version", timeout=60_000)
    near(page, "#care-version-msg", "#care-promote")
    expect(page.locator("#care-promote-confirm").first).to_be_hidden()
    assert V.active_version_id(app.repo) == cand["id"]
    base_id = model_version_id(ModelSpec(base=str(app.tiny)))
    pick.fill(base_id)
    pick.press("Enter")
    page.click("#care-rollback")
    expect(page.locator("#care-version-msg")).to_contain_text("Rolled back", timeout=60_000)
    assert V.active_version_id(app.repo) == base_id
    assert [h["action"] for h in V.activation_history(app.repo)] == ["promote", "rollback"]
