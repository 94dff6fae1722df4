"""Cross-validation with retraining (care_model.training.crossval): folds by client, one adapter per fold that
never saw its test sessions, resumable, and pooled statistics that an independent computation from
the fold outputs reproduces. Real parts: the tiny random Llama, real peft/accelerate, a real store.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from care_model.training.crossval import CROSSVAL_RUNS, compute_result, fold_dir
from care_model.jobs.crossval import main
from care_model.text.snapshot import read_snapshot
from care_model.training.runs import read_events, read_json
from care_model.core.wai import load_form
from store import Repository
from rule_stores import make_cv_store

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread (tests/training/conftest.py)

CONFIG = ["--max-steps", "2", "--eval-n-boot", "200", "--save-every-steps", "0"]


def _independent_pooled(sessions, preds, field):
    """Pearson, Spearman, MSE per dimension, written from scratch from the fold prediction files."""
    form = load_form("wai-sr")
    out = {}
    for dim in form.dimensions:
        items_d = [int(i) for i in dim.item_ids]
        xs, ys = [], []
        for sid, s in sessions.items():
            got = {p["item"]: p[field] for p in preds if p["session_id"] == sid}
            if not all(got.get(i) is not None for i in items_d):
                continue
            xs.append(np.mean([got[i] for i in items_d]))
            ys.append(np.mean([s.ratings["client"][i] for i in items_d]))
        x, y = np.array(xs), np.array(ys)
        out[dim.key] = {"pearson": stats.pearsonr(x, y)[0], "spearman": stats.spearmanr(x, y)[0],
                                        "mse": float(np.mean((x - y) ** 2)), "n": len(x)}
    return out


def test_crossval_folds_by_client_adapters_never_see_their_test_sessions(tmp_path, tiny_model_dir, capsys):
    store = make_cv_store(tmp_path / "store")
    argv = ["--store", str(store), "--folds", "3", "--base-model", str(tiny_model_dir),
            "--cv-id", "cv1", "--actor", "boss", "--json", *CONFIG]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cv_dir = store / "crossval" / "cv1"
    meta = read_json(cv_dir / "config.json")
    assert out["sessions_without_client"] == meta["sessions_without_client"] == 2
    assert out["n_clients"] == 12 and out["n_sessions"] == 14
    snapshot = read_snapshot(cv_dir / "snapshot.jsonl")
    folds = meta["folds"]
    assert sorted(s for f in folds for s in f) == sorted(snapshot.labels)          # a partition
    clients = [{snapshot.client_of(s) for s in f} for f in folds]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not clients[i] & clients[j], "a client is in two folds"
    for i, test in enumerate(folds):
        d = fold_dir(cv_dir, i)
        trained_on = read_snapshot(d / "snapshot.jsonl")
        run = read_json(d / "run.json")
        assert run["status"] == "done" and run["data_hash"] == trained_on.hash
        assert not set(trained_on.labels) & set(test), "the adapter saw its test sessions"
        assert set(trained_on.labels) | set(test) == set(snapshot.labels)
        assert {snapshot.client_of(s) for s in trained_on.labels}.isdisjoint(clients[i])
        preds = read_json(d / "predictions.json")["predictions"]
        assert {p["session_id"] for p in preds} == set(test)
        assert all(run["adapter"] and p["model_version"] != "" for p in preds)
    with Repository(store) as repo:                                             # never a model version
        assert not [v for v in repo.collection("model_versions").all() if v.get("kind") == "lora"]
        assert repo.collection(CROSSVAL_RUNS).get("cv1")["status"] == "done"

    # the pooled numbers equal an independent computation from the fold outputs
    result = read_json(cv_dir / "result.json")
    preds = {"crossval": [], "base": []}
    for i in range(3):
        preds["crossval"] += read_json(fold_dir(cv_dir, i) / "predictions.json")["predictions"]
        preds["base"] += read_json(fold_dir(cv_dir, i) / "base_predictions.json")["predictions"]
    rows = {(r["system"], r["score_field"], r["dimension"], r["metric"]): r for r in result["rows"]}
    checked = 0
    for system in ("crossval", "base"):
        for field in ("score", "expected_score"):
            ref = _independent_pooled(snapshot.sessions, preds[system], field)
            for dim, vals in ref.items():
                for m in ("pearson", "spearman", "mse"):
                    r = rows[(system, field, dim, m)]
                    if np.isnan(vals[m]):
                        assert r["pooled"] is None
                    else:
                        assert r["pooled"] == pytest.approx(vals[m], abs=1e-9), (system, field, dim, m)
                        checked += m != "mse"
                    assert r["n"] == vals["n"]
                # fold mean and sd of the per-fold statistic
                per_fold = []
                for test in folds:
                    sub = {s: snapshot.sessions[s] for s in test}
                    v = _independent_pooled(sub, [p for p in preds[system] if p["session_id"] in test],
                                            field)[dim]["mse"]
                    per_fold.append(v)
                assert rows[(system, field, dim, "mse")]["fold_mean"] == pytest.approx(np.mean(per_fold), abs=1e-9)
                assert rows[(system, field, dim, "mse")]["fold_sd"] == pytest.approx(np.std(per_fold, ddof=1), abs=1e-9)
    assert checked >= 6  # correlations that are defined (the expected scores vary), not only MSEs
    assert any(r["system"] == "counselor" for r in result["rows"])
    events = [e["event"] for e in read_events(cv_dir)]
    assert events[0] == "start" and events[-1] == "done" and events.count("fold_done") == 3

    # resumable fold by fold: a finished fold is not redone; a lost fold prediction is recomputed
    (fold_dir(cv_dir, 1) / "predictions.json").unlink()
    before = read_json(fold_dir(cv_dir, 0) / "run.json")["finished_at"]
    assert main(["--run-dir", str(cv_dir), "--json"]) == 0
    assert read_json(fold_dir(cv_dir, 0) / "run.json")["finished_at"] == before
    assert (fold_dir(cv_dir, 1) / "predictions.json").is_file()
    assert compute_result(cv_dir)["rows"] == read_json(cv_dir / "result.json")["rows"]


def test_crossval_refuses_too_few_clients(tmp_path, tiny_model_dir, capsys):
    store = make_cv_store(tmp_path / "store")
    assert main(["--store", str(store), "--folds", "20", "--base-model", str(tiny_model_dir), *CONFIG]) == 2
    err = capsys.readouterr().err
    assert "client" in err and "k <=" in err
    assert not (store / "crossval").exists() or not any((store / "crossval").iterdir())
