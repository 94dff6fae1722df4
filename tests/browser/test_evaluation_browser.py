"""Human evaluation and adjudication in Debian's Chromium (Playwright), on a real store and server.

An admin creates a campaign with two systems (a model version and the expert-curated rationale)
and two raters through the UI; each rater, in their own browser context, completes it blind with
the keyboard (no system name on the page before the rater has finished); the admin's results
view shows means, win rates and alpha equal to an independent computation from the stored ratings.
An adjudicator resolves a double-coded item. Screenshots go to ``test-artifacts/eval-*.png``.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import krippendorff
import numpy as np
import pytest
from playwright.sync_api import expect

from studio.access import Access
from care_model.core.records import ADJUDICATED, SHARED, Label
from studio import campaign_setup as cs
from studio.app import build_app
from studio_testing import logged_in_pages, make_store, quoting_predictions, serve

pytestmark = pytest.mark.browser
ART = Path(__file__).resolve().parents[2] / "test-artifacts"
CRITERIA = ("faithfulness", "relevance", "informativeness")
SECRETS = ("care-v2", "expert")
N_TASKS = 9  # per rater: 3 targets x (2 rubric ratings + 1 comparison)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    repo = make_store(tmp_path_factory.mktemp("eval-browser") / "store", predictions=False)
    sessions = [repo.get_session(s) for s in repo.session_ids()]
    repo.add_predictions([p for s in sessions for p in quoting_predictions(s, "care-v1", seed=0)]
                         + [p for s in sessions for p in quoting_predictions(s, "care-v2", seed=1)])
    for s in sessions[:3]:  # the curated reference on three sessions
        for p in quoting_predictions(s, "reference", seed=2):
            repo.save_label(Label(session_id=s.id, item=p.item, annotator=SHARED, score=p.score, status="submitted",
                                  rationale="Curated: " + p.rationale, evidence=p.evidence), actor="admin",
                            expected_version=0)
    double = sessions[4].id  # double-coded by ann and bob, for the adjudicator
    repo.assign([double], ["ann", "bob"], actor="admin", mode="independent")
    for who, score in (("ann", 2), ("bob", 5)):
        repo.save_label(Label(session_id=double, item=4, annotator=who, score=score, status="submitted",
                              rationale=f"{who}: the goals are {'vague' if score == 2 else 'shared and explicit'}.",
                              evidence=[1], prediction_id=f"{double}|care-v1|4"), actor=who, expected_version=0)
    ART.mkdir(exist_ok=True)
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo, double=double)
    repo.close()


@pytest.fixture(scope="module", autouse=True)
def _slow_expect():
    previous = getattr(expect, "_timeout", None)  # set by other modules at import (one process runs many)
    expect.set_options(timeout=max(20_000, previous or 0))  # a loaded 2-core machine answers slowly; restored below
    yield
    expect.set_options(timeout=previous)


@pytest.fixture
def open_page(browser, app):
    """open_page(user) -> a logged-in page in its own browser context; checks no request leaves 127.0.0.1."""
    with logged_in_pages(browser, app.url, width=1500, timeout_ms=30_000) as make:
        yield make


def create_campaign(page) -> str:
    page.get_by_role("tab", name="Campaigns").click()
    expect(page.locator("#eval-admin-msg")).to_contain_text("Systems with rationales: care-v1")
    page.fill("#eval-name textarea, #eval-name input", "Blind v2 vs curated")
    for system in ("care-v2", "expert"):
        page.locator("#eval-systems label", has_text=re.compile(rf"^\s*{system}\s*$")).click()
    for rater in ("ann", "bob"):
        page.locator("#eval-raters label", has_text=re.compile(rf"^\s*{rater}\s*$")).click()
    page.locator("#eval-mode label", has_text="Both").click()
    page.fill("#eval-n input", "3")
    page.fill("#eval-overlap input", "2")
    page.fill("#eval-seed input", "11")
    page.click("#eval-create")
    expect(page.locator("#eval-admin-msg")).to_contain_text("Created campaign Blind v2 vs curated", timeout=30_000)
    page.screenshot(path=str(ART / "eval-create.png"))
    return re.search(r"\(([a-z0-9-]+)\)", page.inner_text("#eval-admin-msg")).group(1)


def assert_blind(page):
    assert "care-v2" not in page.inner_html("#eval-tab")  # never sent to the tab (the review queue may name versions)
    text = page.inner_text("body").lower()
    assert not [s for s in SECRETS if s in text], [s for s in SECRETS if s in text]


def rate_all(page, user: str, shots: bool, entered: list):
    """Complete every task with the keyboard, appending what was entered per task position.

    A generator: it yields after each action that waits on the server, so two raters' pages can
    be driven in turns and their requests overlap (see :func:`in_turns`)."""
    joins = []  # the events the page sent, for a failure's evidence (the flake of 2026-12-07 is not explained yet)
    page.on("request", lambda r: joins.append([round(time.time(), 3), r.post_data_json]) if "queue/join" in r.url
            else None)
    page.get_by_role("tab", name="Human evaluation").click()
    campaign = page.locator("#eval-campaign input")
    expect(campaign).to_have_value(re.compile(rf"^Blind v2 vs curated \(0/{N_TASKS} done\)"))
    page.click("#eval-start")
    yield
    for j in range(N_TASKS):
        try:
            expect(page.locator("#eval-pos")).to_have_text(f"Task {j + 1} of {N_TASKS}")
            expect(campaign).to_have_value(re.compile(rf"\({j}/{N_TASKS} done\)$"))  # issue 20: never stale
        except AssertionError:
            page.screenshot(path=str(ART / f"eval-failure-{user}.png"))
            state = page.evaluate("() => ({pending: window.__careEvalPending && window.__careEvalPending(), "
                                  "cur: document.body.dataset.evalCur, key: document.querySelector('#eval-key "
                                  "textarea, #eval-key input')?.value, status: document.querySelector("
                                  "'#eval-status')?.innerText, now: Date.now() / 1000})")
            (ART / f"eval-failure-{user}.json").write_text(json.dumps({"page": state, "joins": joins}, default=str))
            raise
        assert_blind(page)
        if page.locator("#eval-rubric").is_visible():
            digits = [((j * 7 + c * 3) % 5 + 1) if user == "ann" else ((j * 5 + c * 2 + 1) % 5 + 1) for c in range(3)]
            n_rubric = sum("scores" in e for e in entered)
            if user == "ann" and n_rubric == 0:  # the documented keys, typed at once: queued until each save returns
                digits = [4, 4, 4]
                expect(page.locator("body")).to_have_attribute("data-eval-cur", "faithfulness")
                for key in ("4", "j", "4", "j", "4", "Enter"):
                    page.keyboard.press(key)
                entered.append({"scores": dict(zip(CRITERIA, digits)), "comment": ""})
                yield
                continue
            if user == "bob" and n_rubric == 0:  # the mouse works too
                expect(page.locator("#eval-state")).to_contain_text("not rated yet")
                for crit, d in zip(CRITERIA, digits):
                    page.locator(f"#eval-crit-{crit} label", has_text=re.compile(rf"^\s*{d}\s*$")).click()
                    expect(page.locator("#eval-state")).to_contain_text("draft saved")  # follows the save
            else:
                for n, d in enumerate(digits):
                    page.keyboard.press(str(d))
                    if n == 1:  # the highlight stays on the criterion just scored until j moves it
                        expect(page.locator("body")).to_have_attribute("data-eval-cur", "relevance")
                        if shots and n_rubric == 1:
                            page.screenshot(path=str(ART / "eval-rubric.png"))
                    if n < 2:
                        page.keyboard.press("j")
            for crit, d in zip(CRITERIA, digits):
                expect(page.locator(f'#eval-crit-{crit} input[value="{d}"]')).to_be_checked()
            comment = ""
            if n_rubric == 2:
                comment = f"{user}: quotes fit, but it is generic."
                page.fill("#eval-comment textarea", comment)
            page.keyboard.press("Control+Enter" if comment else "Enter")
            entered.append({"scores": dict(zip(CRITERIA, digits)), "comment": comment})
            yield
        else:
            key = (["a", "b", "t", "x"] if user == "ann" else ["b", "a", "b", "t"])[j % 4]
            page.keyboard.press(key)
            choice = {"a": "a", "b": "b", "t": "tie", "x": "both_bad"}[key]
            expect(page.locator(f'#eval-choice input[value="{choice}"]')).to_be_checked()
            if shots and j == 6:
                page.screenshot(path=str(ART / "eval-pairwise.png"))
            assert_blind(page)
            page.keyboard.press("Enter")
            yield
            if j < N_TASKS - 1:  # nothing revealed before the rater finishes: straight on to the next task
                expect(page.locator("#eval-pos")).to_have_text(f"Task {j + 2} of {N_TASKS}")
                assert_blind(page)
                entered.append({"choice": choice})
                continue
            expect(page.locator("#eval-revealed")).to_contain_text("A was")  # revealed once all tasks are done
            assert "care-v2" in page.inner_text("#eval-revealed") and "expert" in page.inner_text("#eval-revealed")
            if shots:
                page.screenshot(path=str(ART / "eval-reveal.png"))
            page.keyboard.press("Enter")
            entered.append({"choice": choice})
            yield
    expect(page.locator("#eval-status")).to_contain_text(f"All {N_TASKS} tasks are done")
    expect(campaign).to_have_value(f"Blind v2 vs curated (all {N_TASKS} done)")


def in_turns(*gens) -> None:
    """Advance generators round-robin until all are done."""
    live = list(gens)
    while live:
        for g in list(live):
            try:
                next(g)
            except StopIteration:
                live.remove(g)


def fmt(v, d=2):
    return f"{v:.{d}f}"


def test_admin_creates_two_raters_complete_blind_results_match(app, open_page):
    admin = open_page("admin")
    cid = create_campaign(admin)
    camp = app.repo.collection("campaigns").get(cid)
    assert camp["systems"] == ["care-v2", "expert"] and camp["raters"] == ["ann", "bob"] and len(camp["targets"]) == 3

    entered = {"ann": [], "bob": []}  # each rater in their own browser context, working at the same time
    in_turns(*(rate_all(open_page(user), user, user == "ann", entered[user]) for user in ("ann", "bob")))

    # what the UI stored is what the raters entered
    ratings = {d["id"]: d for d in app.repo.collection("campaign_ratings", shard=cid).all()}
    for user in ("ann", "bob"):
        for k, e in zip(camp["assignments"][user], entered[user]):
            doc = ratings[k]
            assert doc["status"] == "submitted" and doc["rater"] == user
            assert (doc["scores"], doc["comment"]) == (e["scores"],
                                                       e["comment"]) if "scores" in e else doc["choice"] == e["choice"]
    trail = app.repo.audit(entity_id=camp["assignments"]["ann"][0])
    assert trail and {e["who"] for e in trail} == {"ann"}

    # independent computation from the stored ratings
    rub = {}  # (system, criterion) -> scores
    units = {}  # criterion -> {(target, system): {rater: score}}
    wins, compared = 0.0, 0
    for k, doc in ratings.items():
        task = camp["tasks"][k]
        if task["kind"] == "rubric":
            for c in CRITERIA:
                rub.setdefault((task["system"], c), []).append(doc["scores"][c])
                units.setdefault(c, {}).setdefault((task["target"], task["system"]),
                                                   {})[doc["rater"]] = doc["scores"][c]
        elif doc["choice"] != "both_bad":
            compared += 1
            first_is_a = task["left"] == "care-v2"  # "care-v2" < "expert": the table's first system
            wins += {"tie": .5, "a": 1.0 if first_is_a else 0.0, "b": 0.0 if first_is_a else 1.0}[doc["choice"]]

    admin.get_by_role("tab", name="Campaigns").click()
    admin.locator("#eval-res-campaign input").click()
    admin.locator("[role=option]", has_text=cid).click()
    admin.click("#eval-show")
    expect(admin.locator("#eval-rubric-table")).to_be_visible()
    for (system, c), vals in rub.items():
        cell = admin.locator(f'#eval-rubric-table tr[data-system="{system}"][data-criterion="{c}"] '
                             'td[data-stat="mean"]')
        expect(cell).to_contain_text(re.compile(rf"^{re.escape(fmt(sum(vals) / len(vals)))} \["))
        cell = admin.locator(f'#eval-rubric-table tr[data-system="{system}"][data-criterion="{c}"] '
                             'td[data-stat="pass"]')
        expect(cell).to_contain_text(re.compile(rf"^{re.escape(fmt(sum(v >= 3 for v in vals) / len(vals)))}"))
    win = admin.locator('#eval-pair-table tr[data-a="care-v2"][data-b="expert"] td[data-stat="win"]')
    expect(win).to_contain_text(re.compile(rf"^{re.escape(fmt(wins / compared))} \["))
    for c in CRITERIA:
        keys = sorted(units[c])
        data = np.array([[units[c][u].get(r, np.nan) for u in keys] for r in ("ann", "bob")], float)
        alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5])
        expect(admin.locator(f'#eval-agree-table tr[data-criterion="{c}"] td[data-stat="alpha"]')).to_have_text(
            fmt(alpha, 3))
    expect(admin.locator("#eval-plot-means")).to_be_visible()
    expect(admin.locator("#eval-plot-wins")).to_be_visible()
    admin.wait_for_timeout(800)  # let the plots draw
    admin.screenshot(path=str(ART / "eval-results.png"), full_page=True)


def test_adjudicator_chooses_a_final_label_side_by_side(app, open_page):
    page = open_page("adj")
    page.get_by_role("tab", name="Adjudication").click()
    page.locator("#adj-table [role=gridcell]", has_text=app.double).first.click()
    expect(page.locator("#adj-sides")).to_contain_text("ann: the goals are vague")
    expect(page.locator("#adj-sides")).to_contain_text("bob: the goals are shared and explicit")
    expect(page.locator("#adj-sides .adj-model")).to_contain_text("The client says")
    page.locator("#adj-source label", has_text="bob").click()
    expect(page.locator("#adj-rationale textarea")).to_have_value("bob: the goals are shared and explicit.")
    page.fill("#adj-comment input, #adj-comment textarea", "Turn 3 sets a shared goal.")
    page.click("#adj-choose")
    expect(page.locator("#adj-status")).to_contain_text("Final label of item 4 saved (version 1)")
    expect(page.locator("#adj-final-box")).to_contain_text("shared and explicit")
    page.click("#adj-agree-btn")
    expect(page.locator("#adj-agree-table")).to_be_visible()
    page.screenshot(path=str(ART / "eval-adjudication.png"), full_page=True)
    lab = app.repo.get_label(app.double, 4, ADJUDICATED)
    assert (lab.score, lab.updated_by, lab.comment) == (5, "adj", "Turn 3 sets a shared goal.")
    assert lab.adjudicated_from == [f"{app.double}|4|bob", f"{app.double}|4|ann"]
    page.get_by_role("tab", name="Review").click()  # annotators never see the tab
    ann = open_page("ann")
    assert ann.get_by_role("tab", name="Adjudication").count() == 0 and ann.get_by_role("tab",
                                                                                        name="Campaigns").count() == 0


# Types each list of keys the moment the page shows another task, while Gradio is still applying the move's reply
# (it takes up to a second on a loaded machine; a rater who knows the next scores types into that gap).
TYPE_ON_NEXT_TASKS = """lists => {
  const task = () => (document.getElementById('eval-pos') || {dataset: {}}).dataset.task;
  let was = task();
  new MutationObserver((_, o) => { if (task() === was) return; was = task();
    for (const key of lists.shift()) window.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
    if (!lists.length) o.disconnect(); }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_keys_typed_as_a_task_appears_are_neither_lost_nor_undone(app, open_page):
    """Scores and Enter typed while a move is still landing wait for it: each task is saved with the
    scores typed, the page moves on, and the radios show what was stored (before the fix: the Enter was
    dropped or the highlight jumped back mid-sequence; the page stayed on task 2)."""
    doc = cs.create_campaign(app.repo, Access("admin", "admin"), name="Fast keys", systems=["care-v2", "expert"],
                             mode="rubric", n_targets=2, raters=["adj"], overlap=1, seed=5)
    page = open_page("adj")
    page.get_by_role("tab", name="Human evaluation").click()
    expect(page.locator("#eval-campaign input")).to_have_value(re.compile(r"^Fast keys \(0/4 done\)"))
    page.click("#eval-start")
    expect(page.locator("#eval-pos")).to_have_text("Task 1 of 4")
    page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 6})  # a loaded machine
    typed = [(4, 4, 4), (3, 2, 5), (1, 4, 2)]
    page.evaluate(TYPE_ON_NEXT_TASKS, [[str(d[0]), "j", str(d[1]), "j", str(d[2]), "Enter"] for d in typed[1:]])
    for key in ("4", "j", "4", "j", "4", "Enter"):
        page.keyboard.press(key)
    try:
        expect(page.locator("#eval-pos")).to_have_text("Task 4 of 4")
    except AssertionError:
        page.screenshot(path=str(ART / "eval-failure-fast-keys.png"))
        raise
    page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 1})
    ratings = app.repo.collection("campaign_ratings", shard=doc["id"])
    got = [((ratings.get(k) or {}).get("status"), (ratings.get(k) or {}).get("scores"))
           for k in doc["assignments"]["adj"][:3]]
    assert got == [("submitted", dict(zip(CRITERIA, d))) for d in typed]
    page.keyboard.press("p")  # the radios show what was stored
    expect(page.locator("#eval-pos")).to_have_text("Task 3 of 4")
    for crit, d in zip(CRITERIA, typed[2]):
        expect(page.locator(f'#eval-crit-{crit} input[value="{d}"]')).to_be_checked()
    # a save's reply applied after the move's (seen under load) brings the old task's state line: it is not shown
    line = page.locator("#eval-state .eval-state-line")
    expect(line).to_be_visible()
    expect(line).to_have_attribute("data-task", page.locator("#eval-pos").get_attribute("data-task"))
    page.evaluate("() => { const l = document.querySelector('#eval-state .eval-state-line');"
                  " l.outerHTML = l.outerHTML.replace(/data-task=\"[^\"]*\"/, 'data-task=\"an-older-task\"'); }")
    expect(line).to_be_hidden()
