"""A finished cross-validation run without training, for the tests of the screens that show one.

:func:`finished_crossval_run` freezes the curated set and its folds with the real
:func:`care_model.training.crossval.prepare_crossval`, writes each fold's held-out predictions
(fold adapter and base model) as the run would, then computes ``result.json`` with the real
statistics (:func:`care_model.training.crossval.compute_result`, scores only: no embeddings) and
records the run in the store (:func:`care_model.training.crossval.finish_crossval`). Seconds instead
of the minutes of a real run; the statistics and the stored document are the real ones.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from care_model.core.records import Prediction
from care_model.training.config import resolve_config
from care_model.training.crossval import (_save_predictions, compute_result, finish_crossval, fold_dir,
                                          load_crossval, prepare_crossval)
from care_model.training.runs import ProgressWriter, write_json

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "cpu-smoke.yaml"


def _guess(session, item: int, offset: int) -> int:
    truth = int((session.ratings.get("client") or {}).get(item) or (session.ratings.get("client") or {}).get(str(item))
                or 3)
    return min(5, max(1, truth + (hash((session.id, item, offset)) % 3) - 1 + offset))


def finished_crossval_run(repo, *, k: int = 3, cv_id: str = "cv-fixture", base_model: str = "tiny-base") -> dict:
    """Prepare, 'predict' and finish a K-fold run on ``repo``'s curated set; returns its stored document."""
    config = resolve_config(RECIPE, {"base_model": base_model, "eval_scores_only": True, "eval_n_boot": 100,
                                     "rationales": "curated"})
    cv_dir = prepare_crossval(repo, config, k, cv_id=cv_id, actor="admin")
    meta = load_crossval(cv_dir)
    progress = ProgressWriter(cv_dir)
    progress.emit("start", cv_id=cv_id, k=k, n_sessions=meta["n_sessions"], n_clients=meta["n_clients"],
                  sessions_without_client=meta["sessions_without_client"], folds_done=0)
    for i, test in enumerate(meta["folds"]):
        for name, offset, version in (("predictions.json", 0, f"{cv_id}-fold-{i}"),
                                      ("base_predictions.json", 1, base_model)):
            preds = [Prediction(uuid.uuid4().hex, sid, item, version, _guess(repo.get_session(sid), item, offset),
                                expected_score=float(_guess(repo.get_session(sid), item, offset)),
                                mode="scores_only", parse_status="scores_only")
                     for sid in sorted(test) for item in range(1, 13)]
            _save_predictions(fold_dir(cv_dir, i) / name, preds, 0.1)
        progress.emit("fold_done", fold=i, k=k, elapsed_s=float(i + 1))
    write_json(cv_dir / "result.json", compute_result(cv_dir))
    progress.emit("done", result=str(cv_dir / "result.json"), elapsed_s=float(k + 1))
    return finish_crossval(repo, cv_dir, actor="admin")
