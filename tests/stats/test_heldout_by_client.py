"""Held out by client, failing closed (care_model.stats.heldout); intervals whose unit is the client
(correlations, evaluate, compare); candidate-vs-active verdicts with one primary metric and Holm."""
from __future__ import annotations

import json
import random
import uuid

import numpy as np
import pytest

from care_model.core.records import Prediction, Session
from care_model.stats.compare import PRIMARY, compare_versions, holm
from care_model.stats.correlations import dimension_correlations
from care_model.stats.estimates import cluster_counts
from care_model.stats.evaluate import evaluate_predictions
from care_model.stats.heldout import (UNTRAINED_TITLE, UnknownTrainingSplitError, held_out_sessions,
                                      training_sessions)

LORA = {"id": "v-lora", "adapter": "/some/adapter", "run_id": "r9", "split": {"train": ["a1", "b1"]}}


def test_a_client_with_one_session_in_training_has_none_held_out():
    clients = {"a1": "A", "a2": "A", "b1": None, "b2": None, "c1": "C"}
    held = held_out_sessions(["a1", "a2", "b1", "b2", "c1"], [LORA], clients=clients)
    assert held.kept == ["b2", "c1"]                       # a2: client A trained on a1; b2 has no client: its own
    assert sorted(held.excluded) == ["a1", "a2", "b1"]
    assert "of a client in the training split of v-lora" in held.excluded["a2"]
    inc = held_out_sessions(["a2", "c1"], [LORA], clients=clients, include_training=True)
    assert inc.kept == ["a2", "c1"] and inc.included_training == ["a2"] and inc.contaminated


def test_an_adapter_without_a_split_is_refused_and_the_override_is_titled(tmp_path):
    bare = {"id": "v-bare", "adapter": "/x", "run_dir": str(tmp_path)}     # no split, no split.json
    assert training_sessions(bare) is None and training_sessions({"id": "b", "adapter": None}) == []
    with pytest.raises(UnknownTrainingSplitError) as err:
        held_out_sessions(["s1"], [bare], clients={"s1": "c"})
    assert "v-bare" in str(err.value) and "--assume-untrained" in str(err.value)
    held = held_out_sessions(["s1"], [bare], clients={"s1": "c"}, assume_untrained=True)
    assert held.kept == ["s1"] and held.assumed_untrained == ["v-bare"]
    assert held.title("model v-bare").endswith(UNTRAINED_TITLE) and "assumed untrained" in held.note()
    (tmp_path / "split.json").write_text(json.dumps({"train": ["s1"], "validation": []}))
    assert held_out_sessions(["s1", "s2"], [bare], clients={"s1": "c", "s2": "c"}).kept == []
    with pytest.raises(TypeError):
        held_out_sessions(["s1"], [bare], clients=None)


def test_cluster_counts_move_a_clients_sessions_together():
    w, unit = cluster_counts(["A", "A", "B", "C", "C", "C"], 200, seed=1)
    assert unit == "clients" and w.shape == (200, 6)
    assert np.array_equal(w[:, 0], w[:, 1]) and np.array_equal(w[:, 3], w[:, 5])
    assert not np.array_equal(w[:, 0], w[:, 2])
    w1, unit1 = cluster_counts(["A"] * 5, 50)
    assert unit1 == "sessions (one client)" and not np.array_equal(w1[:, 0], w1[:, 1])


def _clustered(n_clients=6, per=5, seed=0):
    """Sessions whose client effect dominates: intervals over clients must be wider than over sessions."""
    rng = random.Random(seed)
    pred, truth, clusters = {}, {}, {}
    for c in range(n_clients):
        level = rng.uniform(1.5, 4.5)
        for j in range(per):
            sid = f"c{c}s{j}"
            truth[sid] = {"goal": level + rng.gauss(0, .1)}
            pred[sid] = {"goal": level + rng.gauss(0, 1.0)}
            clusters[sid] = f"c{c}"
    return pred, truth, clusters


def test_correlation_intervals_resample_clients():
    pred, truth, clusters = _clustered()
    by_session = dimension_correlations(pred, truth, n_boot=500)["goal"].mse
    by_client = dimension_correlations(pred, truth, n_boot=500, clusters=clusters)["goal"].mse
    assert by_client.value == by_session.value
    assert "over clients" in by_client.method and "over sessions" in by_session.method
    assert by_client.high - by_client.low > by_session.high - by_session.low   # dependent sessions: wider
    one = dimension_correlations(pred, truth, n_boot=200, clusters={s: "same" for s in pred})["goal"].mse
    assert "sessions (one client)" in one.method


def test_evaluate_predictions_states_the_client_unit():
    rng = random.Random(3)
    sessions, preds = [], []
    for i in range(8):
        r = {k: rng.randint(1, 5) for k in range(1, 13)}
        sessions.append(Session(id=f"s{i}", turns=[{"index": 0, "speaker": "client", "text": "x"}],
                                client_id=f"c{i // 2}", ratings={"client": r}))
        preds += [Prediction(uuid.uuid4().hex, f"s{i}", k, "m", rng.randint(1, 5)) for k in r]
    rep = evaluate_predictions(sessions, preds, [], n_boot=100, with_text_metrics=False)
    assert rep.settings["bootstrap_unit"] == "client"
    assert "over clients" in rep.correlations["goal"].mse.method


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def _null(n, seed):
    """Two versions whose scores are independent noise: no metric truly differs."""
    rng = random.Random(seed)
    sessions, a, b = {}, [], []
    for i in range(n):
        ratings = {k: rng.randint(1, 5) for k in range(1, 13)}
        sessions[f"s{i}"] = Session(id=f"s{i}", turns=[{"index": 0, "speaker": "client", "text": "hi"}],
                                    client_id=f"c{i // 2}", ratings={"client": ratings})
        for k in ratings:
            for out, name in ((a, "cand"), (b, "act")):
                r = rng.randint(1, 5)
                out.append(Prediction(uuid.uuid4().hex, f"s{i}", k, name, r, expected_score=r + rng.random() - .5))
    return sessions, a, b


def test_many_null_metrics_uncorrected_would_flag_some_holm_flags_none():
    sessions, a, b = _null(40, seed=24)             # constructed: 3 exploratory rows have p < .05 uncorrected
    res = compare_versions(sessions, a, b, n_boot=1000)
    assert res["unit"] == "clients" and res["n_clients"] == 20 and "over clients" in res["method"]
    explor = [r for r in res["rows"] if r["role"] == "exploratory"]
    assert len(explor) == len(res["rows"]) - 1 == 19
    assert sum(r["p"] < 0.05 for r in explor) >= 3                          # uncorrected verdicts would flag these
    assert all(r["p_holm"] >= r["p"] for r in explor)
    assert not [r for r in explor if r["verdict"] in ("better", "worse")]   # Holm flags none
    primary = [r for r in res["rows"] if r["role"] == "primary"]
    assert [(r["score_field"], r["target"], r["metric"]) for r in primary] == [PRIMARY]
