"""Argilla (v2) interchange: one record per (session, item) with the model's suggestions, and responses back.

The format is the folder Argilla's SDK writes and reads (``Dataset.to_disk`` / ``from_disk``):

* ``.argilla/settings.json`` (:func:`settings`): fields ``transcript`` (a chat field: one message
  per turn, ``role`` the speaker, content ``[N] text``) and ``item`` (the statement); questions
  ``score`` (rating 1-5), ``rationale`` (text) and ``evidence`` (text: turn numbers, e.g. ``3, 12``);
  metadata ``session_id``, ``client_id`` (terms) and ``item`` (integer);
* ``.argilla/dataset.json``: the dataset's name and guidelines;
* ``records.json`` (:func:`record`): records with ``id`` ``<session>|<item>``, ``fields``,
  ``metadata`` (with ``care``: the suggestion id and the stored label versions, so an import knows
  what the annotator saw) and ``suggestions`` per question with ``agent`` (the model version) and
  ``score`` (the chosen option's probability for the rating).

:func:`read_responses` reads ``records.json`` after annotation: on every record whose ``status`` is
``completed`` (the SDK writes no per-response status), every user's response with a ``score``
becomes an :class:`~care_model.interchange.label_studio.Answer` (``user_key``: Argilla's user id).

The JSON is written here by hand, as the SDK's ``serialize`` writes it (the SDK needs a server to
build its objects); the tests read it back with the SDK's own classes.
Pure: dicts in, dicts out.
"""
from __future__ import annotations

import json
import re

from care_model.core.errors import ImportFormatError
from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form
from care_model.interchange.label_studio import Answer

GUIDELINES = ("Read the whole transcript. For the item shown, give the score the client would give (1 seldom ... "
              "5 always) and a rationale that quotes the dialogue and says who said each quote; list the turn "
              "numbers you quote as evidence. The suggestions are a model's: check them against the transcript.")


def _prop(name: str, settings: dict, **extra) -> dict:
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name, "settings": settings,
            "title": extra.pop("title", name), "description": extra.pop("description", None), "dataset_id": None,
            **extra}


def settings(form_id: str = "wai-sr") -> dict:
    """``.argilla/settings.json``."""
    form = load_form(form_id)
    points = list(form.scale.points)
    return {
        "guidelines": GUIDELINES,
        "questions": [
            _prop("score", {"type": "rating", "options": [{"value": v} for v in points]}, title="Score",
                  description="1 seldom ... 5 always", required=True, type="rating"),
            _prop("rationale", {"type": "text", "use_markdown": False}, title="Rationale",
                  description="quote the dialogue; say who said each quote", required=False, type="text"),
            _prop("evidence", {"type": "text", "use_markdown": False}, title="Evidence turns",
                  description="turn numbers, e.g. 3, 12", required=False, type="text")],
        "fields": [
            _prop("transcript", {"type": "chat", "use_markdown": False}, title="Transcript", required=True,
                  type="chat"),
            _prop("item", {"type": "text", "use_markdown": False}, title="Item", required=True, type="text")],
        "vectors": [],
        "metadata": [_prop("session_id", {"visible_for_annotators": True, "type": "terms", "values": None},
                           visible_for_annotators=True),
                     _prop("client_id", {"visible_for_annotators": False, "type": "terms", "values": None},
                           visible_for_annotators=False),
                     _prop("item", {"visible_for_annotators": True, "type": "integer", "min": form.item_ids[0],
                                    "max": form.item_ids[-1]}, visible_for_annotators=True)],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }


def dataset_info(name: str) -> dict:
    """``.argilla/dataset.json``."""
    return {"id": None, "name": name, "guidelines": GUIDELINES, "allow_extra_metadata": True, "status": None,
            "distribution": {"strategy": "overlap", "min_submitted": 1}, "workspace_id": None,
            "last_activity_at": None, "url": None}


def record(session: Session, item: int, suggestion: Prediction | None, label_versions: dict[str, int]) -> dict:
    """One record of ``records.json``."""
    form = load_form(session.form)
    suggestions = {}
    if suggestion is not None and suggestion.score is not None:
        probs = suggestion.score_probs
        rating = {"value": int(suggestion.score), "agent": suggestion.model_version}
        if probs:
            rating["score"] = round(float(probs[int(suggestion.score) - 1]), 6)
        suggestions["score"] = rating
        if suggestion.rationale:
            suggestions["rationale"] = {"value": suggestion.rationale, "agent": suggestion.model_version}
        if suggestion.evidence:
            suggestions["evidence"] = {"value": ", ".join(str(e) for e in sorted(suggestion.evidence)),
                                       "agent": suggestion.model_version}
    care = {"session_id": session.id, "item": int(item), "suggestion": suggestion.id if suggestion else None,
            "label_versions": dict(label_versions)}
    return {"id": f"{session.id}|{int(item)}",
            "fields": {"transcript": [{"role": t.speaker, "content": f"[{t.index}] {t.text}"} for t in session.turns],
                       "item": f"Item {int(item)}: {form.item_text(item, 'client', session.language)}"},
            "metadata": {"session_id": session.id, "client_id": session.client_id, "item": int(item),
                         "care": json.dumps(care, sort_keys=True)},
            "suggestions": suggestions, "responses": {}, "vectors": {}, "status": "pending", "_server_id": None}


def _evidence(text, where: str) -> list[int]:
    text = str(text or "").strip()
    if not text:
        return []
    parts = [p for p in re.split(r"[\s,;]+", text) if p]
    if not all(p.isdigit() for p in parts):
        raise ImportFormatError(f"{where}: evidence {text!r} is not a list of turn numbers.",
                                "Write turn numbers separated by commas, e.g. 3, 12.")
    return sorted({int(p) for p in parts})


def read_responses(records: list, *, name: str = "records.json") -> list[Answer]:
    """Every user's scored response of an Argilla ``records.json`` (see the module docstring)."""
    if not isinstance(records, list):
        raise ImportFormatError(f"{name} is not an Argilla records file (a list of records).",
                                "Use the records.json that Argilla's Dataset.to_disk() wrote.")
    out = []
    for n, rec in enumerate(records):
        meta = (rec or {}).get("metadata") or {}
        try:
            care = json.loads(meta.get("care") or "{}")
        except (TypeError, ValueError):
            care = {}
        sid, item = care.get("session_id"), care.get("item")
        if not sid or not item:
            raise ImportFormatError(f"Record #{n} ({rec.get('id')!r}) of {name} has no CARE session and item "
                                    "(metadata.care).", "Import only records exported by `care interchange "
                                                        "argilla-export`.")
        if rec.get("status") not in (None, "completed"):
            continue  # "pending": not yet submitted by enough annotators (the dataset's distribution)
        responses = rec.get("responses") or {}
        by_user: dict[str, dict] = {}
        for question in ("score", "rationale", "evidence"):
            for resp in responses.get(question) or []:
                if resp.get("status") in ("discarded", "draft"):
                    continue
                by_user.setdefault(str(resp.get("user_id")), {})[question] = resp.get("value")
        for user, got in sorted(by_user.items()):
            if got.get("score") is None:
                continue
            where = f"{name}: record {rec.get('id')!r}, user {user}"
            out.append(Answer(str(sid), int(item), user, int(got["score"]), str(got.get("rationale") or "").strip(),
                              _evidence(got.get("evidence"), where), where,
                              {"suggestions": {str(item): care.get("suggestion")},
                               "label_versions": care.get("label_versions") or {}}))
    return out
