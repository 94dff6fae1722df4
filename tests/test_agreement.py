"""care_model.agreement and care_model.human_eval against published worked examples and hand computations."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from care_model import agreement as ag
from care_model import human_eval as he
from care_model.errors import ValidationError
from care_model.records import ADJUDICATED, SHARED, Label, Prediction
from care_model.wai import load_form

NAN = float("nan")

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units, values 1-5, with missing data. Published: nominal .743, ordinal .815, interval .849.
KRIPP_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SF_1979 = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def _alpha_by_hand(data, metric):
    """Krippendorff's alpha from the coincidence matrix, written out as in the 2011 paper."""
    values = sorted({v for row in data for v in row if v is not None})
    pos = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in range(len(data[0])):
        vals = [row[u] for row in data if row[u] is not None]
        m = len(vals)
        if m < 2:
            continue
        for i, c in enumerate(vals):
            for j, k in enumerate(vals):
                if i != j:
                    o[pos[c], pos[k]] += 1 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()

    def delta2(c, k):
        if metric == "nominal":
            return float(c != k)
        if metric == "interval":
            return (values[c] - values[k]) ** 2
        lo, hi = min(c, k), max(c, k)  # ordinal: marginal sums between the two ranks
        return (n_c[lo:hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2

    idx = range(len(values))
    d_o = sum(o[c, k] * delta2(c, k) for c in idx for k in idx)
    d_e = sum(n_c[c] * n_c[k] * delta2(c, k) for c in idx for k in idx) / (n - 1)
    return 1 - d_o / d_e


@pytest.mark.parametrize("level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_2011_worked_example(level, published):
    res = ag.krippendorff_alpha(KRIPP_2011, level=level, value_domain=[1, 2, 3, 4, 5])
    assert round(res.alpha, 3) == published
    assert res.alpha == pytest.approx(_alpha_by_hand(KRIPP_2011, level), abs=1e-12)
    # the 2011 paper counts 40 pairable values in 11 units (unit 12 has a single value)
    assert (res.n_units, res.n_values, res.n_raters) == (11, 40, 4)


def test_krippendorff_published_exact_nominal_fraction_and_ratio():
    # the exact nominal value (0.7434...) printed to more digits; ratio is a fourth level the paper lists
    assert ag.krippendorff_alpha(KRIPP_2011, level="nominal").alpha == pytest.approx(0.743421, abs=1e-6)
    assert round(ag.krippendorff_alpha(KRIPP_2011, level="ratio").alpha, 3) == 0.797


def test_krippendorff_mapping_input_unused_categories_and_degenerate_cases():
    by_unit = {u: {f"r{r}": KRIPP_2011[r][u] for r in range(4) if KRIPP_2011[r][u] is not None} for u in range(12)}
    assert ag.krippendorff_alpha(by_unit, level="ordinal").alpha == pytest.approx(0.815, abs=5e-4)
    # an unused middle category does not change the ordinal distances
    data = [[1, 1, 5, 5, 2, 5], [1, 2, 5, 4, 1, 5], [2, 1, 5, 5, 1, 4]]
    assert ag.krippendorff_alpha(data, level="ordinal").alpha == pytest.approx(
        ag.krippendorff_alpha(data, level="ordinal", value_domain=[1, 2, 3, 4, 5]).alpha)
    assert ag.krippendorff_alpha(data, level="ordinal").alpha == pytest.approx(_alpha_by_hand(data, "ordinal"))
    same = ag.krippendorff_alpha([[3, 3, 3], [3, 3, 3]])
    assert same.alpha is None and "same" in same.reason
    lone = ag.krippendorff_alpha([[1, None], [None, 2]])
    assert lone.alpha is None and "two raters" in lone.reason
    with pytest.raises(ValidationError):
        ag.krippendorff_alpha(data, level="fancy")
    with pytest.raises(ValidationError):
        ag.krippendorff_alpha([[1, 7], [1, 2]], value_domain=[1, 2, 3, 4, 5])
    json.dumps(same.to_dict())


def test_icc_shrout_fleiss_1979_table_2():
    res = ag.icc(SF_1979)
    # published point values (Shrout & Fleiss 1979, Table 4)
    published = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71,
                 "ICC(1,k)": 0.44, "ICC(2,k)": 0.62, "ICC(3,k)": 0.91}
    for name, value in published.items():
        assert round(res[name].value, 2) == value, name
    # their ANOVA table (Table 3): BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02
    assert [round(res.anova[k], 2) for k in ("MSR", "MSW", "MSC", "MSE")] == [11.24, 6.26, 32.49, 1.02]
    # hand formula for ICC(2,1) from those mean squares
    n, k, bms, jms, ems = 6, 4, 11.241667, 32.486111, 1.019444
    assert res["ICC(2,1)"].value == pytest.approx((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), abs=1e-6)
    # F-based 95% intervals as printed by R psych::ICC for these data
    # (github.com/dwoll/RExRepos, md/interRaterICC.md)
    intervals = {"ICC(1,1)": (-0.133, 0.72), "ICC(2,1)": (0.019, 0.76), "ICC(3,1)": (0.342, 0.95),
                 "ICC(1,k)": (-0.884, 0.91), "ICC(2,k)": (0.071, 0.93), "ICC(3,k)": (0.676, 0.99)}
    for name, (low, high) in intervals.items():
        assert round(res[name].low, 3) == low, name
        assert round(res[name].high, 2) == high, name
    assert res["ICC(2,1)"].f == pytest.approx(11.03, abs=0.01)
    assert (res["ICC(2,1)"].df1, res["ICC(2,1)"].df2) == (5, 15)
    assert res["ICC(2,1)"].p == pytest.approx(0.00013, abs=1e-5)
    json.dumps(res.to_dict())
    assert len(res.to_rows()) == 6


def test_icc_drops_incomplete_targets_and_rejects_tiny_inputs():
    res = ag.icc(SF_1979 + [[1, None, 3, 4]])
    assert res.n_dropped == 1 and res.n_targets == 6
    assert res["ICC(2,1)"].value == pytest.approx(ag.icc(SF_1979)["ICC(2,1)"].value)
    with pytest.raises(ValidationError):
        ag.icc([[1, 2, 3]])
    # perfect agreement: ICC = 1, no crash on a zero residual
    perfect = ag.icc([[1, 1], [3, 3], [5, 5]])
    assert perfect["ICC(2,1)"].value == pytest.approx(1.0)
    json.dumps(perfect.to_dict())


def test_wilson_interval_newcombe_1998_examples():
    # Newcombe (1998) Stat Med 17:857, Table I, method 3 (score interval without continuity correction)
    cases = {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}
    for (x, n), (low, high) in cases.items():
        got = ag.wilson_interval(x, n)
        assert (round(got[0], 4), round(got[1], 4)) == (low, high)
    assert ag.proportion(0, 0).value is None


def test_t_interval_by_hand():
    est = ag.mean_t_interval([1, 2, 3, 4, 5])
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445 (tables)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert est.value == 3 and est.low == pytest.approx(3 - half, abs=1e-5) and est.high == pytest.approx(3 + half, abs=1e-5)
    one = ag.mean_t_interval([4])
    assert one.value == 4 and one.low is None and one.reason


def test_quadratic_kappa_hand_computed():
    # two raters, 4 units, scale 1..3 (k=3): a = 1,2,3,3 ; b = 1,3,3,2
    # O (rows a, cols b): (1,1)=1, (2,3)=1, (3,3)=1, (3,2)=1 ; w = (i-j)^2 -> sum w*O = 0+1+0+1 = 2
    # rows = (1,1,2), cols = (1,1,2); E = outer/4 ; sum w*E = (1*1*1 + 1*2*4 + 1*1*1 + 1*2*1 + 2*1*4 + 2*1*1)/4
    expected_disagreement = (1 * 1 * 1 + 1 * 2 * 4 + 1 * 1 * 1 + 1 * 2 * 1 + 2 * 1 * 4 + 2 * 1 * 1) / 4
    kappa = 1 - 2 / expected_disagreement
    assert ag.weighted_kappa([1, 2, 3, 3], [1, 3, 3, 2], labels=[1, 2, 3]) == pytest.approx(kappa)
    # unweighted 2x2: a = yes,yes,no,no,yes ; b = yes,no,no,no,yes -> po = 4/5, pe = (3*2 + 2*3)/25
    po, pe = 4 / 5, (3 * 2 + 2 * 3) / 25
    assert ag.weighted_kappa([1, 1, 0, 0, 1], [1, 0, 0, 0, 1], labels=[0, 1], weights=None) == pytest.approx((po - pe) / (1 - pe))
    # undefined: both raters use one identical category
    assert ag.weighted_kappa([3, 3, 3], [3, 3, 3]) is None


def test_kappa_from_confusion_matches_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.integers(1, 6, 30)
        b = np.clip(a + rng.integers(-2, 3, 30), 1, 5)
        conf = np.zeros((5, 5))
        np.add.at(conf, (a - 1, b - 1), 1)
        for w in (None, "linear", "quadratic"):
            assert ag.kappa_from_confusion(conf, w) == pytest.approx(ag.weighted_kappa(a, b, weights=w))


def test_score_agreement_by_hand_and_bootstrap():
    a = [1, 2, 3, 4, 5, 3, 2]
    b = [1, 3, 3, 2, 5, 4, 2]
    res = ag.score_agreement(a, b)
    assert res.n == 7
    assert res.exact.value == pytest.approx(4 / 7)  # pairs 1, 3, 5, 7
    assert res.within_one.value == pytest.approx(6 / 7)  # all but (4, 2)
    assert res.mae.value == pytest.approx((0 + 1 + 0 + 2 + 0 + 1 + 0) / 7)
    assert res.qwk.value == pytest.approx(ag.weighted_kappa(a, b))
    boot = ag.score_agreement(a * 5, b * 5, groups=[i // 3 for i in range(35)], n_boot=500, seed=1)
    for m in ag.PairAgreement.METRICS:
        est = getattr(boot, m)
        assert est.low <= est.value <= est.high, m
    with pytest.raises(ValidationError):
        ag.score_agreement([1, 9], [1, 2])


def test_bootstrap_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        x = rng.normal(size=n)
        est = ag.bootstrap_estimate(lambda ix: float(np.mean(x[ix])), n, n_resamples=1000, seed=0)
        assert est.low <= est.value <= est.high
        return est.high - est.low

    assert width(400) < width(25) / 2.5
    # agrees with scipy.stats.bootstrap (percentile) on the mean within Monte-Carlo error
    from scipy import stats
    x = rng.normal(size=60)
    ours = ag.bootstrap_estimate(lambda ix: float(np.mean(x[ix])), 60, n_resamples=4000, seed=2)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=2).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.05) and ours.high == pytest.approx(ref.high, abs=0.05)
    # undefined statistic: value None with a reason, never NaN
    undefined = ag.bootstrap_estimate(lambda ix: float("nan"), 10)
    assert undefined.value is None and undefined.reason


def test_resample_counts_match_indices():
    idx = ag.resample_indices(7, 50, seed=4)
    counts = ag.resample_counts(7, 50, seed=4)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    assert all((np.bincount(row, minlength=7) == c).all() for row, c in zip(idx, counts))


def test_rubric_summary():
    ratings = [{"system": "care", "criterion": "faithfulness", "score": s} for s in (5, 4, 2, 3)]
    ratings += [{"system": "care", "criterion": "relevance", "score": s} for s in (1, 2)]
    ratings += [{"system": "base", "criterion": "faithfulness", "score": 3, "rater": "e1"}]
    res = he.rubric_summary(ratings)
    row = res.get("care", "faithfulness")
    assert row.n == 4 and row.mean.value == 3.5
    half = 3.182446 * np.std([5, 4, 2, 3], ddof=1) / 2  # t(0.975, 3) = 3.182446
    assert row.mean.low == pytest.approx(3.5 - half, abs=1e-5)
    assert row.pass_rate.value == 0.75
    assert (row.pass_rate.low, row.pass_rate.high) == pytest.approx(ag.wilson_interval(3, 4))
    assert res.get("care", "relevance").pass_rate.value == 0.0
    assert [r.criterion for r in res.rows if r.system == "care"] == ["faithfulness", "relevance"]
    json.dumps(res.to_dict())
    assert {"system", "criterion", "mean", "pass_rate"} <= set(res.to_rows()[0])
    with pytest.raises(ValidationError):
        he.rubric_summary([{"system": "x", "criterion": "relevance", "score": 6}])
    with pytest.raises(ValidationError):
        he.rubric_summary([{"system": "x", "score": 3}])


def test_pairwise_win_rates_ties_half_both_bad_apart():
    judgments = ([{"system_a": "care", "system_b": "base", "outcome": "a"}] * 6
                 + [{"system_a": "base", "system_b": "care", "outcome": "base"}] * 2  # base wins, named
                 + [{"system_a": "care", "system_b": "base", "outcome": "tie"}] * 2
                 + [{"system_a": "care", "system_b": "base", "outcome": "both_bad"}] * 3)
    res = he.pairwise_summary(judgments)
    assert res.bradley_terry is None  # two systems only
    (row,) = res.pairs
    assert (row.system_a, row.system_b) == ("base", "care")  # canonical alphabetical order
    assert (row.wins_a, row.wins_b, row.ties, row.both_bad, row.n) == (2, 6, 2, 3, 13)
    assert row.win_rate_a.value == pytest.approx((2 + 1) / 10)
    assert (row.win_rate_a.low, row.win_rate_a.high) == pytest.approx(ag.wilson_interval(3, 10))
    assert row.both_bad_rate.value == pytest.approx(3 / 13)
    json.dumps(res.to_dict())
    assert res.to_rows()[0]["win_rate_a"] == pytest.approx(0.3)
    with pytest.raises(ValidationError):
        he.pairwise_summary([{"system_a": "x", "system_b": "y", "outcome": "maybe"}])


def test_bradley_terry_two_systems_strength_ratio_is_wins_ratio():
    # 7 wins of A, 3 of B, 2 ties (= 1 each): MLE p_A / p_B = 8 / 4
    bt = he.bradley_terry([[0, 8], [4, 0]], systems=["A", "B"])
    assert bt.converged
    assert bt.strength["A"] / bt.strength["B"] == pytest.approx(2.0, rel=1e-8)
    assert bt.win_probability("A", "B") == pytest.approx(8 / 12)
    judg = ([{"system_a": "A", "system_b": "B", "outcome": "a"}] * 7 + [{"system_a": "A", "system_b": "B", "outcome": "b"}] * 3
            + [{"system_a": "B", "system_b": "A", "outcome": "tie"}] * 2)
    assert he.bradley_terry(judg).strength["A"] == pytest.approx(bt.strength["A"])


def test_bradley_terry_three_systems_matches_logistic_regression_mle():
    from sklearn.linear_model import LogisticRegression

    wins = np.array([[0, 7, 5], [3, 0, 6], [2, 4, 0]], dtype=float)  # wins[i][j]: i beat j
    bt = he.bradley_terry(wins, systems=["x", "y", "z"])
    assert bt.converged
    # the same likelihood as an unpenalised logistic regression on x = e_i - e_j
    rows, ys, ws = [], [], []
    for i in range(3):
        for j in range(3):
            if i < j:
                x = np.zeros(3)
                x[i], x[j] = 1, -1
                rows += [x, x]
                ys += [1, 0]
                ws += [wins[i, j], wins[j, i]]
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-12, max_iter=10000)
    lr.fit(np.array(rows), ys, sample_weight=ws)
    beta = lr.coef_[0] - lr.coef_[0].mean()
    got = np.array([bt.log_strength[s] for s in "xyz"])
    np.testing.assert_allclose(got, beta, atol=1e-4)
    # the MLE's score equations: expected wins equal observed wins for every system
    p = np.array([bt.strength[s] for s in "xyz"])
    n = wins + wins.T
    expected = (n * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    np.testing.assert_allclose(expected, wins.sum(axis=1), atol=1e-6)


def test_bradley_terry_no_mle_when_a_system_never_wins():
    wins = [[0, 3, 2], [1, 0, 2], [0, 0, 0]]
    bt = he.bradley_terry(wins, systems=["a", "b", "c"])
    assert bt.strength is None and "pseudo_count" in bt.reason
    reg = he.bradley_terry(wins, systems=["a", "b", "c"], pseudo_count=0.5)
    assert reg.converged and reg.strength["c"] < reg.strength["b"] < reg.strength["a"]


def test_pairwise_summary_with_three_systems_has_bradley_terry():
    outcomes = [("care", "gpt", "a"), ("care", "gpt", "b"), ("care", "llama", "a"), ("gpt", "llama", "a"),
                ("gpt", "llama", "tie"), ("llama", "care", "a"), ("care", "gpt", "both_bad")]
    res = he.pairwise_summary([{"system_a": a, "system_b": b, "outcome": o} for a, b, o in outcomes])
    assert res.bradley_terry is not None and res.bradley_terry.converged
    assert set(res.bradley_terry.strength) == {"care", "gpt", "llama"}
    assert sum(res.bradley_terry.strength.values()) == pytest.approx(1.0)
    json.dumps(res.to_dict())


def _labels(annotator, scores, status="submitted"):
    return [Label(session_id=sid, item=item, annotator=annotator, score=s, status=status)
            for (sid, item), s in scores.items()]


def test_rater_and_expert_agreement_per_item_and_dimension():
    form = load_form()
    rng = np.random.default_rng(5)
    e1, e2 = {}, {}
    for s in range(8):
        for item in form.item_ids:
            v = int(rng.integers(1, 6))
            e1[(f"s{s}", item)] = v
            e2[(f"s{s}", item)] = int(np.clip(v + rng.integers(-1, 2), 1, 5))
    res = ag.rater_agreement(e1, e2, form=form, names=("e1", "e2"), n_boot=200)
    assert set(res.items) == set(form.item_ids) and set(res.dimensions) == set(form.dimension_keys)
    assert res.overall.n == 96 and res.items[1].n == 8 and res.dimensions["goal"].n == 32
    keys = [k for k in e1 if k[1] in form.dimension("bond").item_ids]
    assert res.dimensions["bond"].qwk.value == pytest.approx(
        ag.weighted_kappa([e1[k] for k in keys], [e2[k] for k in keys]))
    assert res.overall.within_one.value == 1.0
    assert res.overall.qwk.low <= res.overall.qwk.value <= res.overall.qwk.high

    labels = _labels("e1", e1) + _labels("e2", e2) + _labels(SHARED, e1) + _labels(ADJUDICATED, e2)
    labels += _labels("e3", {("s0", 1): 2}, status="draft")  # drafts are not counted
    preds = [Prediction(id=f"{sid}|{i}", session_id=sid, item=i, model_version="m", score=e1[(sid, i)])
             for (sid, i) in e1]
    rep = ag.expert_agreement(labels, form=form, predictions=preds)
    assert rep.raters == ["e1", "e2"]
    assert [(p.rater_a, p.rater_b) for p in rep.pairs] == [("e1", "e2"), ("e1", "model"), ("e2", "model")]
    assert rep.pairs[1].overall.exact.value == 1.0
    alpha_all = ag.krippendorff_alpha([[e1[k] for k in sorted(e1)], [e2[k] for k in sorted(e1)]],
                                      level="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert rep.alpha["overall"].alpha == pytest.approx(alpha_all.alpha)
    assert set(rep.alpha) == {"overall", *form.dimension_keys}
    json.dumps(rep.to_dict())
    rows = rep.to_rows()
    assert any(r["metric"] == "krippendorff_alpha_ordinal" for r in rows)

