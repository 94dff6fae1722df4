"""care_model.jobs.insights (`care insights`, `python -m care_model.insights`) on a real small store."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from insights_testing import predictions_for, synthetic_sessions

from care_model.insights.build import Options
from care_model.jobs.insights import main, write_insights

ROOT = Path(__file__).resolve().parents[2]


def _store(root, **kw):
    from store import Repository

    sessions, values, _ = synthetic_sessions(**kw)
    repo = Repository(root)
    repo.add_sessions(sessions)
    repo.add_predictions(predictions_for(values))
    return repo


def test_writes_the_html_pngs_and_json(tmp_path):
    offsets = {"t-a": -0.6, "t-b": 0.0, "t-c": 0.6}
    with _store(tmp_path / "s", n_clients=30, per_client=2, counselors=offsets) as repo:
        done = write_insights(repo, tmp_path / "out", Options(score_field="expected_score", n_boot=50),
                              drill={"dim": "bond", "threshold": 3.0, "counselor": "t-a"})
    html = (tmp_path / "out" / "insights.html").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "out" / "insights.json").read_text(encoding="utf-8"))
    assert data["options"]["model_version"] == "syn-model"  # the only version that predicted
    assert "source: model syn-model (expected score)" in html
    for name in ("profiles", "patterns", "trajectories", "groups"):
        png = (tmp_path / "out" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and f'id="ins-plot-{name}"' in html
    assert [p["counselor"] for p in data["profiles"]["profiles"]] == ["t-a", "t-b", "t-c"]
    assert data["patterns"]["mapping"] == "clientbehavior" and len(data["patterns"]["fits"]) == 3
    assert data["groups"]["field"] == "arm" and data["trajectories"]["clients"]
    assert data["drilldown"]["who"] == "counselor t-a" and 'id="ins-drill"' in html
    assert "Synthetic rationale for item" in html  # the model's rationale for the low sessions
    assert done["n_scored"] == 60 and "http" not in html.replace("http-equiv", "")  # offline: nothing fetched


def test_command_refuses_a_store_without_predictions_and_the_module_entry_point_runs(tmp_path, capsys):
    from store import Repository

    sessions, _values, _ = synthetic_sessions(n_clients=3, per_client=1)
    with Repository(tmp_path / "s") as repo:
        repo.add_sessions(sessions)
    assert main(["--store", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "No model has predicted any session" in err and "--source self-report" in err
    assert not (tmp_path / "o").exists()
    r = subprocess.run([sys.executable, "-m", "care_model.insights", "--store", str(tmp_path / "s"), "--out",
                        str(tmp_path / "o2"), "--source", "self-report", "--n-boot", "20"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "o2" / "insights.html").read_text(encoding="utf-8")
    assert "source: client self-report" in html and 'id="ins-patterns-refusal"' in html  # nobody self-reported
