"""Evaluation without contamination (care_model.stats.heldout, care_model.stats.compare,
python -m care_model.jobs.evaluate): a retrained version is scored only on sessions outside its
training split unless told otherwise, and a
candidate is compared with the active version on the same held-out sessions, with intervals."""
from __future__ import annotations

import json
import random
import uuid

import pytest

from care_model.training import versions as V
from care_model.stats.compare import MIN_SESSIONS, TOO_SMALL, compare_versions
from care_model.jobs.evaluate import main as evaluate_main
from care_model.stats.heldout import CONTAMINATED_TITLE, held_out_sessions, training_sessions
from care_model.inference.models import ModelSpec
from care_model.inference.predictor import Predictor
from care_model.jobs.predict import predict_into_store
from care_model.core.records import Prediction, Session
from care_model.training.run import execute_run, finish_run, prepare_run
from care_model.training.config import RetrainConfig
from store import Repository

from rule_stores import make_rule_store


@pytest.fixture(scope="module")
def retrained_store(tmp_path_factory, tiny_model_dir):
    """A store whose candidate version (tiny Llama + 1-step adapter) and base model predicted every session."""
    store = make_rule_store(tmp_path_factory.mktemp("heldout") / "store", n=12)
    config = RetrainConfig(base_model=str(tiny_model_dir), max_steps=1, validation_fraction=0.25, evaluate=False)
    with Repository(store) as repo:
        run_dir = prepare_run(repo, config, run_id="r1", actor="boss")
    execute_run(run_dir)
    with Repository(store) as repo:
        cand = finish_run(repo, run_dir, actor="boss")
        base = V.register_base_version(repo, str(tiny_model_dir))
        for spec in (ModelSpec(base=cand["base"], adapter=cand["adapter"]), ModelSpec(base=str(tiny_model_dir))):
            predict_into_store(repo, Predictor(spec), scores_only=True, show_progress=False)
    return store, cand, base


def _run(argv, capsys):
    code = evaluate_main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured


def test_evaluation_of_a_retrained_version_excludes_its_training_sessions(retrained_store, capsys):
    store, cand, _base = retrained_store
    train = training_sessions(cand)
    assert 6 <= len(train) < 12
    got = _run(["--store", str(store), "--model-version", cand["id"], "--json", "--n-boot", "0"], capsys)
    report = json.loads(got.out)
    assert report["n_sessions"] == 12 - len(train)                      # only held-out sessions scored
    assert report["held_out"]["excluded"] == len(train) and not report["held_out"]["contaminated"]
    assert f"{len(train)} session(s) excluded" in got.err and "training split of " + cand["id"] in got.err
    assert report["baselines"]["score"]["baseline_source"].startswith("training set")   # fitted on its split
    assert report["baselines"]["score"]["n_sessions"] == 12 - len(train)
    assert CONTAMINATED_TITLE not in report["title"]

    got = _run(["--store", str(store), "--model-version", cand["id"], "--json", "--n-boot", "0",
                "--include-training-sessions"], capsys)
    report = json.loads(got.out)
    assert report["n_sessions"] == 12 and report["held_out"]["included_training_sessions"] == len(train)
    assert CONTAMINATED_TITLE in report["title"]
    got = _run(["--store", str(store), "--model-version", cand["id"], "--n-boot", "0", "--include-training-sessions"],
               capsys)
    assert got.out.splitlines()[0].endswith(CONTAMINATED_TITLE)            # the table's title says so too


def test_candidate_vs_active_on_the_same_held_out_sessions_too_small(retrained_store, capsys):
    store, cand, base = retrained_store
    got = _run(["--store", str(store), "--model-version", cand["id"], "--compare-with", base["id"], "--n-boot", "200"],
               capsys)
    n = 12 - len(training_sessions(cand))
    assert f"on the same {n} held-out session(s)" in got.out and "too small to decide" in got.out
    assert "(higher is better)" in got.out and "(lower is better)" in got.out
    got = _run(["--store", str(store), "--model-version", cand["id"], "--compare-with", base["id"], "--json"], capsys)
    result = json.loads(got.out)
    assert result["too_small"] and {r["verdict"] for r in result["rows"]} == {TOO_SMALL}
    assert any(r["low"] is not None for r in result["rows"])              # intervals still shown


def _synthetic(n: int, seed: int = 0):
    rng = random.Random(seed)
    sessions, good, noisy = {}, [], []
    for i in range(n):
        ratings = {k: rng.randint(1, 5) for k in range(1, 13)}
        s = Session(id=f"s{i}", turns=[{"index": 0, "speaker": "client", "text": "hi"}], client_id=f"c{i}",
                    ratings={"client": ratings})
        sessions[s.id] = s
        for k, v in ratings.items():
            good.append(Prediction(uuid.uuid4().hex, s.id, k, "cand", v, expected_score=float(v)))
            r = rng.randint(1, 5)
            noisy.append(Prediction(uuid.uuid4().hex, s.id, k, "act", r, expected_score=float(r)))
    return sessions, good, noisy


def test_paired_comparison_verdicts():
    sessions, good, noisy = _synthetic(40)
    res = compare_versions(sessions, good, noisy, n_boot=2000)  # Holm over 19 rows needs 2/(B+1) < .05/19
    assert res["n_sessions"] == 40 and not res["too_small"]
    by = {(r["score_field"], r["target"], r["metric"]): r for r in res["rows"]}
    assert by[("score", "goal", "pearson")]["verdict"] == "better"
    assert by[("score", "goal", "mse")]["verdict"] == "better" and by[("score", "goal", "mse")]["difference"] < 0
    assert by[("score", "items", "item_mae")]["verdict"] == "better"
    assert compare_versions(sessions, noisy, good, n_boot=2000)["counts"].get("worse", 0) >= 10
    same = compare_versions(sessions, noisy, noisy, n_boot=100)
    assert {r["verdict"] for r in same["rows"]} == {"not distinguishable"}
    small = {k: sessions[k] for k in list(sessions)[:MIN_SESSIONS - 1]}
    assert {r["verdict"] for r in compare_versions(small, good, noisy, n_boot=100)["rows"]} == {TOO_SMALL}


def test_held_out_sessions_rule():
    v = {"id": "v1", "adapter": "/x", "run_id": "r", "data_hash": "h",
         "split": {"train": ["a", "b"], "validation": ["c"]}}
    clients = {"a": "ca", "b": None, "c": "cc", "d": "cd"}
    held = held_out_sessions(["a", "b", "c", "d"], [v, None, {"id": "base", "adapter": None}], clients=clients)
    assert held.kept == ["c", "d"] and sorted(held.excluded) == ["a", "b"]
    assert "2 session(s) excluded: 2 of a client in the training split of v1" in held.note()
    inc = held_out_sessions(["a", "c"], [v], clients=clients, include_training=True)
    assert inc.kept == ["a", "c"] and inc.contaminated and CONTAMINATED_TITLE in inc.title("t")


def test_candidate_quality_recorded_against_baselines_fitted_on_its_split(retrained_store):
    from care_model.jobs.quality import evaluate_version_quality

    store, cand, _base = retrained_store
    train = training_sessions(cand)
    with Repository(store) as repo:
        q = evaluate_version_quality(repo, cand["id"], n_boot=100)
        stored = V.version_quality(V.get_version(repo, cand["id"]))
    assert q["n_sessions"] == 12 - len(train) and stored["n_sessions"] == q["n_sessions"]
    assert q["report"]["baseline_source"] == f"training set ({len(train)} sessions)"
    assert stored["beats_baselines"] in (True, False) and stored["verdict"] == q["verdict"]
