"""studio.adjudication on a real store: double coding through the review workflow, the queue, the
side-by-side view, final labels (audited, conflict-checked), expert agreement checked against
sklearn and a hand-computed ICC, the next retraining snapshot, and the endpoints via gradio_client."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from care_model.text.snapshot import take_snapshot
from care_model.core.errors import PermissionDenied, ValidationError
from care_model.text.curation import curated_labels
from care_model.core.records import ADJUDICATED, SCORE_SOURCES, Prediction
from store import Repository
from studio import adjudication as adj
from studio import review
from studio.access import Access

from factories import make_session

ADMIN, ANN, BOB = Access("admin", "admin"), Access("ann", "annotator"), Access("bob", "annotator")
ADJ = Access("adj", "adjudicator")
TEXTS = ["How was your week?", "I started running again and it helps me calm down.",
         "What made that possible?", "My sister came along, we agreed to go every Tuesday.",
         "That sounds like a plan you made together.", "Yes, and I want to keep it going."]
# the two experts' scores per item: (session, item) -> (ann, bob)
ANN_SCORES = {"s1": [4, 4, 3, 2, 5, 4, 3, 3, 4, 2, 5, 4], "s2": [2, 3, 3, 4, 4, 1, 2, 5, 3, 3, 4, 2]}
BOB_SCORES = {"s1": [4, 3, 3, 4, 5, 4, 2, 3, 4, 3, 5, 4], "s2": [2, 3, 4, 4, 3, 2, 2, 5, 3, 4, 4, 1]}
MODEL = [3, 4, 3, 3, 4, 4, 3, 2, 4, 3, 4, 3]


def code_session(repo, who: Access, sid: str, scores: list[int]) -> None:
    """An expert codes and submits a session in their own slot, through the review workflow."""
    view = review.open_view(repo, who, sid)
    assert view["slot"] == who.username
    for it, score in zip(view["items"], scores):
        draft = {"score": score, "rationale": f"{who.username}: item {it['item']} scored {score} from turns 1 and 3.",
                 "evidence": [1, 3], "change_reasons": ["wrong_score"] if score != it["prediction"]["score"] else []}
        assert review.save_item(repo, who, sid, it["item"], draft, expected_version=0)["status"] == "saved"
    assert review.submit_session(repo, who, sid)["status"] == "submitted"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    repo = Repository(tmp_path_factory.mktemp("adj") / "store")
    repo.add_sessions([make_session(s, client=f"c-{s}",
                                    texts=[t + f" ({s})" if k % 2 == 0 else t for k, t in enumerate(TEXTS)])
                       for s in ("s1", "s2", "s3")])
    repo.add_predictions([Prediction(id=f"{s}|m1|{i}", session_id=s, item=i, model_version="m1", score=MODEL[i - 1],
                                     rationale=f"Model: item {i} looks like {MODEL[i - 1]}.", evidence=[1])
                          for s in ("s1", "s2", "s3") for i in range(1, 13)])
    for name, role in (("admin", "admin"), ("ann", "annotator"), ("bob", "annotator"), ("adj", "adjudicator")):
        repo.add_user(name, "password-" + name, role)
    repo.assign(["s1", "s2"], ["ann", "bob"], actor="admin", mode="independent")
    for sid in ("s1", "s2"):
        code_session(repo, ANN, sid, ANN_SCORES[sid])
        code_session(repo, BOB, sid, BOB_SCORES[sid])
    yield repo
    repo.close()


def test_queue_lists_double_coded_sessions_disagreements_first_and_is_staff_only(store):
    rows = adj.adjudication_queue(store, ADJ)
    assert [r["session_id"] for r in rows] == ["s1", "s2"] or [r["session_id"] for r in rows] == ["s2", "s1"]
    by = {r["session_id"]: r for r in rows}
    dis = {s: sum(a != b for a, b in zip(ANN_SCORES[s], BOB_SCORES[s])) for s in ("s1", "s2")}
    assert {s: by[s]["disagreements"] for s in by} == dis and rows[0]["session_id"] == max(dis, key=dis.get)
    assert by["s1"]["coders"] == ["ann", "bob"] and by["s1"]["double_coded"] == 12 and by["s1"]["adjudicated"] == 0
    with pytest.raises(PermissionDenied, match="adjudicator or admin"):
        adj.adjudication_queue(store, ANN)
    assert adj.adjudication_queue(store, ADMIN) == rows


def test_view_shows_experts_side_by_side_with_the_model(store):
    view = adj.adjudication_view(store, ADJ, "s1")
    it = view["items"][3]  # item 4: ann 2, bob 4, model 3
    assert it["item"] == 4 and it["disagree"] and it["ready"] and it["final"] is None and it["version"] == 0
    assert [(e["annotator"], e["score"]) for e in it["experts"]] == [("ann", 2), ("bob", 4)]
    assert it["experts"][0]["rationale"].startswith("ann: item 4") and it["experts"][0]["evidence"] == [1, 3]
    assert it["model"]["id"] == "s1|m1|4" and it["model"]["score"] == 3  # the prediction the labels started from
    assert not view["items"][0]["disagree"]
    with pytest.raises(PermissionDenied):
        adj.adjudication_view(store, BOB, "s1")


def test_adjudication_is_recorded_conflict_checked_and_feeds_the_next_snapshot(store):
    before = {(c.session_id, c.item): c
              for labs in take_snapshot(store, session_ids=["s1"], score_sources=SCORE_SOURCES).labels.values()
              for c in labs}
    assert (before[("s1", 4)].score, before[("s1", 4)].source) == (2, "median_of_2")  # lower median of 2 and 4
    _, unresolved = curated_labels(store.labels("s1"))
    assert ("s1", 4) in unresolved

    res = adj.adjudicate(store, ADJ, "s1", 4, source="bob", comment="Goals were agreed explicitly (turn 3).")
    lab = store.get_label("s1", 4, ADJUDICATED)
    assert res["status"] == "saved" and lab.version == 1 and lab.status == "submitted"
    assert (lab.score, lab.rationale, lab.evidence) == (4, "bob: item 4 scored 4 from turns 1 and 3.", [1, 3])
    assert lab.adjudicated_from == ["s1|4|bob",
                                    "s1|4|ann"] and lab.updated_by == "adj" and lab.prediction_id == "s1|m1|4"
    trail = store.audit(entity_id=lab.id)
    assert [(e["who"], e["action"]) for e in trail] == [("adj", "adjudicate:choose:bob")]
    # a stale save does not overwrite; writing on top of the current version does
    stale = adj.adjudicate(store, ADMIN, "s1", 4, score=3, rationale="Admin's own.", expected_version=0)
    assert stale["status"] == "conflict" and stale["current"]["score"] == 4 and store.get_label("s1", 4,
                                                                                                ADJUDICATED).score == 4
    adj.adjudicate(store, ADJ, "s1", 7, score=5, rationale="Both missed the warmth in turn 5.", evidence=[5])
    with pytest.raises(ValidationError, match="no rationale"):
        adj.adjudicate(store, ADJ, "s1", 2, score=3, rationale="  ")
    with pytest.raises(ValidationError, match="no submitted label"):
        adj.adjudicate(store, ADJ, "s1", 2, source="cat")
    with pytest.raises(ValidationError, match="No expert has submitted"):
        adj.adjudicate(store, ADJ, "s3", 2, source="model")
    with pytest.raises(PermissionDenied):
        adj.adjudicate(store, ANN, "s1", 2, source="ann")

    after = {(c.session_id, c.item): c
             for labs in take_snapshot(store, session_ids=["s1"], score_sources=SCORE_SOURCES).labels.values()
             for c in labs}
    assert (after[("s1", 4)].score, after[("s1", 4)].source, after[("s1", 4)].label_ids) == (4, "adjudicated", [lab.id])
    assert (lab.score_source == after[("s1", 4)].score_source == "adjudicated"
            and before[("s1", 4)].score_source == "expert")
    assert after[("s1", 4)].rationale == lab.rationale
    assert (after[("s1", 7)].score, after[("s1", 7)].evidence, after[("s1", 7)].source) == (5, [5], "adjudicated")
    assert after[("s1", 1)] == before[("s1", 1)]  # items nobody adjudicated keep the rule's choice
    chosen, unresolved = curated_labels(store.labels("s1"))
    assert ("s1", 4) not in unresolved and next(c for c in chosen if c.item == 4).annotator == ADJUDICATED
    row = next(r for r in adj.adjudication_queue(store, ADJ) if r["session_id"] == "s1")
    assert row["adjudicated"] == 2


def icc21_by_hand(y):
    y = np.asarray(y, float)
    n, k = y.shape
    g = y.mean()
    msr = k * ((y.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(0) - g) ** 2).sum() / (k - 1)
    mse = (((y - g) ** 2).sum() - msr * (n - 1) - msc * (k - 1)) / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


def test_expert_agreement_matches_sklearn_and_a_hand_computed_icc(store):
    rep = adj.expert_agreement_report(store, ADJ)
    assert rep["sessions"] == ["s1", "s2"] and rep["experts"] == ["ann", "bob"]
    rows = {(r["rater_a"], r["rater_b"], r["target"]): r for r in rep["rows"]}
    a = ANN_SCORES["s1"] + ANN_SCORES["s2"]
    b = BOB_SCORES["s1"] + BOB_SCORES["s2"]
    m = MODEL + MODEL
    overall = rows[("ann", "bob", "overall")]
    assert overall["n"] == 24
    assert overall["qwk"] == pytest.approx(cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5]))
    assert overall["icc"] == pytest.approx(icc21_by_hand(list(zip(a, b))))
    goal = [i - 1 for i in (4, 6, 8, 11)]
    ga = [ANN_SCORES[s][i] for s in ("s1", "s2") for i in goal]
    gb = [BOB_SCORES[s][i] for s in ("s1", "s2") for i in goal]
    assert rows[("ann", "bob", "goal")]["qwk"] == pytest.approx(cohen_kappa_score(ga, gb, weights="quadratic",
                                                                                  labels=[1, 2, 3, 4, 5]))
    assert rows[("ann", "bob", "goal")]["icc"] == pytest.approx(icc21_by_hand(list(zip(ga, gb))))
    assert rows[("ann", "bob", "item 4")]["n"] == 2
    vs_model = rows[("bob", "model", "overall")]
    assert vs_model["qwk"] == pytest.approx(cohen_kappa_score(b, m, weights="quadratic", labels=[1, 2, 3, 4, 5]))
    assert vs_model["icc"] == pytest.approx(icc21_by_hand(list(zip(b, m))))
    assert rep["alpha"]["overall"]["alpha"] is not None
    with pytest.raises(PermissionDenied):
        adj.expert_agreement_report(store, ANN)


@pytest.fixture(scope="module")
def served(store):
    from gradio_client import Client

    from studio.app import build_app
    from studio_testing import serve

    with serve(build_app(store, None)) as url:
        yield SimpleNamespace(url=url, client=lambda u: Client(url, auth=(u, "password-" + u), verbose=False))


def test_api_adjudicator_adjudicates_annotator_is_refused(served, store):
    from gradio_client.exceptions import AppError

    a = served.client("adj")
    assert {r["session_id"] for r in a.predict(api_name="/adjudication_queue")} == {"s1", "s2"}
    view = a.predict("s2", api_name="/adjudication_view")
    it = next(x for x in view["items"] if x["item"] == 3)
    res = a.predict("s2", 3, "model", None, None, None, "", it["version"], api_name="/adjudicate")
    assert res["status"] == "saved" and res["label"]["score"] == MODEL[2] and res["label"]["updated_by"] == "adj"
    assert store.get_label("s2", 3, ADJUDICATED).adjudicated_from == ["s2|3|ann", "s2|3|bob"]
    assert a.predict(api_name="/expert_agreement")["experts"] == ["ann", "bob"]
    ann = served.client("ann")
    for api_name, args in (("/adjudication_queue", ()), ("/adjudication_view", ("s2",)),
                           ("/adjudicate", ("s2", 1, "ann", None, None, None, "", 0)), ("/expert_agreement", ())):
        with pytest.raises(AppError, match="adjudicator or admin"):
            ann.predict(*args, api_name=api_name)
    assert store.get_label("s2", 1, ADJUDICATED) is None


def test_side_by_side_html_escapes_label_text(store):
    from studio.adjudication_tab import item_html

    view = adj.adjudication_view(store, ADJ, "s1")
    evil = '<img src=x onerror="alert(1)"><script>x()</script>'
    view["items"][0]["experts"][0]["rationale"] = evil
    view["items"][0]["experts"][0]["annotator"] = evil
    html = item_html(view, 1)
    assert "<script>" not in html and "<img" not in html and html.count("&lt;script&gt;") >= 2
