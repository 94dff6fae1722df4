"""The prediction methods of :class:`store.repository.Repository` (a mixin): model suggestions.

Suggestions are append-only and live in each session's ``predictions.json``; labels never touch
them. The mixin uses the repository's ``_lock``, ``files``, ``_keys``, ``_rel`` and ``_session_doc``.
"""
from __future__ import annotations

import copy
import uuid
from typing import Iterable

from tinydb import Query

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction, is_suggestion, now_iso
from care_model.core.wai import load_form

Q = Query()


class PredictionsMixin:
    def _add_predictions_locked(self, preds: Iterable[Prediction], skip_existing: bool = False) -> int:
        form_cache = {}
        n = 0
        for pred in preds:
            if pred.session_id not in self._keys:
                raise ValidationError(f"Prediction for unknown session {pred.session_id!r}.",
                                      "Import the session first.")
            form_id = self._session_doc(pred.session_id).get("form", "wai-sr")
            form = form_cache.setdefault(form_id, load_form(form_id))
            form.check_item(pred.item)
            if pred.score is not None:
                form.check_score(pred.score, pred.item)
            table = self.files.db(self._rel(pred.session_id, "predictions")).table("predictions")
            doc = pred.to_dict()
            doc["id"] = doc["id"] or uuid.uuid4().hex
            doc["created_at"] = doc["created_at"] or now_iso()
            if table.contains(Q.id == doc["id"]):
                if skip_existing:
                    continue
                raise ValidationError(f"Prediction {doc['id']!r} is already stored.",
                                      "Predictions are append-only; give a new id.")
            table.insert(doc)
            n += 1
        return n

    def add_predictions(self, preds: Iterable[Prediction]) -> int:
        """Append model suggestions (all or nothing). Labels are never touched."""
        with self._lock, self.files.transaction():
            return self._add_predictions_locked(list(preds))

    def predictions(self, session_id: str, model_version: str | None = None, *,
                    history: bool = False) -> list[Prediction]:
        """Suggestions for a session: the latest per (model version, item), or all with ``history``."""
        with self._lock:
            docs = self.files.db(self._rel(session_id, "predictions")).table("predictions").all()
            preds = [Prediction.from_dict(copy.deepcopy(dict(d))) for d in docs
                     if model_version is None or d["model_version"] == model_version]
        preds.sort(key=lambda p: p.created_at)
        if history:  # drafts (mode "draft") included; the latest suggestions below never are
            return preds
        latest: dict[tuple, Prediction] = {}
        for p in filter(is_suggestion, preds):
            latest[(p.model_version, p.item)] = p
        return sorted(latest.values(), key=lambda p: (p.model_version, p.item))

    def predicted_versions(self, session_id: str) -> dict[str, int]:
        """model version -> number of distinct items it has predicted for the session."""
        with self._lock:
            docs = self.files.db(self._rel(session_id, "predictions")).table("predictions").all()
            items: dict[str, set] = {}
            for d in filter(is_suggestion, docs):
                items.setdefault(d["model_version"], set()).add(d["item"])
            return {v: len(s) for v, s in items.items()}

    def get_prediction(self, session_id: str, prediction_id: str) -> Prediction | None:
        with self._lock:
            doc = self.files.db(self._rel(session_id, "predictions")).table("predictions").get(Q.id == prediction_id)
            return Prediction.from_dict(copy.deepcopy(dict(doc))) if doc else None
