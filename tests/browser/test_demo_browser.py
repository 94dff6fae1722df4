"""The public demo in Chromium: banner, a sample with its stored predictions, pasted text predicted."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from care_model.inference.models import ModelSpec
from care_model.inference.predictor import Predictor
from studio.demo import BANNER, build_demo
from studio_testing import serve

pytestmark = pytest.mark.browser
ART = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_demo_page(tiny_model_dir, browser):
    demo = build_demo(Predictor(ModelSpec(base=str(tiny_model_dir))))
    ART.mkdir(exist_ok=True)
    with serve(demo) as url:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)  # no login: the demo has no store behind it
        expect(page.locator("#care-demo-banner")).to_have_text(BANNER)
        expect(page.locator("#care-transcript .care-turn").first).to_be_visible(timeout=60_000)
        expect(page.locator("#demo-cards .care-card")).to_have_count(12)
        page.screenshot(path=str(ART / "demo.png"))
        page.get_by_label("Paste a transcript").check()
        page.fill("#demo-pasted textarea", "Counselor: What brings you here?\nClient: <b>not bold</b> I can't sleep.")
        # the radio's own (hidden-progress) refresh may still be running on a loaded machine: its trackers are in
        # the DOM but hidden, so only trackers a user can see are counted
        page.evaluate("""() => {  // the most progress indicators on screen at once while predicting
          window.__careMaxBars = 0;
          const shown = () => Array.from(document.querySelectorAll('.progress-text, .eta-bar')).filter(
            e => !e.closest('.hide') && e.checkVisibility({opacityProperty: true, visibilityProperty: true}));
          const count = () => { window.__careMaxBars = Math.max(window.__careMaxBars,
            new Set(shown().map(e => e.closest('.block'))).size); };
          new MutationObserver(count).observe(document.body, {subtree: true, childList: true, attributes: true});
        }""")
        page.click("#demo-predict")
        expect(page.locator("#demo-status")).to_contain_text("Predicted with", timeout=120_000)
        assert page.evaluate("window.__careMaxBars") == 1  # one per job (it was four, one per output)
        expect(page.locator("#care-turn-1 .tx")).to_have_text("<b>not bold</b> I can't sleep.")
        expect(page.locator("#demo-cards .care-model-version").first).to_have_text(
            demo.studio_ctx.predictor.model_version)
        page.close()
