"""A model version's calibration: chosen on its own held-out sessions, recorded in that version only.

The rule is :func:`care_model.stats.calibration_rule.choose_calibration` (fixed before any
measurement). Its output plus ``decided_at`` (and ``decided_by``) is written as ``calibration``
into the version's document (collection ``model_versions``, audit action ``choose-calibration``).
Nothing is copied from one version to another: a version without a recorded choice predicts
with ``none`` (:func:`recorded_calibration`).

* candidates: the run's evaluation computes the choice on the run's held-out sessions
  (:func:`candidate_choice`, called by care_model.training.evaluation) and the run's registration
  records it (:func:`record_from_evaluation`);
* base models: ``care versions --store DIR choose-calibration VERSION_ID`` evaluates the version's
  stored predictions on the store's sessions with client self-reports
  (:func:`choose_for_version`; ``none`` when there are too few, and it says so).
"""
from __future__ import annotations

from care_model.core.errors import CareError
from care_model.core.records import Prediction, now_iso
from care_model.stats.calibration_rule import RULE, choose_calibration
from care_model.training.versions import VERSIONS, get_version


def recorded_calibration(doc: dict | None) -> str:
    """The calibration a version's predictions use: its recorded choice, else ``none``."""
    choice = ((doc or {}).get("calibration") or {}).get("choice")
    return choice if choice in ("none", "content-free") else "none"


def version_calibration(repo, version_id: str) -> str:
    """:func:`recorded_calibration` of the stored version ``version_id`` (``none`` if it is not registered)."""
    return recorded_calibration(repo.collection(VERSIONS).get(version_id))


def record_choice(repo, version_id: str, choice: dict, *, actor: str) -> dict:
    """Write ``choice`` (the rule's output) into version ``version_id`` only; returns what was recorded."""
    doc = get_version(repo, version_id)
    recorded = {**choice, "decided_at": choice.get("decided_at") or now_iso(), "decided_by": actor}
    doc["calibration"] = recorded
    repo.collection(VERSIONS).put(doc, actor=actor, action="choose-calibration")
    return recorded


def choose_for_version(repo, version_id: str, predictions, sessions, *, actor: str, training=None,
                       n_boot: int = 1000, seed: int = 0) -> dict:
    """Choose ``version_id``'s calibration from its ``predictions`` on ``sessions`` and record it there.

    Predictions of other versions are ignored (never one version's measurement for another);
    ``training``: the sessions that fit the mean baseline (None: leave one client out).
    """
    own = [p if isinstance(p, Prediction) else Prediction.from_dict(p) for p in predictions]
    own = [p for p in own if p.model_version == version_id]
    choice = choose_calibration(sessions, own, training=training, n_boot=n_boot, seed=seed)
    choice["model_version"] = version_id
    return record_choice(repo, version_id, choice, actor=actor)


def candidate_choice(version_id: str, predictions, sessions, *, training=None, n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """The rule's output for a candidate on the run's held-out sessions (no store: the training
    process never opens it); :func:`record_from_evaluation` stores it at registration."""
    own = [p for p in predictions if p.model_version == version_id]
    try:
        choice = choose_calibration(sessions, own, training=training, n_boot=n_boot, seed=seed)
    except CareError as err:  # never fail a finished run over it: no choice is none, said why
        choice = {"choice": "none", "rule": RULE, "measurement": {}, "reason": f"not measured: {err}"}
    return {**choice, "model_version": version_id, "decided_at": now_iso()}


def record_from_evaluation(repo, version: dict, *, actor: str) -> dict | None:
    """At registration: record the candidate's choice its run's evaluation made (if any) in the version."""
    cand = ((version.get("evaluation") or {}).get("versions") or {}).get("candidate") or {}
    choice = cand.get("calibration")
    if not choice or choice.get("model_version") not in (None, version["id"]) or version.get("calibration"):
        return None
    return record_choice(repo, version["id"], choice, actor=actor)


def store_heldout(repo, doc: dict) -> tuple[list, list | None]:
    """(held-out sessions with a client self-report, training sessions or None) of a version in a store.

    A base model was trained on none of the store's sessions: all of them, baseline leaving one client
    out. A trained version: every session of a client outside its training split, baseline fitted on its
    training sessions; a trained version without a recorded split is refused (nothing is known held out).
    """
    from care_model.core.errors import ValidationError

    sessions = [repo.get_session(sid) for sid in repo.session_ids()]
    rated = [s for s in sessions if s.ratings.get("client")]
    if doc.get("kind") == "base" or not doc.get("adapter"):
        return rated, None
    split = doc.get("split") or {}
    if not split.get("train"):
        raise ValidationError(f"{doc['id']} has no recorded training split, so none of the store's sessions is "
                              "known to be held out from it.",
                              "Its calibration is chosen by its run's evaluation; re-run the training to record one.")
    train_ids = set(split["train"])
    train_clients = set(split.get("train_clients") or ()) | {s.client_id for s in sessions
                                                             if s.id in train_ids and s.client_id}
    held = [s for s in rated if s.id not in train_ids and (not s.client_id or s.client_id not in train_clients)]
    return held, [s for s in sessions if s.id in train_ids] or None


def choose_on_store(repo, version_id: str, *, actor: str, predictor=None, n_boot: int = 1000, seed: int = 0,
                    progress=None) -> dict:
    """``care versions choose-calibration``: the version's stored predictions (with both distributions) on
    its held-out sessions; with ``predictor`` (scores only, calibration content-free), the sessions
    without such predictions are predicted first (in memory, not stored). Records the choice."""
    doc = get_version(repo, version_id)
    held, training = store_heldout(repo, doc)
    preds, missing = [], []
    for s in held:
        own = [p for p in repo.predictions(s.id, version_id) if p.probs and p.probs_calibrated]
        if own:
            preds += own
        else:
            missing.append(s)
    if predictor is not None:
        for n, s in enumerate(missing):
            preds += predictor.predict_session(s, scores_only=True)
            if progress:
                progress(n + 1, len(missing))
        missing = []
    gone = {s.id for s in missing}
    measured = [s for s in held if s.id not in gone]
    choice = choose_calibration(measured, preds, training=training, n_boot=n_boot, seed=seed)
    choice["model_version"] = version_id
    if missing:
        choice["measurement"]["not_predicted"] = len(missing)
        choice["reason"] += (f"; {len(missing)} held-out session(s) with self-reports have no stored prediction "
                             "with both distributions (add --predict to predict them)")
    return record_choice(repo, version_id, choice, actor=actor)
