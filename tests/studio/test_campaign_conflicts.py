"""Defect 7 of issue 11: a campaign never has a rater rate a curated rationale they wrote, unless
the admin insists, and then it is recorded (campaign document, API, the page's message)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from care_model.core.errors import ValidationError
from care_model.core.records import SHARED
from studio import campaign_setup as cs
from studio import campaigns as cp
from studio.access import Access
from studio.campaign_conflicts import rationale_authors

from test_campaigns import build_repo

ADMIN = Access("admin", "admin")


@pytest.fixture
def repo(tmp_path):
    r = build_repo(tmp_path / "store")  # s1 and s2: curated rationales written by "curator"
    r.add_user("curator", "password-curator", "annotator")
    lab = r.get_label("s2", 3, SHARED)  # bob rewrites the rationale of s2/3: he is one of its authors too
    r.save_label(replace(lab, rationale="Bob's words."), actor="bob", expected_version=lab.version)
    yield r
    r.close()


def expert_campaign(repo, **kw):
    args = dict(name="Expert check", systems=["expert"], mode="rubric", n_targets=24, raters=["admin", "curator",
                                                                                              "bob"],
                overlap=1, session_ids=["s1", "s2"], seed=1)
    return cs.create_campaign(repo, ADMIN, **(args | kw))


def test_rationale_authors(repo):
    assert rationale_authors(repo, "s1", repo.get_label("s1", 3, SHARED).id) == {"curator"}
    assert rationale_authors(repo, "s2", repo.get_label("s2", 3, SHARED).id) == {"curator", "bob"}


def test_raters_are_never_given_rationales_they_wrote(repo):
    doc = expert_campaign(repo)
    assert doc["self_rating"] == {}
    for t in doc["targets"]:
        assert "curator" not in t["raters"], t  # curator wrote every curated rationale here
        if (t["session_id"], t["item"]) == ("s2", 3):
            assert t["raters"] == ["admin"]
    assert doc["assignments"]["curator"] == []


def test_too_few_other_raters_is_refused_unless_the_admin_insists_and_then_recorded(repo):
    with pytest.raises(ValidationError,
                       match="curator wrote its curated rationale and would rate it.*allow self-rating"):
        expert_campaign(repo, raters=["curator", "bob"], overlap=2)
    assert repo.collection(cp.CAMPAIGNS).all() == []
    doc = expert_campaign(repo, raters=["curator", "bob"], overlap=2, allow_self_rating=True)
    assert len(doc["self_rating"]) == 24 and all("curator" in names for names in doc["self_rating"].values())
    assert doc["self_rating"]["t" + next(f"{i + 1:03d}" for i, t in enumerate(doc["targets"])
                                         if (t["session_id"], t["item"]) == ("s2", 3))] == ["bob", "curator"]
    assert cp.get_campaign(repo, doc["id"])["self_rating"] == doc["self_rating"]


def test_model_only_campaigns_are_unaffected(repo):
    doc = cs.create_campaign(repo, ADMIN, name="Models", systems=["m-alpha", "m-beta"], mode="both", n_targets=6,
                             raters=["ann", "bob"], overlap=2, seed=3)
    assert doc["self_rating"] == {} and all(len(t["raters"]) == 2 for t in doc["targets"])
