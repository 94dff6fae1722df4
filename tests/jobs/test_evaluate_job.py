"""care_model.jobs.evaluate (python -m care_model.jobs.evaluate): a JSONL export or a store in, the report out,
clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from care_model.stats import evaluate as ev
from care_model.text import curation
from care_model.jobs import evaluate as cli
from care_model.core.errors import ImportFormatError
from care_model.core.records import ADJUDICATED
from care_model.core.wai import load_form
from factories import hand_checked_evaluation, make_label, make_prediction, make_session

FORM = load_form()
ITEMS = FORM.item_ids



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
    direct = ev.evaluate_predictions(sessions, ev.latest_predictions(preds, "m1"), curation.curated_labels(labels)[0],
                                     n_boot=50)
    assert out["correlations"]["goal"]["pearson"]["value"] == pytest.approx(direct.correlations["goal"].pearson.value)
    assert out["expert_agreement"]["overall"]["qwk"]["value"] == pytest.approx(
        direct.expert_agreement.overall.qwk.value)

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
    sessions, preds, labels = hand_checked_evaluation()
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
    out = subprocess.run([sys.executable, "-m", "care_model.jobs.evaluate", "--input", str(bad), "--model-version",
                          "m1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "bad.jsonl, line 1" in out.stderr



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
    assert out["expert_agreement"]["overall"]["mae"]["value"] == pytest.approx(
        direct.expert_agreement.overall.mae.value)

    assert cli.main(["--store", str(tmp_path / "store"), "--model-version", "m1", "--n-boot", "0", "--no-text",
                    "--json"]) == 2
    assert "No predictions of model version 'm1'" in capsys.readouterr().err
