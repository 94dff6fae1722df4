"""Blind pairwise human evaluation (issue 17) on a real store and through the app's API: pairs of identical
texts are never shown (and are counted), A/B sides come from the seed and are stored, and no system name
reaches a rater before they have finished the campaign (unless the admin chose to reveal after each choice)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from care_model.core.errors import ValidationError
from studio import campaign_rating as rt
from studio import campaign_setup as cs
from studio.access import Access

from studio_testing import PAIRWISE_SAME, pairwise_store, password

ADMIN, ANN, BOB = Access("admin", "admin"), Access("ann", "annotator"), Access("bob", "annotator")
MODEL = "m-secret-model"
SESSIONS = ("s1", "s2", "s3")
SAME = PAIRWISE_SAME


def build_repo(root):
    return pairwise_store(root, SESSIONS)


@pytest.fixture
def repo(tmp_path):
    r = build_repo(tmp_path / "store")
    yield r
    r.close()


def _pairwise_views(repo, access, doc):
    return [rt.rater_task(repo, access, doc["id"], k) for k in doc["assignments"][access.username]
            if doc["tasks"][k]["kind"] == "pairwise"]


def test_identical_pairs_are_skipped_and_counted(repo):
    n_distinct = len(SESSIONS) * (12 - len(SAME))
    doc = cs.create_campaign(repo, ADMIN, name="pw", systems=[MODEL, "expert"], mode="pairwise",
                             n_targets=n_distinct, raters=["ann", "bob"], overlap=2, seed=5)
    assert doc["sampling"]["identical_skipped"] == {"targets": len(SESSIONS) * len(SAME), "pairs": 0}
    assert all(t["item"] not in SAME for t in doc["targets"])
    views = _pairwise_views(repo, ANN, doc)
    assert len(views) == n_distinct and all(v["a"]["rationale"] != v["b"]["rationale"] for v in views)
    with pytest.raises(ValidationError, match=r"identical texts.*19 were asked for"):
        cs.create_campaign(repo, ADMIN, name="pw", systems=[MODEL, "expert"], mode="pairwise", n_targets=19,
                           raters=["ann"], overlap=1)
    both = cs.create_campaign(repo, ADMIN, name="both", systems=[MODEL, "expert"], mode="both", n_targets=36,
                              raters=["ann"], overlap=1, seed=5)  # all targets rated; pairs only if they differ
    assert both["sampling"]["identical_skipped"] == {"targets": 0, "pairs": len(SESSIONS) * len(SAME)}
    kinds = [both["tasks"][k]["kind"] for k in both["assignments"]["ann"]]
    assert kinds.count("rubric") == 72 and kinds.count("pairwise") == n_distinct
    assert all(v["a"]["rationale"] != v["b"]["rationale"] for v in _pairwise_views(repo, ANN, both))


def test_sides_are_seeded_per_target_and_stored(repo):
    def sides(seed):
        doc = cs.create_campaign(repo, ADMIN, name="pw", systems=[MODEL, "expert"], mode="pairwise", n_targets=18,
                                 raters=["ann"], overlap=1, seed=seed)
        targets = {t["id"]: (t["session_id"], t["item"]) for t in doc["targets"]}
        return {targets[t["target"]]: t["left"] for t in doc["tasks"].values()}

    first = sides(11)
    assert sides(11) == first  # the same seed, the same sides (another campaign id)
    assert set(first.values()) == {MODEL, "expert"}  # both sides occur
    assert sides(12) != first


def test_no_reveal_before_the_rater_finishes(repo):
    doc = cs.create_campaign(repo, ADMIN, name="pw", systems=[MODEL, "expert"], mode="pairwise", n_targets=4,
                             raters=["ann"], overlap=1, seed=2)
    assert doc["reveal"] == "after_campaign"
    mine = doc["assignments"]["ann"]
    for n, k in enumerate(mine, 1):
        before = json.dumps(rt.rater_task(repo, ANN, doc["id"], k))
        res = rt.save_rating(repo, ANN, doc["id"], k, choice="a", submit=True)
        text = before + json.dumps(res)
        if n < len(mine):
            assert MODEL not in text and "expert" not in text and "reveal" not in text, n
        else:
            assert res["reveal"] == {"a": doc["tasks"][k]["left"], "b": doc["tasks"][k]["right"]}
    for k in mine:  # finished: every comparison shows its systems
        assert sorted(rt.rater_task(repo, ANN, doc["id"], k)["reveal"].values()) == sorted([MODEL, "expert"])


# ----------------------------------------------------------------------------- through the app's API
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gradio_client import Client

    from studio.app import build_app
    from studio_testing import serve

    repo = build_repo(tmp_path_factory.mktemp("blind-api") / "store")
    with serve(build_app(repo, None)) as url:
        yield SimpleNamespace(url=url, repo=repo,
                              client=lambda u: Client(url, auth=(u, password(u)), verbose=False))
    repo.close()


def test_api_reveals_no_system_before_the_rater_finishes(served):
    admin, ann = served.client("admin"), served.client("ann")
    made = admin.predict("Blind", [MODEL, "expert"], ["ann"], "pairwise", 5, 1, "random", "dimension", [], [], 4,
                         False, api_name="/eval_create")
    assert made["reveal"] == "after_campaign" and made["identical_skipped"]["targets"] == 18
    cid, seen = made["id"], []
    for _ in range(made["tasks"]):
        view = ann.predict(cid, "", api_name="/eval_task")
        assert view["a"]["rationale"] != view["b"]["rationale"]
        res = ann.predict(cid, view["task_id"], None, "", "b", True, 0, api_name="/eval_save")
        seen.append((json.dumps(view) + json.dumps(ann.predict(api_name="/eval_campaigns")), res))
    for text, res in seen[:-1]:
        text += json.dumps(res)
        assert MODEL not in text and "expert" not in text and "reveal" not in text
    assert sorted(seen[-1][1]["reveal"].values()) == sorted([MODEL, "expert"])
    again = ann.predict(cid, "", api_name="/eval_task")  # finished: the task shown reveals its systems
    assert sorted(again["reveal"].values()) == sorted([MODEL, "expert"])
    each = admin.predict("Open", [MODEL, "expert"], ["ann"], "pairwise", 2, 1, "random", "dimension", [], [], 4,
                         False, True, api_name="/eval_create")  # the admin option: reveal after each choice
    view = ann.predict(each["id"], "", api_name="/eval_task")
    assert "reveal" not in view
    res = ann.predict(each["id"], view["task_id"], None, "", "a", True, 0, api_name="/eval_save")
    assert sorted(res["reveal"].values()) == sorted([MODEL, "expert"])
