"""A version's calibration is chosen on its own held-out sessions and recorded in that version only
(care_model.training.calibration_choice); prediction follows the version's record (care predict),
never another version's."""
from __future__ import annotations

import shutil

import pytest

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction
from care_model.inference.models import ModelSpec, model_version_id
from care_model.jobs import predict as predict_cli
from care_model.jobs import versions as versions_cli
from care_model.stats.calibration_rule import TOO_FEW
from care_model.training import calibration_choice as C
from care_model.training import versions as V
from store import Repository

from factories import make_session
from stats.test_calibration_rule import biased_but_informative, fixture, informed, recentred, stuck_on_one

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread (tests/training/conftest.py)


def as_version(preds, version):
    return [Prediction.from_dict({**p.to_dict(), "model_version": version}) for p in preds]


def test_each_version_gets_its_own_choice_and_nothing_leaks(repo, tmp_path, tiny_model_dir):
    other_dir = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other_dir)
    a = V.register_base_version(repo, str(tiny_model_dir))["id"]
    b = V.register_base_version(repo, str(other_dir))["id"]
    assert a != b
    sessions, good = fixture(20, informed, biased_but_informative)
    _, recentring = fixture(20, recentred, stuck_on_one)
    # b's predictions are offered too: they must not count for a
    preds = as_version(good, a) + as_version(recentring, b)
    got_a = C.choose_for_version(repo, a, preds, sessions, actor="boss", n_boot=200)
    assert got_a["choice"] == "content-free" and got_a["decided_at"] and got_a["model_version"] == a
    assert V.get_version(repo, a)["calibration"]["choice"] == "content-free"
    assert "calibration" not in V.get_version(repo, b)                       # nothing copied across
    assert C.version_calibration(repo, b) == "none" and C.version_calibration(repo, "never-registered") == "none"
    got_b = C.choose_for_version(repo, b, preds, sessions, actor="boss", n_boot=200)
    assert got_b["choice"] == "none" and "mean baseline" in got_b["reason"]
    assert (C.version_calibration(repo, a), C.version_calibration(repo, b)) == ("content-free", "none")
    audit = [e["action"] for e in repo.collection(V.VERSIONS).audit() if e.get("entity_id") == a]
    assert "choose-calibration" in audit


def test_care_predict_follows_the_versions_record_and_the_flag_overrides(tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    spec = ModelSpec(base=str(tiny_model_dir))
    with Repository(store) as repo:
        repo.add_user("boss", "password123", "admin")
        repo.add_sessions([make_session("s1", n_turns=6, ratings={i: 4 for i in range(1, 13)})])
        vid = V.register_base_version(repo, str(tiny_model_dir))["id"]
    assert vid == model_version_id(spec)
    base = ["--store", str(store), "--model", str(tiny_model_dir), "--scores-only", "--force"]

    def stored():
        with Repository(store, create=False) as repo:
            preds = repo.predictions("s1", vid)
        return {p.calibration for p in preds}, [p.probs_calibrated for p in preds]

    predict_cli.run(base)                                                    # no recorded choice: none
    cal, dists = stored()
    assert cal == {"none"} and not any(dists)
    with Repository(store, create=False) as repo:
        C.record_choice(repo, vid, {"choice": "content-free", "rule": "test", "measurement": {}, "reason": "test"},
                        actor="boss")
    predict_cli.run(base)                                                    # the version's own choice
    cal, dists = stored()
    assert cal == {"content-free"} and all(dists)
    predict_cli.run(base + ["--calibration", "none"])                        # explicit override
    assert stored()[0] == {"none"}


def test_choose_calibration_command_on_a_small_store_says_too_few(repo, tmp_path, tiny_model_dir, capsys):
    vid = V.register_base_version(repo, str(tiny_model_dir))["id"]
    sessions, preds = fixture(4, informed, biased_but_informative)
    repo.add_sessions(sessions)
    store = str(tmp_path / "store")
    repo.close()
    assert versions_cli.main(["--store", store, "--actor", "ann", "choose-calibration", vid]) == 2
    assert "may not choose" in capsys.readouterr().err
    assert versions_cli.main(["--store", store, "--actor", "boss", "choose-calibration", vid, "--predict",
                              "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert TOO_FEW in out and "calibration: none" in out
    with Repository(tmp_path / "store", create=False) as again:
        rec = V.get_version(again, vid)["calibration"]
    assert rec["choice"] == "none" and rec["reason"].startswith(TOO_FEW) and rec["decided_by"] == "boss"


def test_a_trained_version_without_a_split_is_refused_on_the_store(repo, tmp_path):
    doc = {"id": "x+lora@1", "kind": "lora", "adapter": str(tmp_path), "split": None}
    with pytest.raises(ValidationError, match="no recorded training split"):
        C.store_heldout(repo, doc)


def test_registration_records_the_candidates_own_choice(repo, tmp_path, tiny_model_dir):
    from test_versions import fake_run

    run = fake_run(tmp_path, str(tiny_model_dir), "run-1")
    sessions, good = fixture(12, informed, biased_but_informative)
    version = V.register_candidate(repo, run, actor="boss")
    choice = C.candidate_choice(version["id"], as_version(good, version["id"]), sessions, n_boot=100)
    run["evaluation"] = {"versions": {"candidate": {"calibration": choice}}}
    version = V.register_candidate(repo, run, actor="boss")                   # idempotent: stored doc
    version["evaluation"] = run["evaluation"]
    rec = C.record_from_evaluation(repo, version, actor="boss")
    assert rec["choice"] == "content-free" and C.version_calibration(repo, version["id"]) == "content-free"
    base = V.register_base_version(repo, str(tiny_model_dir))["id"]
    assert C.version_calibration(repo, base) == "none"
