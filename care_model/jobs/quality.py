"""Evaluate a model version against the constant baselines on its held-out sessions, and record the verdict.

    evaluate_version_quality(repo, version_id, *, assume_untrained=False, n_boot=1000, actor="system") -> dict

Held out by client (:mod:`care_model.stats.heldout`: a version with an adapter and no recorded
split is refused unless ``assume_untrained``); baselines fitted on the version's training split,
else leaving one client out (a base model); the parsed score's verdict is stored on the version
(:func:`care_model.training.versions.record_quality`) so every screen can show it. Returns the
recorded ``quality`` dict, with ``reports`` (score field -> QualityReport.to_dict(), the raw and
calibrated argmax too) added (not stored). A version that has predictions but no document
(predictions imported with the samples) is registered as a base model first.
"""
from __future__ import annotations

import json
from pathlib import Path

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction
from care_model.stats.evaluate import latest_predictions
from care_model.stats.heldout import held_out_sessions
from care_model.stats.version_quality import RECORDED_FIELD, quality_record, version_quality_reports
from care_model.training.versions import VERSIONS, record_quality


def _load(repo, version_id: str):
    """Sessions and predictions of the store, plus the held-out predictions the version's own
    retraining run wrote (``eval_predictions.jsonl``), so a fresh candidate is evaluated at once."""
    from store.export import records_from_lines, session_lines

    sessions, preds, _labels = records_from_lines(list(session_lines(repo)), str(repo.root))
    doc = repo.collection(VERSIONS).get(version_id) or {}
    path = Path(doc.get("run_dir") or "/nonexistent") / "eval_predictions.jsonl"
    if path.is_file() and not any(p.model_version == version_id for p in preds):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                d.pop("role", None)
                preds.append(Prediction.from_dict(d))
    return {s.id: s for s in sessions}, preds


def ensure_version_doc(repo, version_id: str, actor: str) -> dict:
    doc = repo.collection(VERSIONS).get(version_id)
    if doc is None:
        doc = repo.collection(VERSIONS).put(
            {"id": version_id, "kind": "base", "status": "base", "base": version_id, "adapter": None, "run_id": None,
             "data_hash": None, "config": None, "metrics": None, "parent": None, "code_commit": None,
             "activations": [], "created_by": actor, "note": "registered for its quality record (predictions only)"},
            actor=actor, action="register")
    return doc


def evaluate_version_quality(repo, version_id: str, *, assume_untrained: bool = False, n_boot: int = 1000,
                             seed: int = 0, actor: str = "system") -> dict:
    sessions, predictions = _load(repo, version_id)
    preds = latest_predictions(predictions, version_id)
    if not preds:
        found = sorted({p.model_version for p in predictions})
        raise ValidationError(f"No predictions of model version {version_id!r} in this store.",
                              f"Use one of: {', '.join(found)}." if found else "Run predictions first.")
    doc = repo.collection(VERSIONS).get(version_id) or {"id": version_id, "adapter": None}
    held = held_out_sessions(sorted({p.session_id for p in preds}), [doc],
                             clients={s.id: s.client_id for s in sessions.values()},
                             assume_untrained=assume_untrained)
    reports = version_quality_reports(sessions, preds, doc, held, n_boot=n_boot, seed=seed)
    quality = quality_record(reports[RECORDED_FIELD], held)
    ensure_version_doc(repo, version_id, actor)
    record_quality(repo, version_id, quality, actor=actor)
    return {**quality, "reports": {f: r.to_dict() for f, r in reports.items()}, "held_out": held.to_dict()}
