"""Suggestion quality beside the trivial baselines (care_model.stats.baselines)."""
from __future__ import annotations

import numpy as np
import pytest

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction, Session, Turn
from care_model.core.wai import wai_sr
from care_model.stats.baselines import NOT_BETTER, Fit, quality_against_baselines

FORM = wai_sr()
ITEMS = FORM.item_ids


def _session(sid, client, ratings):
    return Session(id=sid, client_id=client, language="en", turns=[Turn(0, "client", "hello")],
                   ratings={"client": dict(ratings)})


def _preds(sid, scores, version="m1"):
    return [Prediction(id=f"{sid}-{it}", session_id=sid, item=it, model_version=version, score=int(scores[it]),
                       expected_score=float(scores[it])) for it in ITEMS]


def _population(n_clients=12, per_client=1, seed=0):
    rng = np.random.default_rng(seed)
    sessions = []
    for c in range(n_clients):
        level = rng.integers(1, 6)
        for k in range(per_client):
            r = {it: int(np.clip(level + rng.integers(-1, 2), 1, 5)) for it in ITEMS}
            sessions.append(_session(f"s{c}-{k}", f"c{c}", r))
    return sessions


def test_a_model_that_knows_the_answers_beats_both_constants():
    sessions = _population()
    preds = [p for s in sessions for p in _preds(s.id, s.ratings["client"])]
    rep = quality_against_baselines(sessions, preds, n_boot=300)
    assert rep.systems["model"]["exact"].value == 1.0 and rep.systems["model"]["item_mae"].value == 0.0
    assert rep.beats_baselines, rep.verdict
    for b in ("mean", "mode"):
        d = rep.differences[b]["item_mae"]
        assert d["verdict"] == "better" and d["estimate"].high < 0
        assert "(exploratory)" in rep.differences[b]["exact"]["verdict"]


def test_a_constant_model_is_said_to_be_no_better_than_a_constant():
    sessions = _population(seed=1)
    preds = [p for s in sessions for p in _preds(s.id, {it: 3 for it in ITEMS})]
    rep = quality_against_baselines(sessions, preds, n_boot=300)
    assert not rep.beats_baselines
    assert rep.verdict.startswith(NOT_BETTER) and f"{len(sessions)} held-out sessions" in rep.verdict
    # a constant has no correlation, for the model and for the baselines alike
    assert rep.systems["model"]["goal.pearson"].value is None
    assert rep.systems["mean"]["goal.pearson"].value is None
    assert "constant" in rep.systems["mean"]["goal.pearson"].reason


def test_leave_one_client_out_never_uses_the_clients_own_answers():
    high = [_session(f"h{k}", "c-high", {it: 5 for it in ITEMS}) for k in range(3)]
    low = [_session(f"l{k}", f"c-low{k}", {it: 1 for it in ITEMS}) for k in range(6)]
    sessions = high + low
    preds = [p for s in sessions for p in _preds(s.id, {it: 3 for it in ITEMS})]
    rep = quality_against_baselines(sessions, preds, n_boot=0)
    # for the high client's sessions the baselines say 1 (the others' answers): error 4 on every item;
    # for each low client the others include the high client: mean (3*5 + 5*1) / 8 = 2.5
    expected_mae = (3 * 4.0 + 6 * 1.5) / 9
    assert rep.systems["mean"]["item_mae"].value == pytest.approx(expected_mae)
    assert rep.baseline_source.startswith("other clients")


def test_baselines_from_a_training_set_are_constants_of_that_set():
    train = [_session(f"t{k}", f"tc{k}", {it: 4 for it in ITEMS}) for k in range(4)]
    sessions = _population(seed=2)
    preds = [p for s in sessions for p in _preds(s.id, s.ratings["client"])]
    rep = quality_against_baselines(sessions, preds, training=train, n_boot=0)
    truth = np.array([s.ratings["client"][it] for s in sessions for it in ITEMS])
    assert rep.systems["mode"]["exact"].value == pytest.approx(np.mean(truth == 4))
    assert rep.systems["mean"]["item_mae"].value == pytest.approx(np.mean(np.abs(truth - 4)))
    assert rep.baseline_source == "training set (4 sessions)"
    with pytest.raises(ValidationError, match="complete client self-report"):
        quality_against_baselines(sessions, preds, training=[_session("x", "x", {})], n_boot=0)


def test_intervals_resample_clients_so_a_clients_many_sessions_do_not_narrow_them():
    # one client with 20 near-identical sessions and 5 others: a session bootstrap would treat the
    # 20 as independent; resampling clients keeps them together
    sessions = _population(n_clients=6, per_client=1, seed=3)
    heavy = sessions[0]
    sessions += [_session(f"dup{k}", heavy.client_id, heavy.ratings["client"]) for k in range(20)]
    preds = [p for s in sessions for p in _preds(s.id, {it: 3 for it in ITEMS})]
    rep = quality_against_baselines(sessions, preds, n_boot=400)
    est = rep.systems["model"]["item_mae"]
    assert rep.unit == "clients" and rep.n_clients == 6 and "over clients" in est.method
    # resampled by client, the 21 sessions of one client are one unit: the interval must cover the
    # spread between clients, so it is at least as wide as the range of two clients' MAEs allows
    per_client = {}
    for s in sessions:
        per_client.setdefault(s.client_id, []).append(np.mean([abs(3 - s.ratings["client"][it]) for it in ITEMS]))
    spread = np.std([np.mean(v) for v in per_client.values()])
    assert est.high - est.low > spread / 2


def test_a_single_client_falls_back_to_its_sessions_and_says_so():
    sessions = [_session(f"s{k}", "only", {it: 1 + (k + it) % 5 for it in ITEMS}) for k in range(6)]
    preds = [p for s in sessions for p in _preds(s.id, {it: 3 for it in ITEMS})]
    rep = quality_against_baselines(sessions, preds, n_boot=200)
    assert rep.n_sessions == 0 and "at least two clients" in rep.verdict   # nobody else to fit a baseline on
    train = [_session(f"t{k}", f"tc{k}", {it: 3 for it in ITEMS}) for k in range(3)]
    rep = quality_against_baselines(sessions, preds, training=train, n_boot=200)
    assert rep.unit == "sessions (one client)" and "over sessions (one client)" in rep.systems["model"]["exact"].method
    assert "too few clients" in rep.verdict


def test_mode_ties_go_to_the_score_nearest_the_mean():
    fit = Fit.from_ratings([{1: 1}, {1: 1}, {1: 4}, {1: 4}, {1: 5}], [1])
    assert fit.mode[1] == 4 and fit.mean[1] == pytest.approx(3.0)
    assert fit.value("mean", 1, integer=True) == 3.0
