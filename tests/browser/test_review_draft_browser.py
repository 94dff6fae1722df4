"""'Draft a rationale for this score' in Debian's Chromium: the card fills the rationale field with
a draft for the chosen score, shown as an unsaved edit, saved only when the expert saves.

Screenshot: ``test-artifacts/draft-rationale.png``.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from care_model.inference.models import ModelSpec
from care_model.inference.predictor import PredictConfig, Predictor
from care_model.core.records import SHARED
from studio.access import Access
from studio.app import build_app
from studio.curation_modes import set_curation_mode
from studio_testing import logged_in_pages, make_store, serve, wait_for

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
expect.set_options(timeout=120_000)
SID, ITEM, SCORE = "sample-en-02", 4, 2


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    repo = make_store(tmp_path_factory.mktemp("draft-browser") / "store")
    repo.assign([SID], ["ann"], actor="admin")
    # expert-judged: the expert picks the score and drafts for it (client-anchored sessions draft
    # for the client's fixed score through the same button; tests/studio/test_review_draft.py)
    set_curation_mode(repo, Access("admin", "admin"), [SID], "expert_judged")
    predictor = Predictor(ModelSpec(base=str(tiny_model_dir)), PredictConfig(max_new_tokens=16, calibration="none"))
    demo = build_app(repo, predictor)
    ART.mkdir(exist_ok=True)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo)
    repo.close()


def test_draft_button_fills_the_rationale_as_an_unsaved_edit(app, browser):
    with logged_in_pages(browser, app.url, width=1600) as make:
        page = make("ann")
        if not page.is_visible("#care-open-id textarea"):
            page.click("#care-queue button.label-wrap")
        page.fill("#care-open-id textarea", SID)
        page.click("#care-open")
        expect(page.locator("#care-sess-head")).to_contain_text(SID)
        page.click(f'#care-list .care-row[data-item="{ITEM}"]')  # open item 4 from the list
        expect(page.locator(f'#care-card[data-item="{ITEM}"]')).to_be_visible()
        model_text = page.locator("#care-rationale textarea").input_value()
        page.check(f'#care-score input[value="{SCORE}"]')  # the expert's score (saved at once)
        expect(page.locator("#care-status")).to_contain_text("Saved item 4 (version 1)")
        page.click("#care-draft")
        expect(page.locator("#care-draft-note")).to_contain_text("not saved until you save")
        drafts = [p for p in app.repo.predictions(SID, history=True) if p.is_draft]
        assert len(drafts) == 1 and drafts[0].item == ITEM and drafts[0].drafted_for_score == SCORE
        assert drafts[0].rationale and drafts[0].rationale != model_text
        field = page.locator("#care-rationale textarea")
        expect(field).to_have_value(drafts[0].rationale)
        field.scroll_into_view_if_needed()
        page.screenshot(path=str(ART / "draft-rationale.png"))
        time.sleep(5)  # two autosave ticks: a fresh draft is not saved on its own
        label = app.repo.get_label(SID, ITEM, SHARED)
        assert label.score == SCORE and label.rationale == model_text
        page.click("#care-save")  # the expert saves
        label = wait_for(lambda: (lambda lab: lab if lab.version > label.version else None)(
            app.repo.get_label(SID, ITEM, SHARED)), 60)
        assert label.rationale == drafts[0].rationale and label.score == SCORE
