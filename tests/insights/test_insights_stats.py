"""care_model.insights: the statistics on synthetic sessions built from known effects (no store, no model)."""
from __future__ import annotations

import numpy as np
import pytest

from insights_testing import PATTERNS, TRUE, predictions_for, synthetic_sessions

from care_model.insights.codes import load_mapping, pattern_counts, proportions
from care_model.insights.groups import auc, known_groups
from care_model.insights.patterns import InsightsRefusal, fit_patterns, ols_clustered, session_proportions
from care_model.insights.profiles import counselor_profiles, no_profile_message
from care_model.insights.table import SessionRow, session_rows
from care_model.insights.trajectories import low_sessions, trajectories

CB = load_mapping("clientbehavior")


def _rows(sessions, values, **kw):
    return session_rows(sessions, source="model", predictions=predictions_for(values), model_version="syn-model",
                        score_field="expected_score", **kw)


@pytest.fixture(scope="module")
def synth():
    sessions, values, props = synthetic_sessions(n_clients=100, per_client=3, seed=0)
    return sessions, values, props, _rows(sessions, values)


def test_pattern_proportions_are_the_built_ones(synth):
    sessions, _values, props, rows = synth
    got = session_proportions(rows, CB)
    assert set(got) == set(props)
    for sid, p in props.items():
        assert got[sid] == pytest.approx(p, abs=1e-12)
    # adjacency: a client turn answers only the counselor turn right before it
    assert pattern_counts([{"coarse_strategy": "Supporting"}, {"coarse_behav_label": "Negative"},
                           {"coarse_behav_label": "Positive"}], ["counselor", "client", "client"], CB) == \
        {"supporting->negative": 1}
    assert proportions({}, PATTERNS) is None


def test_regression_recovers_the_known_effects_and_equals_closed_form_ols(synth):
    _sessions, values, props, rows = synth
    fits = {f.dim: f for f in fit_patterns(rows, CB)}
    assert CB.reference == "supporting->positive"
    for dim, truth in TRUE.items():
        f = fits[dim]
        assert f.n == 300 and f.n_clients == 100 and not f.reason
        terms = {t["term"]: t for t in f.terms}
        for name, b in truth.items():
            assert terms[name]["low"] <= b <= terms[name]["high"], (dim, name, b, terms[name])
        # statsmodels' estimates = the closed-form least squares solution
        ids = sorted(values)
        X = np.column_stack([np.ones(len(ids))] + [[props[s][p] for s in ids] for p in PATTERNS[1:]])
        y = np.array([values[s][dim] for s in ids])
        order = {r.session_id: k for k, r in enumerate(r for r in rows if r.session_id in props)}
        assert [r.session_id for r in rows] == sorted(order, key=order.get)
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        got = np.array([terms[n]["coef"] for n in ["intercept"] + PATTERNS[1:]])
        np.testing.assert_allclose(got, beta, rtol=0, atol=1e-8)
        resid = y - X @ beta
        r2 = 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))
        assert f.r2 == pytest.approx(r2, abs=1e-10)
        # and the clustered SE = the CR1 sandwich, clusters = clients
        groups = np.array([s.split("-")[1] for s in ids])
        bread = np.linalg.inv(X.T @ X)
        meat = sum(np.outer(X[groups == g].T @ resid[groups == g], X[groups == g].T @ resid[groups == g])
                   for g in np.unique(groups))
        n, k, G = len(y), X.shape[1], len(np.unique(groups))
        cov = bread @ meat @ bread * G / (G - 1) * (n - 1) / (n - k)
        np.testing.assert_allclose([terms[n_]["se"] for n_ in ["intercept"] + PATTERNS[1:]],
                                   np.sqrt(np.diag(cov)), rtol=0, atol=1e-8)
        res = ols_clustered(y, X, groups)
        np.testing.assert_allclose(res.params, beta, atol=1e-8)


def test_refuses_without_codes_and_with_too_few_sessions():
    sessions, values, _ = synthetic_sessions(n_clients=10, per_client=1, codes=False)
    with pytest.raises(InsightsRefusal, match="No session carries per-turn codes"):
        fit_patterns(_rows(sessions, values), CB)
    sessions, values, _ = synthetic_sessions(n_clients=10, per_client=1)
    with pytest.raises(InsightsRefusal, match="needs at least 20"):
        fit_patterns(_rows(sessions, values), CB)


def test_counselors_differing_by_known_amounts_are_ranked_and_the_low_one_flagged():
    offsets = {"c-low": -0.9, "c-mid-low": -0.3, "c-mid-high": 0.3, "c-high": 0.9}
    sessions, values, _ = synthetic_sessions(n_clients=48, per_client=2, counselors=offsets, seed=1)
    sessions += synthetic_sessions(n_clients=2, per_client=2, counselors={"c-few": 0.0}, seed=2)[0]
    values.update(synthetic_sessions(n_clients=2, per_client=2, counselors={"c-few": 0.0}, seed=2)[1])
    res = counselor_profiles(_rows(sessions, values), min_sessions=5, n_boot=300)
    truth = sorted(offsets, key=lambda c: -offsets[c])
    for d in ("goal", "task", "bond"):
        assert res["ranking"][d] == truth
    prof = {p["counselor"]: p for p in res["profiles"]}
    assert set(prof) == set(offsets) and res["too_few"] == [{"counselor": "c-few", "n": 4}]
    assert set(prof["c-low"]["below_overall"]) == {"goal", "task", "bond"}
    assert prof["c-high"]["below_overall"] == []
    assert res["weakest_overall"] == "task"  # expected means: goal 3.64, task 3.10, bond 3.50
    for p in prof.values():
        for e in p["dims"].values():
            assert e["low"] < e["value"] < e["high"] and "clients" in e["method"]


def test_placeholder_counselors_give_no_profile_and_say_so():
    sessions, values, _ = synthetic_sessions(n_clients=12, per_client=1, counselors={"annomi-therapist": 0.0})
    rows = _rows(sessions, values, placeholders={"annomi-therapist"})
    res = counselor_profiles(rows, n_boot=50)
    assert res["profiles"] == [] and res["sessions_without_counselor"] == 12
    assert "name no counselor" in no_profile_message(res)


def test_known_groups_auc_equals_sklearn_and_the_hand_value():
    from sklearn.metrics import roc_auc_score

    a, b = [3.0, 4.0, 5.0], [1.0, 2.0, 3.0]
    assert auc([1, 1, 1, 0, 0, 0], a + b) == pytest.approx(8.5 / 9, abs=1e-12)  # 8 wins + one tie of 9 pairs
    assert auc([1, 1, 1, 0, 0, 0], a + b) == roc_auc_score([1, 1, 1, 0, 0, 0], a + b)
    rows = [SessionRow(f"s{k}", f"c{k}", f"c{k}", "", {"goal": v, "task": v, "bond": 6 - v}, (k,),
                       {"mi_quality": "high" if k < 3 else "low"}) for k, v in enumerate(a + b)]
    res = known_groups(rows, "mi_quality", n_boot=40)
    assert (res["a"], res["b"]) == ("high", "low")
    assert res["dims"]["goal"]["auc"]["value"] == pytest.approx(8.5 / 9)
    assert res["dims"]["bond"]["auc"]["value"] == pytest.approx(0.5 / 9)
    assert res["dims"]["goal"]["difference"]["value"] == pytest.approx(2.0)
    assert res["dims"]["goal"]["difference"]["low"] is not None


def test_trajectories_flag_ruptures_and_the_drilldown_lists_low_sessions():
    def row(sid, client, k, bond):
        return SessionRow(sid, client, client, "t1", {"goal": 4.0, "task": 4.0, "bond": bond}, (0, k, ""))

    rows = [row("a3", "A", 3, 2.0), row("a1", "A", 1, 4.5), row("a2", "A", 2, 3.75), row("b1", "B", 1, 3.0)]
    t = trajectories(rows, drop=1.0)
    assert [c["client"] for c in t["clients"]] == ["A"] and t["statement"] is None
    assert [s["session_id"] for s in t["clients"][0]["sessions"]] == ["a1", "a2", "a3"]
    assert [(r["from_session"], r["to_session"]) for r in t["clients"][0]["ruptures"]] == [("a2", "a3")]
    assert "No client has two" in trajectories(rows[3:])["statement"]
    d = low_sessions(rows, [], None, dim="bond", threshold=3.0, counselor="t1")
    assert [s["session_id"] for s in d["sessions"]] == ["a3", "b1"]
