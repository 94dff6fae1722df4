"""The Insights tab in Debian's Chromium (issue 21): an admin computes the insights on synthetic
sessions built from known effects; the plots load, the tables' numbers are exactly the pure
functions' (``data-v`` holds each full-precision float), a drill-down session opens in Review with
one click; an annotator sees no Insights tab and none of its content. The handlers themselves (an
adjudicator may, an annotator may not) are checked without a browser on the same server's app.

Screenshots: ``test-artifacts/insights-admin.png``, ``insights-drilldown.png``, ``insights-annotator.png``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from insights_testing import predictions_for, synthetic_sessions
from studio_testing import logged_in_pages, make_store, serve

from care_model.insights.build import Options
from care_model.jobs.insights import build_insights

pytestmark = pytest.mark.browser
ART = Path(__file__).resolve().parents[2] / "test-artifacts"
OFFSETS = {"c-low": -0.9, "c-mid": 0.0, "c-high": 0.9}
N_BOOT = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from studio.app import build_app

    sessions, values, _ = synthetic_sessions(n_clients=24, per_client=2, counselors=OFFSETS, seed=3)
    repo = make_store(tmp_path_factory.mktemp("ins") / "store", sessions=sessions, predictions=False,
                      curation_mode="expert_judged", show_ratings=False)
    repo.add_predictions(predictions_for(values))
    repo.assign(["syn-000-0"], ["ann"], actor="admin")  # the annotator codes one (expert-judged, blind) session
    demo = build_app(repo, None)
    with serve(demo) as url:
        yield url, repo
    repo.close()


def _values(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.v)")


def test_admin_sees_plots_and_exact_tables_annotator_sees_nothing(server, browser):
    url, repo = server
    ART.mkdir(exist_ok=True)
    expected, _pngs, _body = build_insights(repo, Options(score_field="expected_score", n_boot=N_BOOT))
    with logged_in_pages(browser, url) as make:
        page = make("admin")
        page.get_by_role("tab", name="Insights").click()
        page.locator("#ins-score-field").get_by_text("Expected score").click()
        page.locator("#ins-nboot input").fill(str(N_BOOT))
        page.click("#ins-go")
        expect(page.locator("#ins-report")).to_be_visible(timeout=120_000)
        for name in ("profiles", "patterns", "trajectories", "groups"):
            img = page.locator(f"#ins-plot-{name}")
            expect(img).to_be_visible()
            assert page.evaluate(f"document.querySelector('#ins-plot-{name}').naturalWidth") > 200
        expect(page.locator("#ins-profiles-title")).to_contain_text("source: model syn-model (expected score)")
        # the tables hold the pure functions' numbers, exactly
        for fit in expected["patterns"]["fits"]:
            d = fit["dim"]
            assert _values(page, f"#ins-pat-{d} td.coef") == [repr(t["coef"]) for t in fit["terms"]]
            assert _values(page, f"#ins-pat-{d} td.se") == [repr(t["se"]) for t in fit["terms"]]
            assert _values(page, f"#ins-pat-{d} td.p") == [repr(t["p"]) for t in fit["terms"]]
            assert page.get_attribute(f"#ins-pat-{d}-r2", "data-v") == repr(fit["r2"])
            assert page.inner_text(f"#ins-pat-{d}-n") == str(fit["n"])
        prof = expected["profiles"]
        assert [p["counselor"] for p in prof["profiles"]] == ["c-high", "c-low", "c-mid"]
        for p in prof["profiles"]:
            got = _values(page, f'#ins-profiles tr[data-counselor="{p["counselor"]}"] td.num')
            assert got == [repr(p["dims"][d]["value"]) for d in prof["dims"]]
        grp = expected["groups"]
        assert grp["field"] == "arm"
        assert _values(page, "#ins-groups td.auc") == [repr(grp["dims"][d]["auc"]["value"]) for d in grp["dims"]]
        assert _values(page, "#ins-groups td.diff") == [repr(grp["dims"][d]["difference"]["value"])
                                                        for d in grp["dims"]]
        expect(page.locator("#ins-traj")).to_contain_text("client-000")
        page.screenshot(path=str(ART / "insights-admin.png"), full_page=True)
        # drill-down: the low counselor's low-bond sessions, one click to Review
        page.locator("#ins-ident textarea, #ins-ident input").first.fill("c-low")
        page.locator("#ins-threshold input").fill("3.2")
        page.click("#ins-drill-go")
        expect(page.locator("#ins-drill")).to_be_visible(timeout=60_000)
        first = page.locator("#ins-drill a.ins-open").first
        sid = first.get_attribute("data-session")
        expect(page.locator("#ins-drill")).to_contain_text("Synthetic rationale for item")
        page.screenshot(path=str(ART / "insights-drilldown.png"), full_page=True)
        first.click()
        expect(page.locator("#care-sess-head")).to_contain_text(sid, timeout=60_000)

        ann = make("ann")
        expect(ann.locator("#care-table")).to_contain_text("syn-000-0")  # the annotator's own queue...
        assert ann.get_by_role("tab", name="Insights").count() == 0 or \
            not ann.get_by_role("tab", name="Insights").is_visible()
        assert ann.locator("#ins-report, #ins-go, #ins-box").count() == 0 or \
            not ann.locator("#ins-go").is_visible()
        assert "Counselor profiles" not in ann.inner_text("body")
        ann.screenshot(path=str(ART / "insights-annotator.png"), full_page=True)


def test_the_handlers_serve_staff_and_refuse_annotators(server):
    import gradio as gr

    from studio.insights_tab import InsightsUI

    _url, repo = server
    h = InsightsUI(type("Ctx", (), {"repo": repo})())
    assert h.on_load(gr.Request(username="adj"))[0]["visible"] is True
    assert h.on_load(gr.Request(username="ann"))[0]["visible"] is False
    with pytest.raises(gr.Error, match="needs the role"):
        h.compute("model", "syn-model", "score", "", 5, 1.0, 0, gr.Request(username="ann"))
    with pytest.raises(gr.Error, match="needs the role"):
        h.drill("model", "syn-model", "score", "client", "client-000", "bond", 5.0, gr.Request(username="ann"))
    html, _status, _fields = h.compute("model", "syn-model", "score", "", 5, 1.0, 0, gr.Request(username="adj"))
    assert 'id="ins-report"' in html
