"""studio.campaigns on a real store: sampling, blind rater views, versioned ratings, results checked
against independent computations, export; and the evaluation endpoints through gradio_client."""
from __future__ import annotations

import csv
import json
import math
import random
from types import SimpleNamespace

import krippendorff
import numpy as np
import pytest
from scipy import stats

from care_model.core.errors import NotFoundError, PermissionDenied, ValidationError
from care_model.core.records import SHARED, Label, Prediction
from store import Repository
from studio import campaign_results as cr
from studio import campaign_rating as rt
from studio import campaign_setup as cs
from studio import campaigns as cp
from studio.access import Access

from factories import make_session

ADMIN = Access("admin", "admin")
ANN, BOB, CAT = Access("ann", "annotator"), Access("bob", "annotator"), Access("cat", "annotator")
ADJ = Access("adj", "adjudicator")
SYSTEMS = ("m-alpha", "m-beta")
TEXTS = ["How was your week?", "I started running again and it helps me calm down.",
         "What made that possible?", "My sister came along, we agreed to go every Tuesday.",
         "That sounds like a plan you made together.", "Yes, and I want to keep it going."]


def build_repo(root) -> Repository:
    r = Repository(root)
    r.add_sessions([make_session(s, client=f"c-{s}",
                                 texts=[t + f" ({s})" if k % 2 == 0 else t for k, t in enumerate(TEXTS)])
                    for s in ("s1", "s2", "s3", "s4")])
    preds = []
    for v, version in enumerate(SYSTEMS):
        for s in ("s1", "s2", "s3", "s4"):
            for item in range(1, 13):
                score = 1 + (item + v + int(s[1])) % 5
                preds.append(Prediction(id=f"{s}|{version}|{item}", session_id=s, item=item, model_version=version,
                                        score=score,
                                        rationale=f"Suggestion {version[-4:]} {s}/{item}: running, sister.",
                                        evidence=[1, 3]))
    preds[0] = Prediction(**{**preds[0].to_dict(), "rationale": ""})  # m-alpha s1/1: no rationale
    preds[48 + 13] = Prediction(**{**preds[48 + 13].to_dict(), "parse_status": "failed"})  # m-beta s2/2 unreadable
    r.add_predictions(preds)
    for name, role in (("admin", "admin"), ("ann", "annotator"), ("bob", "annotator"), ("cat", "annotator"),
                       ("adj", "adjudicator")):
        r.add_user(name, "password-" + name, role)
    for s in ("s1", "s2"):
        for item in range(1, 13):
            r.save_label(Label(session_id=s, item=item, annotator=SHARED, score=1 + item % 5, status="submitted",
                               rationale=f"Curated {s}/{item}: weekly runs with the sister."),
                         actor="curator", expected_version=0)  # a curator who rates nothing here
    for who, score in (("ann", 2), ("bob", 4)):  # s3/1 coded independently, unresolved: no curated rationale
        r.save_label(Label(session_id="s3", item=1, annotator=who, score=score, rationale="x", status="submitted"),
                     actor=who, expected_version=0)
    return r


@pytest.fixture
def repo(tmp_path):
    r = build_repo(tmp_path / "store")
    yield r
    r.close()


def new_campaign(repo, **kw):
    args = dict(name="Alpha vs beta", systems=list(SYSTEMS), mode="both", n_targets=6, raters=["ann", "bob"], overlap=2,
                seed=3)
    args.update(kw)
    return cs.create_campaign(repo, ADMIN, **args)


def test_systems_and_eligible_targets(repo):
    systems = {r["system"]: r["targets"] for r in cs.available_systems(repo, ADMIN)}
    assert systems == {"m-alpha": 47, "m-beta": 47, "expert": 24}
    assert [r["system"] for r in cs.available_systems(repo, ADMIN, "s3 s4")] == ["m-alpha", "m-beta"]
    with pytest.raises(PermissionDenied, match="needs the role admin"):
        cs.available_systems(repo, ANN)
    with pytest.raises(NotFoundError):
        cs.available_systems(repo, ADMIN, ["nope"])
    both = cs.eligible_targets(repo, None, None, ["m-alpha", "expert"])
    assert len(both) == 23 and ("s1", 1) not in {(t["session_id"], t["item"]) for t in both}
    t = next(t for t in both if (t["session_id"], t["item"]) == ("s2", 5))
    assert t["outputs"]["expert"] == {"score": 1, "rationale": "Curated s2/5: weekly runs with the sister.",
                                      "evidence": [],
                                      "source": {"label_id": f"s2|5|{SHARED}"}}
    assert t["outputs"]["m-alpha"]["source"] == {"prediction_id": "s2|m-alpha|5"}
    assert len(cs.eligible_targets(repo, ["s1", "s2"], [1, 2], list(SYSTEMS))) == 2  # s1/1 and s2/2 lack one


def test_random_and_stratified_sampling(repo):
    eligible = cs.eligible_targets(repo, None, None, list(SYSTEMS))
    assert len(eligible) == 46
    key = lambda ts: [(t["session_id"], t["item"]) for t in ts]  # noqa: E731
    a = cs.sample_targets(eligible, 10, seed=1)
    assert key(a) == key(cs.sample_targets(eligible, 10, seed=1)) != key(cs.sample_targets(eligible, 10, seed=2))
    strat = cs.sample_targets(eligible, 12, method="stratified", strata="dimension", seed=1)
    dims = [t["dimension"] for t in strat]
    assert {d: dims.count(d) for d in set(dims)} == {"task": 4, "goal": 4, "bond": 4}  # 14/16/16 eligible
    bands = cs.sample_targets(eligible, 23, method="stratified", strata="score_band", band_system="m-alpha", seed=1)
    counts = {}
    for t in eligible:
        counts[cs.score_band(t["outputs"]["m-alpha"]["score"])] = (
            counts.get(cs.score_band(t["outputs"]["m-alpha"]["score"]), 0) + 1)
    got = {}
    for t in bands:
        got[cs.score_band(t["outputs"]["m-alpha"]["score"])] = (
            got.get(cs.score_band(t["outputs"]["m-alpha"]["score"]), 0) + 1)
    assert all(abs(got[b] - 23 * n / 46) < 1 for b, n in counts.items())  # proportional allocation
    with pytest.raises(ValidationError, match="Only 46 .* 47 were asked for"):
        cs.sample_targets(eligible, 47)


def test_create_assigns_tasks_by_overlap_and_freezes_what_is_rated(repo):
    with pytest.raises(PermissionDenied):
        cs.create_campaign(repo, ANN, name="x", systems=list(SYSTEMS), raters=["ann"])
    with pytest.raises(ValidationError, match="two systems"):
        new_campaign(repo, systems=["m-alpha"], mode="pairwise")
    with pytest.raises(ValidationError, match="Overlap 3"):
        new_campaign(repo, overlap=3)
    with pytest.raises(Exception, match="nobody"):
        new_campaign(repo, raters=["ann", "nobody"])
    doc = new_campaign(repo, n_targets=12, raters=["ann", "bob", "cat"], overlap=2)
    assert len(doc["targets"]) == 12 and all(len(t["raters"]) == 2 for t in doc["targets"])
    assert {r: len(ts) for r, ts in doc["assignments"].items()} == {"ann": 24, "bob": 24,
                                                                    "cat": 24}  # 8 targets x 3 tasks
    for r, ids in doc["assignments"].items():
        kinds = [doc["tasks"][k]["kind"] for k in ids]
        assert kinds == sorted(kinds, key=lambda k: k != "rubric")  # rubric first, then pairwise
        assert all(doc["tasks"][k]["rater"] == r for k in ids)
    lefts = [t["left"] for t in doc["tasks"].values() if t["kind"] == "pairwise"]
    assert set(lefts) == set(SYSTEMS)  # positions randomised (24 coin flips)
    # frozen: later edits and new predictions do not change what is rated
    t0 = doc["targets"][0]
    before = rt.rater_task(repo, Access(t0["raters"][0], "annotator"), doc["id"])
    repo.add_predictions([Prediction(id=f"new-{i}-{s}", session_id=t["session_id"], item=t["item"], model_version=s,
                                     score=5, rationale="CHANGED")
                          for i, t in enumerate(doc["targets"]) for s in SYSTEMS])
    again = rt.rater_task(repo, Access(t0["raters"][0], "annotator"), doc["id"])
    assert again == before and "CHANGED" not in json.dumps(cp.get_campaign(repo, doc["id"]))
    assert cp.get_campaign(repo, doc["id"])["created_by"] == "admin"
    assert [e["action"] for e in repo.audit(entity_id=doc["id"])] == ["create"]


def test_rater_views_are_blind_and_only_their_own(repo):
    doc = new_campaign(repo, systems=["m-alpha", "expert"], n_targets=8)
    secret = ["m-alpha", "expert", "bob"]
    for k in doc["assignments"]["ann"]:
        view = rt.rater_task(repo, ANN, doc["id"], k)
        text = json.dumps(view)
        assert not [s for s in secret if s in text], (k, [s for s in secret if s in text])
        assert "reveal" not in view
    assert "systems" not in cp.list_campaigns(repo, ANN)[0] and cp.list_campaigns(repo, ADMIN)[0]["systems"]
    assert cp.list_campaigns(repo, CAT) == []
    with pytest.raises(PermissionDenied):
        rt.rater_task(repo, CAT, doc["id"])
    with pytest.raises(PermissionDenied):  # same answer for a campaign that does not exist
        rt.rater_task(repo, CAT, "no-such-campaign")
    with pytest.raises(PermissionDenied):
        rt.rater_task(repo, ANN, doc["id"], doc["assignments"]["bob"][0])
    with pytest.raises(PermissionDenied):
        rt.save_rating(repo, ANN, doc["id"], doc["assignments"]["bob"][0], scores={"relevance": 3})
    pw = next(k for k in doc["assignments"]["ann"] if doc["tasks"][k]["kind"] == "pairwise")
    res = rt.save_rating(repo, ANN, doc["id"], pw, choice="b")
    assert res["rating"]["status"] == "draft" and "reveal" not in res
    res = rt.save_rating(repo, ANN, doc["id"], pw, submit=True, expected_version=1)
    task = doc["tasks"][pw]
    assert "reveal" not in res and "reveal" not in rt.rater_task(repo, ANN, doc["id"], pw)  # not before the end
    with pytest.raises(ValidationError, match="final"):
        rt.save_rating(repo, ANN, doc["id"], pw, choice="a", expected_version=2)
    each = new_campaign(repo, systems=["m-alpha", "expert"], n_targets=8, reveal_after_each=True)  # the admin option
    pw = next(k for k in each["assignments"]["ann"] if each["tasks"][k]["kind"] == "pairwise")
    res = rt.save_rating(repo, ANN, each["id"], pw, choice="b", submit=True)
    task = each["tasks"][pw]
    assert res["reveal"] == {"a": task["left"], "b": task["right"]}
    assert rt.rater_task(repo, ANN, each["id"], pw)["reveal"] == res["reveal"]
    bob_view = json.dumps(rt.rater_task(repo, BOB, doc["id"]))
    assert "ann" not in bob_view.replace("annotator", "")  # nobody sees another's rating


def test_saves_are_versioned_validated_audited_and_durable(tmp_path):
    repo = build_repo(tmp_path / "store")
    doc = new_campaign(repo)
    k = doc["assignments"]["ann"][0]
    assert doc["tasks"][k]["kind"] == "rubric"
    r1 = rt.save_rating(repo, ANN, doc["id"], k, scores={"faithfulness": 4})
    assert (r1["status"], r1["version"], r1["rating"]["status"]) == ("saved", 1, "draft")
    assert rt.save_rating(repo, ANN, doc["id"], k, scores={"faithfulness": 4}, expected_version=1)["unchanged"]
    stale = rt.save_rating(repo, ANN, doc["id"], k, scores={"faithfulness": 2}, expected_version=0)
    assert stale["status"] == "conflict" and stale["current"]["scores"]["faithfulness"] == 4
    with pytest.raises(ValidationError, match="Relevance, Informativeness missing"):
        rt.save_rating(repo, ANN, doc["id"], k, submit=True, expected_version=1)
    for bad in ({"faithfulness": 6}, {"faithfulness": 2.5}, {"style": 3}):
        with pytest.raises(ValidationError):
            rt.save_rating(repo, ANN, doc["id"], k, scores=bad, expected_version=1)
    with pytest.raises(ValidationError, match="no A/B choice"):
        rt.save_rating(repo, ANN, doc["id"], k, choice="a", expected_version=1)
    r2 = rt.save_rating(repo, ANN, doc["id"], k, scores={"relevance": 5, "informativeness": 2}, comment="Too generic.",
                        submit=True, expected_version=1)
    assert r2["rating"] == {**r2["rating"], "status": "submitted", "comment": "Too generic.",
                            "scores": {"faithfulness": 4, "relevance": 5, "informativeness": 2}} and r2["done"] == 1
    trail = repo.audit(entity_id=k)
    assert [(e["who"], e["action"]) for e in trail] == [("ann", "create"), ("ann", "submit")]
    assert trail[-1]["before"]["scores"] == {"faithfulness": 4} and "system" not in trail[-1]["after"]
    assert rt.rater_task(repo, ANN, doc["id"])["task_id"] != k  # the next open task
    cp.set_campaign_status(repo, ADMIN, doc["id"], "closed")
    with pytest.raises(ValidationError, match="closed"):
        rt.save_rating(repo, ANN, doc["id"], k, comment="late", expected_version=2)
    repo.close()
    repo = Repository(tmp_path / "store")  # durable: a fresh process-level open sees the submitted rating
    assert rt.rater_task(repo, ANN, doc["id"], k)["rating"]["scores"]["informativeness"] == 2
    repo.close()


def rate_everything(repo, doc, seed=0, skip=()):
    """Every rater rates every task with seeded random scores/choices; returns what was entered."""
    rng = random.Random(seed)
    entered = []
    for rater, ids in doc["assignments"].items():
        who = Access(rater, "annotator")
        for k in ids:
            if k in skip:
                rt.save_rating(repo, who, doc["id"], k,
                               scores={"faithfulness": 1} if doc["tasks"][k]["kind"] == "rubric"
                               else None, choice=None if doc["tasks"][k]["kind"] == "rubric" else "a")
                continue
            t = doc["tasks"][k]
            if t["kind"] == "rubric":
                bias = 1 if t["system"] == "m-beta" else 0
                scores = {c: min(5, rng.randint(1, 4) + bias) for c in cp.CRITERIA}
                rt.save_rating(repo, who, doc["id"], k, scores=scores, submit=True)
                entered.append({"rater": rater, "target": t["target"], "system": t["system"], **scores})
            else:
                choice = rng.choice(["a", "b", "b", "tie", "both_bad"])
                rt.save_rating(repo, who, doc["id"], k, choice=choice, submit=True)
                entered.append({"rater": rater, "target": t["target"], "left": t["left"], "right": t["right"],
                                "choice": choice})
    return entered


def wilson(s, n, z=1.959963984540054):
    p = s / n
    centre, half = ((p + z * z / (2 * n)) / (1 + z * z / n),
                    z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n))
    return centre - half, centre + half


def icc2k_by_hand(y):
    y = np.asarray(y, float)
    n, k = y.shape
    g = y.mean()
    msr = k * ((y.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(0) - g) ** 2).sum() / (k - 1)
    sse = ((y - g) ** 2).sum() - msr * (n - 1) - msc * (k - 1)
    mse = sse / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (msc - mse) / n)


def test_results_match_an_independent_computation(repo):
    doc = new_campaign(repo, n_targets=10)
    draft = doc["assignments"]["bob"][0]
    entered = rate_everything(repo, doc, seed=5, skip={draft})
    res = cr.campaign_results(repo, doc["id"], ADMIN)
    with pytest.raises(PermissionDenied):
        cr.campaign_results(repo, doc["id"], ANN)
    rubric = [e for e in entered if "system" in e]
    assert res["n_ratings"] == {"rubric": len(rubric), "pairwise": 20}
    for system in SYSTEMS:
        for c in cp.CRITERIA:
            vals = np.array([e[c] for e in rubric if e["system"] == system], float)
            row = next(r for r in res["rubric"]["rows"] if r["system"] == system and r["criterion"] == c)
            half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / math.sqrt(len(vals))
            assert row["n"] == len(vals)
            assert row["mean"]["value"] == pytest.approx(vals.mean())
            assert (row["mean"]["low"], row["mean"]["high"]) == pytest.approx((vals.mean() - half, vals.mean() + half))
            passed = int((vals >= 3).sum())
            assert row["pass_rate"]["value"] == pytest.approx(passed / len(vals))
            assert (row["pass_rate"]["low"], row["pass_rate"]["high"]) == pytest.approx(wilson(passed, len(vals)))
    pairs = [e for e in entered if "choice" in e]
    wins = {s: 0.0 for s in SYSTEMS}
    compared = 0
    for e in pairs:
        if e["choice"] == "both_bad":
            continue
        compared += 1
        if e["choice"] == "tie":
            wins[e["left"]] += .5
            wins[e["right"]] += .5
        else:
            wins[e["left"] if e["choice"] == "a" else e["right"]] += 1
    pair = res["pairwise"]["pairs"][0]
    assert (pair["system_a"], pair["system_b"]) == ("m-alpha", "m-beta")
    assert pair["win_rate_a"]["value"] == pytest.approx(wins["m-alpha"] / compared)
    assert (pair["win_rate_a"]["low"], pair["win_rate_a"]["high"]) == pytest.approx(wilson(wins["m-alpha"], compared))
    assert (pair["both_bad"] == sum(e["choice"] == "both_bad" for e in pairs)
            and res["pairwise"]["bradley_terry"] is None)
    units = sorted({(e["target"], e["system"]) for e in rubric})
    for c in cp.CRITERIA:
        data = [[next((e[c] for e in rubric if e["rater"] == r and (e["target"], e["system"]) == u),
                      np.nan) for u in units]
                for r in ("ann", "bob")]
        alpha = krippendorff.alpha(reliability_data=np.array(data, float), level_of_measurement="ordinal",
                                   value_domain=[1, 2, 3, 4, 5])
        assert res["agreement"][c]["alpha"]["alpha"] == pytest.approx(alpha)
        full = [u for u in units if all(not np.isnan(data[j][units.index(u)]) for j in range(2))]
        icc = res["agreement"][c]["icc"]
        assert (icc["k"], icc["n_targets"], icc["n_left_out"], icc["raters"]) == (2, len(full), 1, ["ann", "bob"])
        y = [[data[j][units.index(u)] for j in range(2)] for u in full]
        assert icc["value"] == pytest.approx(icc2k_by_hand(y))


def test_icc_uses_the_largest_complete_block_and_bradley_terry_for_three_systems(repo):
    units = {("t1", "x"): {"a": 1, "b": 2}, ("t2", "x"): {"a": 3, "b": 3}, ("t3", "x"): {"a": 5, "b": 4, "c": 5},
             ("t4", "x"): {"b": 2, "c": 2}}
    got = cr.icc_2k(units)
    assert (got["raters"], got["n_targets"], got["n_left_out"]) == (["a", "b"], 3, 1)
    assert got["value"] == pytest.approx(icc2k_by_hand([[1, 2], [3, 3], [5, 4]]))
    assert cr.icc_2k({("t1", "x"): {"a": 1, "b": 2}})["value"] is None
    doc = new_campaign(repo, systems=["m-alpha", "m-beta", "expert"], mode="pairwise", n_targets=8)
    rank = {"expert": 0, "m-beta": 1, "m-alpha": 2}
    # mostly the better one; the exceptions follow the task (target, rater, pair), not its place in the rater's
    # order, which is shuffled per campaign id (a random order once tied beta and alpha)
    key = lambda t: (t["target"], t["rater"], sorted([t["left"], t["right"]]))  # noqa: E731
    order = sorted((key(t) for t in doc["tasks"].values() if t["kind"] == "pairwise"))
    for rater, ids in doc["assignments"].items():
        for k in ids:
            t = doc["tasks"][k]
            better = "a" if rank[t["left"]] < rank[t["right"]] else "b"
            choice = {"a": "b", "b": "a"}[better] if order.index(key(t)) % 4 == 0 else better
            rt.save_rating(repo, Access(rater, "annotator"), doc["id"], k, choice=choice, submit=True)
    bt = cr.campaign_results(repo, doc["id"])["pairwise"]["bradley_terry"]
    assert bt["strength"]["expert"] > bt["strength"]["m-beta"] > bt["strength"]["m-alpha"]
    assert sum(bt["strength"].values()) == pytest.approx(1)


def test_export_writes_ratings_and_results_as_csv_and_json(repo):
    doc = new_campaign(repo, n_targets=4)
    rate_everything(repo, doc, seed=1)
    k = doc["assignments"]["ann"][0]
    v = rt.rater_task(repo, ANN, doc["id"], k)["rating"]["version"]
    rt.save_rating(repo, ANN, doc["id"], k, comment='=HYPERLINK("http://x")', expected_version=v)
    with pytest.raises(PermissionDenied):
        cr.export_campaign(repo, ANN, doc["id"])
    paths = cr.export_campaign(repo, ADMIN, doc["id"])
    with open(paths["ratings_csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 2 * (2 * 3 + 1) and set(rows[0]) == set(cr.RATING_COLUMNS)
    assert {r["comment"] for r in rows if r["task"] == k} == {"'=HYPERLINK(\"http://x\")"}  # no formula injection
    with open(paths["results_csv"], newline="", encoding="utf-8") as fh:
        results = list(csv.DictReader(fh))
    sections = {r["section"] for r in results}
    assert {"rubric_mean", "rubric_pass_rate", "pairwise_win_rate_a", "krippendorff_alpha_ordinal",
            "icc_2k"} <= sections
    data = json.loads(open(paths["json"], encoding="utf-8").read())
    assert data["results"] == json.loads(json.dumps(cr.campaign_results(repo, doc["id"])))
    assert data["campaign"]["targets"][0]["outputs"]["m-alpha"]["source"]["prediction_id"]


# ----------------------------------------------------------------------------- through the app's API
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gradio_client import Client

    from studio.app import build_app
    from studio_testing import serve

    repo = build_repo(tmp_path_factory.mktemp("eval-api") / "store")
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo, client=lambda u: Client(url, auth=(u, "password-" + u),
                                                                          verbose=False))
    repo.close()


def test_api_raters_get_blind_tasks_and_no_reveal_before_finishing(served):
    from gradio_client.exceptions import AppError

    admin, ann, bob = served.client("admin"), served.client("ann"), served.client("bob")
    made = admin.predict("API run", ["m-beta", "expert"], ["ann", "bob"], "both", 4, 2, "random", "dimension", [], [],
                         7,
                         api_name="/eval_create")
    assert made["per_rater"] == {"ann": 12, "bob": 12}
    cid = made["id"]
    seen = set()
    view = ann.predict(cid, "", api_name="/eval_task")
    while view["kind"] == "rubric":
        text = json.dumps(view)
        assert "m-beta" not in text and "expert" not in text and "system" not in text
        res = ann.predict(cid, view["task_id"], {"faithfulness": 4, "relevance": 3, "informativeness": 2}, "", "", True,
                          view["rating"]["version"], api_name="/eval_save")
        assert res["status"] == "saved" and "reveal" not in res
        seen.add(view["task_id"])
        view = ann.predict(cid, "", api_name="/eval_task")
    assert len(seen) == 8 and view["position"] == 9
    assert "m-beta" not in json.dumps(view) and "expert" not in json.dumps(view) and "reveal" not in view
    res = ann.predict(cid, view["task_id"], None, "close call", "tie", True, 0, api_name="/eval_save")
    assert "reveal" not in res and "m-beta" not in json.dumps(res)  # revealed only when ann has finished
    # (the rest of the campaign, through to the reveal: tests/studio/test_blind_pairwise.py)
    with pytest.raises(AppError, match="not one of yours"):
        bob.predict(cid, view["task_id"], api_name="/eval_task")
    with pytest.raises(AppError, match="needs the role admin"):
        ann.predict(cid, api_name="/eval_results")
    with pytest.raises(AppError, match="needs the role admin"):
        ann.predict(cid, api_name="/eval_export")
    assert "systems" not in ann.predict(api_name="/eval_campaigns")[0]
    results = admin.predict(cid, api_name="/eval_results")
    assert results["n_ratings"] == {"rubric": 8, "pairwise": 1} and results["progress"]["ann"] == {"done": 9,
                                                                                                   "total": 12}
    files = admin.predict(cid, api_name="/eval_export")
    assert len(files) == 3


def test_rater_and_results_html_escape_model_text(repo):
    from studio import evaluation_render as et

    evil = '<img src=x onerror="alert(1)"><script>x()</script>'
    html = et.output_html("A", {"score": 3, "score_label": evil, "rationale": evil, "evidence": [2]})
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    doc = new_campaign(repo, n_targets=2)
    rate_everything(repo, doc, seed=2)
    res = cr.campaign_results(repo, doc["id"])
    res["campaign"]["name"] = evil
    res["rubric"]["rows"][0]["system"] = evil
    out = et.results_html(res)
    assert "<script>" not in out and "<img" not in out and out.count("&lt;script&gt;") >= 2
    means, wins = et.plots(res)
    assert len(means) == 6 and list(wins.columns) == ["pair", "win rate of the first"] and len(wins) == 1
