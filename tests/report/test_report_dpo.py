"""Table 2 rows of a cross-validation run with a DPO stage (care_model.report.data.crossval_rows): SFT alone
beside SFT+DPO with the paired verdict, the base model, the counselors and the two constants (MSE only),
and the constants themselves (care_model.stats.crossval_metrics.constant_predictions): fitted on the
fold's training clients only. Pure: no model, no store."""
from __future__ import annotations

import pytest

from care_model.core.records import Session
from care_model.report.data import crossval_rows
from care_model.report.page import table2_html
from care_model.stats.compare import compare_versions
from care_model.stats.crossval_metrics import constant_predictions, summarize, table_rows
from care_model.core.records import Prediction


def _session(i: int, client_scores: dict) -> Session:
    return Session(id=f"s{i}", turns=[{"index": 0, "speaker": "client", "text": "hi"}], client_id=f"c{i}",
                   ratings={"client": client_scores})


def test_constants_are_fitted_on_the_training_clients_only():
    train = [_session(0, {k: 2 for k in range(1, 13)}), _session(1, {k: 3 for k in range(1, 13)}),
             _session(2, {k: 3 for k in range(1, 13)})]
    test = [_session(9, {k: 5 for k in range(1, 13)})]
    got = constant_predictions(train, test)
    assert {p.item: (p.score, p.expected_score) for p in got["mean"]} == {k: (3, pytest.approx(8 / 3))
                                                                          for k in range(1, 13)}
    assert {p.item: p.score for p in got["mode"]} == {k: 3 for k in range(1, 13)}
    assert {p.session_id for ps in got.values() for p in ps} == {"s9"}       # the test client's 5s never leak in


def _run_doc():
    sessions = {f"s{i}": _session(i, {k: 1 + (i + k) % 5 for k in range(1, 13)}) for i in range(12)}
    folds = [[f"s{i}" for i in range(j, 12, 3)] for j in range(3)]

    def preds(name, shift):
        return [Prediction(f"{name}{s}{k}", s, k, name, min(5, max(1, v + shift)), expected_score=float(v))
                for s, sess in sessions.items() for k, v in sess.ratings["client"].items()]

    systems = {"crossval": preds("sft", 1), "crossval_dpo": preds("dpo", 0), "base": preds("base", 2)}
    for test in folds:
        train = [sessions[s] for s in sessions if s not in test]
        for name, ps in constant_predictions(train, [sessions[s] for s in test]).items():
            systems.setdefault(name, []).extend(ps)
    summary = summarize(sessions, folds, systems, n_boot=0)
    cmp = compare_versions(sessions, systems["crossval_dpo"], systems["crossval"], n_boot=200)
    return {"id": "cv-d", "status": "done", "k": 3, "n_sessions": 12, "dpo_comparison": cmp,
            "rows": [r for r in table_rows(summary) if r["score_field"] in ("score", "-")]}


def test_the_report_shows_sft_alone_sft_dpo_the_base_model_and_the_constants():
    rows = crossval_rows(_run_doc())
    labels = [r["label"] for r in rows]
    assert labels == ["Cross-validation cv-d: fold adapters (SFT alone)",
                      "Cross-validation cv-d: fold adapters after the DPO stage (SFT+DPO)",
                      "Cross-validation cv-d: base model, same folds",
                      "Cross-validation cv-d: baseline: training mean per item, fitted on each fold's training "
                      "clients (a constant)",
                      "Cross-validation cv-d: baseline: most frequent score per item, fitted on each fold's "
                      "training clients (a constant)"]
    dpo = rows[1]
    # DPO predicted the truth here, SFT one point off: the primary metric's verdict says so, with its interval
    assert "against SFT alone on the same sessions, item MAE -" in dpo["note"] and dpo["note"].endswith("better")
    assert dpo["cells"]["goal"]["mse"]["mean"] == pytest.approx(0.0)
    assert rows[0]["cells"]["goal"]["mse"]["mean"] > 0
    for const in rows[3:]:
        assert const["kind"] == "baseline" and set(const["cells"]["goal"]) == {"mse"}   # no correlation
    html = table2_html(rows)
    assert "(SFT+DPO)" in html and "(SFT alone)" in html and html.count('data-kind="baseline"') == 2


def test_a_run_without_dpo_keeps_its_old_labels():
    doc = _run_doc()
    doc["rows"] = [r for r in doc["rows"] if r["system"] != "crossval_dpo"]
    labels = [r["label"] for r in crossval_rows(doc)]
    assert labels[0] == "Cross-validation cv-d: fold adapters" and not any("DPO" in x for x in labels)
