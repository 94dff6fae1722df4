"""The report (care_model.report.page): Table 2 rows for the counselors, each version (held-out sessions only)
and each cross-validation run, the published rows apart, four real PNG plots (numeric loss axis), the
candidate-vs-active comparison with directions and intervals, honest rationale-metric names."""
from __future__ import annotations

import io
import json
import random
import uuid

from care_model.training.crossval import CROSSVAL_RUNS
from care_model.core.records import Prediction, Session
from care_model.jobs.report import main, write_report
from care_model.training.runs import ProgressWriter
from store import Repository


def _store(root, tmp_path, n=24):
    rng = random.Random(1)
    sessions = []
    for i in range(n):
        client = {k: rng.randint(1, 5) for k in range(1, 13)}
        ratings = {"client": client}
        if i % 2:
            ratings["counselor"] = {k: min(5, max(1, v + rng.choice([-1, 0, 1]))) for k, v in client.items()}
        sessions.append(Session(id=f"s{i:02d}", turns=[{"index": 0, "speaker": "client", "text": f"hello {i}"}],
                                client_id=f"c{i:02d}", ratings=ratings))
    run_dir = tmp_path / "run"
    progress = ProgressWriter(run_dir)
    for step, loss in enumerate([3.0, 2.5, 2.2, 1.9, 1.7, 1.6], 1):
        progress.emit("step", step=step, total_steps=6, loss=loss)
    train = [s.id for s in sessions[:14]]
    with Repository(root) as repo:
        repo.add_sessions(sessions)
        preds = []
        for s in sessions:
            for k, v in s.ratings["client"].items():
                noisy = min(5, max(1, v + rng.choice([-2, -1, 0, 1, 2])))
                preds.append(Prediction(uuid.uuid4().hex, s.id, k, "base-x", rng.randint(1, 5), expected_score=3.0,
                                        mode="scores_only", parse_status="scores_only"))
                preds.append(Prediction(uuid.uuid4().hex, s.id, k, "lora-y", noisy, expected_score=noisy * 0.9 + 0.3,
                                        mode="scores_only", parse_status="scores_only"))
        repo.add_predictions(preds)
        repo.collection("model_versions").put({"id": "base-x", "kind": "base", "status": "base", "base": "x"},
                                              actor="t", action="register")
        repo.collection("model_versions").put({"id": "lora-y", "kind": "lora", "status": "candidate", "base": "x",
                                               "adapter": "/nowhere", "run_id": "r1", "run_dir": str(run_dir),
                                               "data_hash": "h1", "parent": "base-x",
                                               "split": {"train": train, "validation": []}}, actor="t",
                                              action="register")
        repo.collection(CROSSVAL_RUNS).put({"id": "cv-1", "status": "done", "k": 5, "n_sessions": 24, "run_dir": "/x",
                                            "rows": [{"system": "crossval", "score_field": "score", "dimension": d,
                                                      "metric": m, "fold_mean": 0.41, "fold_sd": 0.07, "n_folds": 5}
                                                     for d in ("goal", "task", "bond")
                                                     for m in ("pearson", "spearman", "mse")]},
                                           actor="t", action="prepare")
    return train


def test_report_writes_table_plots_and_comparison(tmp_path, capsys):
    from PIL import Image

    store = tmp_path / "store"
    train = _store(store, tmp_path)
    assert main(["--store", str(store), "--out", str(tmp_path / "out"), "--subject", "lora-y", "--n-boot", "200",
                 "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for name in ("dimensions", "calibration", "item_mae", "loss"):
        png = (tmp_path / "out" / f"{name}.png").read_bytes()
        assert Image.open(io.BytesIO(png)).size[0] > 300
        assert f'id="care-plot-{name}" alt="{name}" src="data:image/png;base64,' in html
    assert "http://" not in html and "https://" not in html and "<link" not in html      # opens offline
    assert done["rows"] == 8              # counselors, base and lora (each beside 2 baselines), crossval
    assert "Baseline for lora-y: training mean per item" in html and "Baseline for base-x: most frequent" in html
    assert "fitted on the training set (14 sessions)" in html                    # lora-y: its training split
    assert "parsed score = raw argmax (free decoding)" in html and 'id="care-table2-unit"' in html
    assert "Counselor baseline" in html and "Base model base-x" in html and "Model version lora-y (candidate)" in html
    assert "Cross-validation cv-1: fold adapters" in html and "0.41 ± 0.07" in html
    for published in ("0.52", "0.50", "0.46", "0.30", "0.22", "0.43", "0.48", "0.37"):
        assert f"<td>{published}</td>" in html
    assert html.count("published, different corpus") >= 4
    assert f"{len(train)} session(s) excluded" in html                     # held out by default
    assert "too small to decide" not in html and 'id="care-comparison"' in html   # 10 common held-out sessions
    assert "higher is better" in html and "lower is better" in html
    assert "embedding similarity (all-MiniLM-L6-v2, in place of the paper's BERTScore" in html

    with Repository(store) as repo:                                         # contaminated: the titles say so
        write_report(repo, tmp_path / "out2", "lora-y", include_training=True, n_boot=0)
    html2 = (tmp_path / "out2" / "report.html").read_text(encoding="utf-8")
    assert "INCLUDING TRAINING SESSIONS" in html2.split('id="care-table2-title">')[1].split("</h2>")[0]


def test_report_refuses_an_unknown_subject(tmp_path, capsys):
    store = tmp_path / "store"
    _store(store, tmp_path)
    assert main(["--store", str(store), "--out", str(tmp_path / "o"), "--subject", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "lora-y" in err and "cv-1" in err
