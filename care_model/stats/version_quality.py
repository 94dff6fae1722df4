"""One model version's suggestion quality against the constant baselines, per score, on its held-out sessions.

The baselines are fitted on the version's training split when it has one (the self-reports the
adapter could have learned), else leaving one client out (a base model, trained on none of these
sessions). Each score the predictions carry is measured: the parsed score always, the raw argmax
where they carry ``probs`` and the calibrated argmax where they carry ``probs_calibrated``.

:func:`quality_record` condenses the parsed score's report into what a model version stores
(``care_model.training.versions.record_quality``) and the screens show.

Pure: no torch, no tinydb.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from care_model.core.records import Prediction, Session
from care_model.stats.baselines import SCORE_NAMES, QualityReport, quality_against_baselines
from care_model.stats.heldout import HeldOut, training_sessions

RECORDED_FIELD = "score"     # the score an expert sees on a card: the one whose verdict is recorded


def score_fields(predictions: Iterable[Prediction]) -> list[str]:
    """The parsed score, and the raw/calibrated argmax where the predictions carry those distributions."""
    preds = list(predictions)
    out = ["score"]
    if any(p.probs for p in preds):
        out.append("raw_argmax")
    if any(p.probs_calibrated for p in preds):
        out.append("calibrated_argmax")
    return out


def baseline_training(sessions: Mapping[str, Session], version: Mapping | None) -> list[Session] | None:
    """The sessions the baselines are fitted on: the version's training split, else None (leave one client out)."""
    train = training_sessions(version) or []
    got = [sessions[s] for s in train if s in sessions and sessions[s].ratings.get("client")]
    return got or None


def version_quality_reports(sessions: Mapping[str, Session], predictions: Sequence[Prediction],
                            version: Mapping | None, held: HeldOut, *, n_boot: int = 1000, seed: int = 0,
                            fields: Sequence[str] | None = None) -> dict[str, QualityReport]:
    """score field -> the report of ``predictions`` (one version's latest) on ``held.kept``."""
    kept = set(held.kept)
    preds = [p for p in predictions if p.session_id in kept]
    evaluated = [sessions[s] for s in held.kept if s in sessions]
    training = baseline_training(sessions, version)
    out = {}
    for f in fields or score_fields(preds):
        rep = quality_against_baselines(evaluated, preds, training=training, score_field=f, n_boot=n_boot, seed=seed)
        rep.notes.append(held.note())
        out[f] = rep
    return out


def quality_record(report: QualityReport, held: HeldOut) -> dict:
    """What a model version records (see ``care_model.training.versions.record_quality``)."""
    return {"beats_baselines": bool(report.beats_baselines), "verdict": report.verdict,
            "n_sessions": int(report.n_sessions), "n_clients": int(report.n_clients),
            "score_field": report.score_field, "evaluated_at": datetime.now(timezone.utc).isoformat(),
            "assumed_untrained": bool(held.assumed_untrained), "report": report.to_dict()}


def score_name(field: str) -> str:
    return SCORE_NAMES.get(field, field)


def score_used(predictions: Iterable[Prediction], field: str = "score") -> str:
    """What a row's score is, named: "parsed text", "raw argmax" or "calibrated argmax", and the decoding.

    The ``score`` field is the parsed text only under free decoding; grounded decoding and
    scores-only runs take the argmax of the (calibrated, where calibration is on) distribution."""
    preds = list(predictions)
    decoding = "/".join(sorted({p.decoding for p in preds})) or "?"
    if field != "score":
        return f"{score_name(field)} ({decoding} decoding)"
    if preds and all(p.decoding == "free" and p.mode != "scores_only" for p in preds):
        name = "parsed text"
    elif any(p.calibration == "content-free" and p.probs_calibrated for p in preds):
        name = "calibrated argmax"
    else:
        name = "raw argmax"
    return f"parsed score = {name} ({decoding} decoding)"
