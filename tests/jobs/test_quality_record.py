"""care_model.jobs.quality.evaluate_version_quality and care evaluate --record on a store made from the
shipped samples: held out by client, both baselines, parsed/raw/calibrated argmax, the verdict recorded
on the version (record_quality / version_quality)."""
from __future__ import annotations

import json

import pytest

from care_model.jobs.evaluate import main as evaluate_main
from care_model.jobs.quality import evaluate_version_quality
from care_model.stats.heldout import UNTRAINED_TITLE, UnknownTrainingSplitError
from care_model.training.versions import QUALITY_KEYS, get_version, record_quality, version_quality
from store import Repository
from studio.bootstrap import import_samples

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality") / "store"
    with Repository(root) as repo:
        import_samples(repo)
    return root


def test_base_model_on_the_samples_leave_one_client_out_and_recorded(sample_store):
    with Repository(sample_store) as repo:
        q = evaluate_version_quality(repo, BASE, n_boot=200)
        doc = get_version(repo, BASE)
        audit = [a.get("action") for a in repo.collection("model_versions").audit()]
    assert set(QUALITY_KEYS) <= set(q) and q["score_field"] == "score" and not q["assumed_untrained"]
    assert q["n_sessions"] == 23 and q["n_clients"] == 21 and q["beats_baselines"] is False
    assert q["verdict"].startswith("not better than a constant on 23 held-out sessions")
    assert q["report"]["baseline_source"].startswith("other clients' sessions (leave one client out)")
    assert set(q["reports"]) == {"score", "raw_argmax", "calibrated_argmax"}
    raw = q["reports"]["raw_argmax"]["systems"]["model"]["item_mae"]["value"]
    assert raw > q["reports"]["score"]["systems"]["model"]["item_mae"]["value"]   # raw argmax: option 1 everywhere
    stored = version_quality(doc)
    assert stored["verdict"] == q["verdict"] and "reports" not in stored and "quality" in audit
    assert version_quality({"id": "x"}) is None
    with Repository(sample_store) as repo, pytest.raises(Exception, match="lacks"):
        record_quality(repo, BASE, {"verdict": "x"}, actor="t")


def test_care_evaluate_prints_both_baselines_per_score_and_records(sample_store, capsys):
    assert evaluate_main(["--store", str(sample_store), "--model-version", BASE, "--no-text", "--n-boot", "100",
                          "--record"]) == 0
    out = capsys.readouterr()
    for name in ("score: parsed score", "score: raw argmax", "score: calibrated argmax"):
        assert name in out.out
    assert out.out.count("training mean") == 3 and out.out.count("most frequent") == 3
    assert "intervals resample clients" in out.out and "verdict: not better than a constant" in out.out
    assert "recorded on " + BASE in out.err
    assert evaluate_main(["--store", str(sample_store), "--model-version", BASE, "--no-text", "--n-boot", "0",
                          "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["bootstrap_unit"] == "client"
    assert data["baselines"]["score"]["systems"]["mode"]["exact"]["value"] > \
        data["baselines"]["score"]["systems"]["model"]["exact"]["value"]


def test_an_adapter_without_a_split_is_refused_by_care_evaluate(sample_store, capsys):
    with Repository(sample_store) as repo:
        doc = get_version(repo, BASE) if repo.collection("model_versions").get(BASE) else None
        assert doc is not None
        doc.update(adapter="/gone/adapter", kind="lora")
        repo.collection("model_versions").put(doc, actor="t", action="test")
    try:
        assert evaluate_main(["--store", str(sample_store), "--model-version", BASE, "--no-text",
                              "--n-boot", "0"]) == 2
        err = capsys.readouterr().err
        assert "no recorded training split" in err and "--assume-untrained" in err
        assert evaluate_main(["--store", str(sample_store), "--model-version", BASE, "--no-text", "--n-boot", "0",
                              "--assume-untrained"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].endswith(UNTRAINED_TITLE) and out.count(UNTRAINED_TITLE) >= 4
        with Repository(sample_store) as repo:
            with pytest.raises(UnknownTrainingSplitError):
                evaluate_version_quality(repo, BASE, n_boot=0)
            assert evaluate_version_quality(repo, BASE, n_boot=0, assume_untrained=True)["assumed_untrained"]
    finally:
        with Repository(sample_store) as repo:
            doc = get_version(repo, BASE)
            doc.update(adapter=None, kind="base")
            repo.collection("model_versions").put(doc, actor="t", action="test")
