"""care_model.stats.evaluate: the paper's protocol and agreement with experts, on hand-checked fixtures;
version comparison and cross-validation folds."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from care_model.stats import agreement as ag
from care_model.stats import evaluate as ev
from care_model.stats import correlations as corr
from care_model.stats import evaluation_report as er
from care_model.stats import folds as fo
from care_model.text import curation
from care_model.core.errors import ValidationError
from care_model.core.records import ADJUDICATED, SHARED
from care_model.core.wai import load_form
from factories import hand_checked_evaluation, make_label, make_prediction, make_session

FORM = load_form()
ITEMS = FORM.item_ids


def fake_similarity(hyps, refs):
    """Stand-in for the embedding model: 1 for identical text, 0.25 otherwise."""
    return [1.0 if h == r else 0.25 for h, r in zip(hyps, refs)]


def strict_json(obj) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)




# ---------------------------------------------------------------------------------------------
# evaluate_predictions on a hand-made fixture
# ---------------------------------------------------------------------------------------------
def test_evaluate_predictions_by_hand():
    sessions, preds, labels = hand_checked_evaluation()
    preds[0].parse_status = "failed"  # s0, item 1: counts against the parse rate ...
    preds[0].score = None  # ... and leaves s0's task mean undefined (needs all 4 items)
    rep = ev.evaluate_predictions(sessions, preds, labels, form=FORM, n_boot=200, similarity=fake_similarity)
    assert (rep.model_version, rep.n_sessions, rep.n_predictions, rep.n_labels) == ("m1", 4, 48, 36)
    assert rep.parse_rate.value == pytest.approx(47 / 48)
    # goal: pred = 3, 3, 3, 4 vs truth 2, 3, 3, 5 -> MSE = (1 + 0 + 0 + 1)/4
    goal = rep.correlations["goal"]
    assert goal.n == 4 and goal.mse.value == pytest.approx(0.5)
    x, y = np.array([3, 3, 3, 4.0]), np.array([2, 3, 3, 5.0])
    assert goal.pearson.value == pytest.approx(np.corrcoef(x, y)[0, 1])
    # task: s0 is left out (item 1 unparsed): pred 3, 3, 4 vs truth 3, 3, 5
    assert rep.correlations["task"].n == 3
    # counselor baseline: only s1 has counselor ratings -> n = 1, no correlation
    assert rep.counselor_correlations["goal"].n == 1 and rep.counselor_correlations["goal"].pearson.value is None
    # experts: labels = truth on s0..s2; s0 is off by one (11 parsed items), s1 and s2 exact
    ea = rep.expert_agreement
    assert ea.overall.n == 35
    assert ea.overall.exact.value == pytest.approx(24 / 35)
    assert ea.overall.within_one.value == 1.0
    assert ea.overall.mae.value == pytest.approx(11 / 35)
    assert ea.items[1].n == 2 and ea.items[2].n == 3
    assert ea.items[2].exact.value == pytest.approx(2 / 3)
    keys = [(s, i) for s in ("s0", "s1", "s2") for i in FORM.dimension("bond").item_ids]
    truth = {s.id: s.ratings["client"] for s in sessions}
    pred_scores = {(p.session_id, p.item): p.score for p in preds}
    assert ea.dimensions["bond"].qwk.value == pytest.approx(
        ag.weighted_kappa([truth[s][i] for s, i in keys], [pred_scores[(s, i)] for s, i in keys]))
    # rationales identical in the fixture -> BLEU 100, ROUGE 1, similarity 1; s2 is Chinese
    assert rep.text.n_pairs == 36 and rep.text.languages == {"en": 24, "zh": 12}
    assert rep.text.bleu.value == pytest.approx(100.0) and rep.text.rouge1.value == pytest.approx(1.0)
    assert rep.text.embedding.value == pytest.approx(1.0)
    strict_json(rep.to_dict())
    rows = rep.summary_rows()
    assert {r["section"] for r in rows} == {"parse", "self_report", "counselor_baseline", "experts", "rationale"}
    assert len([r for r in rows if r["section"] == "experts"]) == (12 + 3 + 1) * 4
    back = er.EvaluationReport.from_dict(json.loads(strict_json(rep.to_dict())))
    assert back.summary_rows() == rows


def test_expected_score_field_and_require_all_items():
    sessions, preds, _ = hand_checked_evaluation()
    for p in preds:
        p.expected_score = p.score + 0.25
    rep = ev.evaluate_predictions(sessions, preds, [], n_boot=0, score_field="expected_score")
    assert rep.correlations["goal"].mse.value == pytest.approx(((1.25 ** 2) + 0.25 ** 2 + 0.25 ** 2 + 0.75 ** 2) / 4)
    preds[0].score = None
    strict = ev.evaluate_predictions(sessions, preds, [], n_boot=0)
    loose = ev.evaluate_predictions(sessions, preds, [], n_boot=0, require_all_items=False)
    assert strict.correlations["task"].n == 3 and loose.correlations["task"].n == 4


def test_what_is_not_available_is_left_out_with_notes():
    sessions, preds, _ = hand_checked_evaluation()
    for s in sessions:
        s.ratings = {}
    rep = ev.evaluate_predictions(sessions, preds, [], n_boot=50)
    assert rep.correlations == {} and rep.expert_agreement is None and rep.text is None
    assert any("self-report" in n for n in rep.notes) and any("No expert labels" in n for n in rep.notes)
    assert [r["section"] for r in rep.summary_rows()] == ["parse"]
    strict_json(rep.to_dict())
    empty = ev.evaluate_predictions(sessions, [], [], n_boot=10)
    assert empty.parse_rate.value is None and empty.n_predictions == 0
    strict_json(empty.to_dict())
    # labels without rationales: agreement yes, text no
    _, _, labels = hand_checked_evaluation()
    for lab in labels:
        lab.rationale = ""
    rep = ev.evaluate_predictions(hand_checked_evaluation()[0], preds, labels, n_boot=0)
    assert rep.expert_agreement is not None and rep.text is None


def test_scores_only_predictions_are_not_parse_failures_and_have_no_rationale_pairs():
    sessions, preds, labels = hand_checked_evaluation()
    for p in preds:
        if p.session_id in ("s0", "s1"):
            p.mode, p.parse_status, p.rationale = "scores_only", "scores_only", ""
    preds[-1].parse_status = "failed"  # s3, item 12: a full-mode failure
    rep = ev.evaluate_predictions(sessions, preds, labels, n_boot=0, similarity=fake_similarity)
    assert rep.parse_rate.value == pytest.approx(23 / 24) and rep.parse_rate.n == 24
    assert rep.text.n_pairs == 12  # only s2 (s3 has no labels; s0 and s1 are scores-only)
    assert rep.expert_agreement.overall.n == 36  # scores-only predictions still have scores
    for p in preds:
        p.mode, p.parse_status = "scores_only", "scores_only"
    rep = ev.evaluate_predictions(sessions, preds, labels, n_boot=0, similarity=fake_similarity)
    assert rep.parse_rate.value is None and "scores-only" in rep.parse_rate.reason
    assert rep.text is None


def test_counselor_baseline_uses_the_evaluated_sessions_only():
    rng = np.random.default_rng(8)
    sessions, preds = [], []
    for s in range(8):
        truth = {i: int(rng.integers(1, 6)) for i in ITEMS}
        sess = make_session(f"s{s}", client=f"c{s}", ratings=truth)
        sess.ratings["counselor"] = {i: int(rng.integers(1, 6)) for i in ITEMS}
        sessions.append(sess)
        if s < 5:
            preds += [make_prediction(sess.id, i, 3) for i in ITEMS]
    rep = ev.evaluate_predictions(sessions, preds, [], n_boot=0)
    assert rep.counselor_correlations["bond"].n == 5
    by_hand = corr.dimension_correlations(
        {s.id: FORM.dimension_scores(s.ratings["counselor"]) for s in sessions[:5]},
        {s.id: FORM.dimension_scores(s.ratings["client"]) for s in sessions[:5]}, n_boot=0)
    assert rep.counselor_correlations["bond"].pearson.value == pytest.approx(by_hand["bond"].pearson.value)
    # constant predictions: the model's correlations are undefined, with the reason
    assert rep.correlations["goal"].pearson.value is None and "constant" in rep.correlations["goal"].pearson.reason


def test_input_errors_name_the_fix():
    sessions, preds, labels = hand_checked_evaluation()
    other = make_prediction("s0", 1, 3, version="m2")
    with pytest.raises(ValidationError, match="several model versions") as err:
        ev.evaluate_predictions(sessions, preds + [other], labels, n_boot=0)
    assert "latest_predictions" in str(err.value)
    with pytest.raises(ValidationError, match="Two labels"):
        ev.evaluate_predictions(sessions, preds, labels + [labels[0]], n_boot=0)
    with pytest.raises(ValidationError, match="Two predictions"):
        ev.evaluate_predictions(sessions, preds + [preds[0]], labels, n_boot=0)
    with pytest.raises(ValidationError, match="given twice"):
        ev.evaluate_predictions(sessions + [sessions[0]], preds, labels, n_boot=0)


def test_latest_predictions_and_curated_labels():
    old = make_prediction("s0", 1, 2, pid="a")
    old.created_at = "2026-01-01T00:00:00"
    new = make_prediction("s0", 1, 4, pid="b")
    new.created_at = "2026-02-01T00:00:00"
    other = make_prediction("s0", 1, 5, version="m2", pid="c")
    assert [p.id for p in ev.latest_predictions([new, old, other], "m1")] == ["b"]
    labs = [
        make_label("s0", 1, 2, annotator="e1", status="submitted"),
        make_label("s0", 1, 3, annotator=ADJUDICATED, status="submitted"),
        make_label("s0", 2, 4, annotator=SHARED, status="submitted"),
        make_label("s0", 2, 5, annotator="e1", status="submitted"),
        make_label("s0", 3, 1, annotator="e1", status="submitted"),
        make_label("s0", 4, 1, annotator="e1", status="submitted"),
        make_label("s0", 4, 2, annotator="e2", status="submitted"),
        make_label("s0", 5, 2, annotator=ADJUDICATED, status="draft"),
    ]
    chosen, unresolved = curation.curated_labels(labs)
    got = {(lab.item, lab.annotator, lab.score) for lab in chosen}
    assert got == {(1, ADJUDICATED, 3), (2, SHARED, 4), (3, "e1", 1)}
    assert unresolved == [("s0", 4)]


# ---------------------------------------------------------------------------------------------
# comparing two model versions
# ---------------------------------------------------------------------------------------------
def test_compare_reports_verdicts():
    rng = np.random.default_rng(9)
    sessions, good, bad, labels = [], [], [], []
    for s in range(30):
        truth = {i: int(rng.integers(1, 6)) for i in ITEMS}
        sessions.append(make_session(f"s{s}", client=f"c{s}", ratings=truth))
        for i in ITEMS:
            good.append(make_prediction(f"s{s}", i, truth[i], version="cand"))
            bad.append(make_prediction(f"s{s}", i, int(rng.integers(1, 6)), version="active"))
            labels.append(make_label(f"s{s}", i, truth[i], status="submitted"))
    cand = ev.evaluate_predictions(sessions, good, labels, n_boot=200, with_text_metrics=False)
    act = ev.evaluate_predictions(sessions, bad, labels, n_boot=200, with_text_metrics=False)
    cmp = er.compare_reports(cand, act.to_dict())
    rows = {(r["section"], r["target"], r["metric"]): r for r in cmp["rows"]}
    assert cmp["candidate"] == "cand" and cmp["active"] == "active"
    assert rows[("experts", "overall", "exact")]["verdict"] == "better"
    assert rows[("experts", "overall", "mae")]["verdict"] == "better"  # lower MAE is better
    assert rows[("experts", "overall", "mae")]["difference"] < 0
    assert rows[("self_report", "goal", "pearson")]["verdict"] == "better"
    assert rows[("parse", "all", "parse_rate")]["verdict"] == "same"
    assert all(r["section"] != "counselor_baseline" for r in cmp["rows"])
    assert sum(cmp["counts"].values()) == len(cmp["rows"])
    reverse = er.compare_reports(act, cand)
    assert {(r["section"], r["target"], r["metric"]): r["verdict"] for r in reverse["rows"]}[
        ("experts", "overall", "qwk")] == "worse"
    same = er.compare_reports(cand, cand)
    assert set(same["counts"]) >= {"same"} and same["counts"]["better"] == same["counts"]["worse"] == 0
    # without intervals the point values decide
    nob = er.compare_reports(ev.evaluate_predictions(sessions, good, labels, n_boot=0, with_text_metrics=False),
                             ev.evaluate_predictions(sessions, bad, labels, n_boot=0, with_text_metrics=False))
    row = next(r for r in nob["rows"] if r["metric"] == "exact" and r["target"] == "overall")
    assert row["verdict"] == "better" and row["basis"] == "point"
    strict_json(cmp)


# ---------------------------------------------------------------------------------------------
# cross-validation folds
# ---------------------------------------------------------------------------------------------
def _cv_input():
    rows = []
    for c in range(10):
        score = 1.5 if c < 5 else 4.5  # five low-alliance clients, five high-alliance clients
        for s in range(3):
            rows.append((f"c{c}-s{s}", f"c{c}", score + 0.1 * s))
    return rows


def test_cv_folds_split_by_client_and_stratified():
    rows = _cv_input()
    client = {sid: c for sid, c, _ in rows}
    score = {sid: sc for sid, _, sc in rows}
    folds = fo.cross_validation_folds(rows, k=5, seed=0)
    assert len(folds) == 5
    all_test = [sid for _, test in folds for sid in test]
    assert sorted(all_test) == sorted(sid for sid, _, _ in rows)  # the test folds partition the sessions
    for train, test in folds:
        assert not ({client[s] for s in train} & {client[s] for s in test})  # no client on both sides
        assert set(train) | set(test) == set(client)
        # stratified: every test fold holds one low- and one high-alliance client
        assert sorted(score[s] < 3 for s in test) == [False] * 3 + [True] * 3
    assert fo.cross_validation_folds(rows, k=5, seed=0) == folds  # seeded, deterministic
    assert fo.cross_validation_folds(rows, k=5, seed=1) != folds


def test_cv_folds_errors():
    rows = _cv_input()[:9]  # three clients
    with pytest.raises(ValidationError, match="Only 3 client") as err:
        fo.cross_validation_folds(rows, k=5)
    assert "--cv 3" in str(err.value)
    with pytest.raises(ValidationError):
        fo.cross_validation_folds(rows, k=1)
    with pytest.raises(ValidationError, match="no client id"):
        fo.cross_validation_folds([("a", "", 1.0), ("b", "x", 2.0)], k=2)
    # unknown scores are a stratum of their own
    folds = fo.cross_validation_folds([(f"s{i}", f"c{i}", None if i % 2 else float(i)) for i in range(6)], k=3)
    assert sorted(s for _, t in folds for s in t) == sorted(f"s{i}" for i in range(6))


def test_module_is_pure():
    code = ("import sys, care_model.stats.evaluate, care_model.stats.agreement, care_model.stats.human_eval; "
            "print('torch' in sys.modules, 'tinydb' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]



def test_resolve_unresolved_follows_the_snapshot_rule():
    from care_model.text.curation import curate_item

    labs = [make_label("s1", 1, 2, annotator="e1", status="submitted"),
            make_label("s1", 1, 5, annotator="e2", status="submitted"),
            make_label("s1", 1, 4, annotator="e3", status="submitted"),
            make_label("s1", 2, 3, annotator="e1", status="submitted"),
            make_label("s1", 2, 1, annotator="e2", status="draft")]
    chosen, unresolved = curation.curated_labels(labs)
    assert [(c.item, c.score) for c in chosen] == [(2, 3)] and unresolved == [("s1", 1)]
    resolved = curation.resolve_unresolved(labs, unresolved)
    assert [(r.session_id, r.item, r.score) for r in resolved] == [("s1", 1, 4)]
    assert resolved[0].score == curate_item(labs[:3]).score and resolved[0].annotator == "median_of_3"
