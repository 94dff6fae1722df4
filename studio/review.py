"""The review workflow as pure functions over the repository (no Gradio).

Every function takes the repository and the :class:`~studio.access.Access` of the person asking,
checks what they may do (:mod:`studio.access`), does one thing and returns JSON-ready dicts, so
the Gradio handlers, the HTTP API and the tests all go through the same code.

* :func:`open_view`       one session: transcript, the 12 item states (prediction, the saved
                          label's bookkeeping, the draft the editor starts from -- the saved
                          content, else the model's rationale and evidence --, checks) and the
                          dimension summary
* :func:`save_item`       save one item as a draft; a stale ``expected_version`` returns both
                          versions (``status="conflict"``) and writes nothing
* :func:`submit_session`  submit all items of a session at once, only if all are valid

Elsewhere: the queue (:func:`studio.review_queue.queue_rows`), the checks shown while an expert
works on an item (:mod:`studio.review_checks`), reopening a submitted session
(:func:`studio.submitted.reopen_session`).

An item is *unreviewed* until a label is saved for it in the user's coding slot; *draft* once
saved; *submitted* after the session was submitted. A submitted session is read-only (in the
page and the API) until the person who submitted it or an admin reopens it
(:func:`reopen_session`, audited as ``reopen``); its items are drafts again then. A save whose
content equals what is stored writes nothing, so a repeated autosave bumps no version.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from care_model.core.errors import ConflictError
from care_model.text.evidence import TranscriptIndex
from care_model.core.provenance import classify
from care_model.core.records import Label
from care_model.core.wai import load_form

from . import curation_modes
from .review_checks import blocking, checks, clean_draft, same_content, strict_int
from .review_queue import latest_predictions, review_status
from .accept import equals_suggestion
from .access import Access, active_model_version, require_session
from .submitted import may_reopen, read_only, submitter

FIELDS = ("score", "rationale", "evidence", "change_reasons")


_INDEX_LOCK = threading.Lock()
_INDEXES: "OrderedDict[tuple, TranscriptIndex]" = OrderedDict()


def transcript_index(repo, session) -> TranscriptIndex:
    """A :class:`TranscriptIndex` per stored session (``session``: a Session or its id; LRU of
    64). Stored turns never change under an id (imports refuse different content), so the cache
    cannot go stale."""
    sid = session if isinstance(session, str) else session.id
    key = (str(repo.root), sid)
    with _INDEX_LOCK:
        if key in _INDEXES:
            _INDEXES.move_to_end(key)
            return _INDEXES[key]
    turns = (repo.get_session(sid) if isinstance(session, str) else session).turns
    index = TranscriptIndex(turns)
    with _INDEX_LOCK:
        _INDEXES[key] = index
        while len(_INDEXES) > 64:
            _INDEXES.popitem(last=False)
    return index


def label_dict(label) -> dict:
    """``Label.to_dict()`` without dataclasses.asdict's deep recursion (hot in open_view)."""
    d = {k: (list(v) if isinstance(v, list) else v) for k, v in vars(label).items()}
    d["id"] = label.id
    return d


LABEL_META = ("id", "annotator", "status", "score", "score_source", "version", "prediction_id", "accepted_suggestion",
              "rationale_source", "rationale_edit_distance", "created_at",
              "created_by", "updated_at", "updated_by")


def label_meta(label) -> dict:
    """A saved label's bookkeeping (its content is the item's ``draft``): keeps open_session small."""
    return {k: getattr(label, k) for k in LABEL_META if k != "id"} | {"id": label.id}


def prediction_dict(pred) -> dict | None:
    if pred is None:
        return None
    return {"id": pred.id, "model_version": pred.model_version, "score": pred.score,
            "expected_score": pred.expected_score, "probs": list(pred.probs or []),
            "probs_calibrated": list(pred.probs_calibrated or []), "calibration": pred.calibration,
            "rationale": pred.rationale,
            "evidence": list(pred.evidence), "unsupported_quotes": list(pred.unsupported_quotes),
            "parse_status": pred.parse_status, "parse_error": pred.parse_error, "mode": pred.mode}


def draft_of(label: Label | None, pred: dict | None) -> dict:
    """What the editor shows: the saved label, else the model's rationale and evidence (no score)."""
    if label is not None:
        return {"score": label.score, "rationale": label.rationale, "evidence": list(label.evidence),
                "change_reasons": list(label.change_reasons)}
    return {"score": None, "rationale": (pred or {}).get("rationale", ""), "evidence": list((pred or {}).get("evidence",
                                                                                                             [])),
            "change_reasons": []}


# ----- one session --------------------------------------------------------------------------
def _predictions_for(repo, session_id: str, model_version: str | None):
    """Latest suggestion per item of ``model_version`` if it predicted the session, else of the
    most recent version that did."""
    versions = repo.predicted_versions(session_id)
    view = repo.open_session(session_id, model_version=model_version if model_version in versions else None)
    return view


def summary(form, items: list[dict], session) -> dict:
    """Dimension means (Goal, Task, Bond, ...) of the model, the expert and the client's self-report."""
    def means(ratings):
        return form.dimension_scores({i: v for i, v in ratings.items() if v is not None})

    model = means({it["item"]: (it["prediction"] or {}).get("score") for it in items})
    expected = means({it["item"]: (it["prediction"] or {}).get("expected_score") for it in items})
    expert = means({it["item"]: it["label"]["score"] if it["label"] else None for it in items})
    client = means(session.ratings["client"]) if "client" in session.ratings else None
    counselor = means(session.ratings["counselor"]) if "counselor" in session.ratings else None
    return {"dimensions": [{"key": d.key, "name": d.name(session.language if session.language in d.names else "en")}
                           for d in form.dimensions],
            "model": model, "model_expected": expected, "expert": expert, "client": client, "counselor": counselor}


def item_states(form, view, slot: str | None, index: TranscriptIndex | None, score_locked: bool = False) -> list[dict]:
    lang = view.session.language if view.session.language in form.languages else "en"
    mine = {lab.item: lab for lab in view.labels if slot is not None and lab.annotator == slot}
    out = []
    for item in form.items:
        pred = prediction_dict(view.predictions.get(item.id))
        label = mine.get(item.id)
        draft = draft_of(label, pred)
        state = "unreviewed" if label is None else ("submitted" if label.status == "submitted" else "draft")
        out.append({
            "item": item.id, "dimension": item.dimension, "text": form.item_text(item.id, "client", lang),
            "prediction": pred, "label": label_meta(label) if label else None, "version": label.version if label else 0,
            "state": state, "draft": draft,
            "checks": checks(draft, pred, index, saved=label is not None, score_locked=score_locked),
        })
    return out


def open_view(repo, access: Access, session_id: str, *, predictor=None) -> dict:
    """Everything the review screen shows for one session (see the module docstring)."""
    sa = require_session(repo, access, session_id)
    view = _predictions_for(repo, sa.session_id, active_model_version(repo, predictor))
    session = view.session
    form = load_form(session.form)
    index = transcript_index(repo, session)
    items = item_states(form, view, sa.slot, index)
    lang = session.language if session.language in form.languages else "en"
    status, reviewed, submitted = review_status([lab for lab in view.labels if lab.annotator == sa.slot], form.item_ids)
    others = sorted({lab.annotator for lab in view.labels if lab.annotator != sa.slot})
    mine = [lab for lab in view.labels if lab.annotator == sa.slot]
    submitted_by = submitter(mine, form.item_ids)
    note = sa.note or (f"Submitted by {submitted_by}: read-only until "
                       f"{'you or an admin reopen' if submitted_by == access.username else 'they or an admin reopen'} "
                       "it."
                       if submitted_by else "")
    out = {
        "session": {"id": session.id, "language": session.language, "source": session.source,
                    "client_id": session.client_id, "counselor_id": session.counselor_id,
                    "turns": [t.to_dict() for t in session.turns],
                    "ratings": {r: {str(k): v for k, v in rs.items()} for r, rs in session.ratings.items()}},
        "slot": sa.slot, "editable": sa.editable and not submitted_by, "mode": sa.mode, "note": note,
        "annotators": sa.annotators, "submitted_by": submitted_by,
        "reopenable": bool(submitted_by) and sa.editable and may_reopen(access, submitted_by),
        "model_version": view.model_version, "form": form.id,
        "scale": {str(k): v for k, v in form.scale_labels(lang).items()},
        "dimensions": [{"key": d.key, "name": d.name(lang), "items": list(d.item_ids)} for d in form.dimensions],
        "items": items, "status": status if sa.slot else "read-only", "reviewed": reviewed, "submitted": submitted,
        "other_slots": others, "summary": summary(form, items, session),
    }
    return curation_modes.apply_to_view(repo, out, curation_modes.curation_of(repo, session), access, session,
                                        lambda d, p, saved: checks(d, p, index, saved=saved, score_locked=True))


# ----- writes -------------------------------------------------------------------------------
def save_item(repo, access: Access, session_id: str, item: int, draft: dict, *, expected_version: int,
              predictor=None, bulk: bool = False) -> dict:
    """Save one item as a draft in the user's slot.

    Returns ``{"status": "saved", "label", "version", "state", "checks", "unchanged"}`` or, when
    someone saved the item since ``expected_version``, ``{"status": "conflict", "current"
    (theirs), "yours", "message"}`` without writing anything. Saving exactly what is stored is a
    no-op (``unchanged``), also when that is what the other person saved. The label records the
    rationale's provenance (:func:`rationale_provenance`); ``bulk``: saved through "Accept all".
    """
    sa = require_session(repo, access, session_id, edit=True)
    draft = clean_draft(draft)
    item = load_form().check_item(strict_int(item, "The item", "Send the item's number, 1 to 12."))
    strict_int(expected_version, "expected_version", "Send the item's version from /open_session (0 if never saved).")
    draft["score"], source = curation_modes.anchored_save(repo, sa.session_id, sa.slot, item, draft["score"])
    pred = next((p for p in latest_predictions(repo, sa.session_id, active_model_version(repo, predictor))
                 if p.item == item), None)
    current = repo.get_label(sa.session_id, item, sa.slot)
    pdict = prediction_dict(pred)
    offered = curation_modes.offered_draft(repo, sa.session_id, item)
    accepted, prov, dist = rationale_provenance(draft, pdict, offered, bulk=bulk)
    if (current is not None and same_content(current, draft) and current.rationale_source == "bulk_accepted"
            and prov == "accepted"):
        prov = "bulk_accepted"  # an autosave of what Accept all saved is still that
    if current is not None and same_content(current, draft) and current.version >= int(expected_version) \
            and getattr(current, "accepted_suggestion", None) == accepted and current.score_source == source \
            and current.rationale_source == prov:
        saved, unchanged = current, True
    elif current is not None and current.status == "submitted":
        raise read_only(sa.session_id, current.updated_by)
    else:
        label = Label(session_id=sa.session_id, item=item, annotator=sa.slot, score=draft["score"],
                      rationale=draft["rationale"], evidence=draft["evidence"], status="draft",
                      prediction_id=pred.id if pred else None, change_reasons=draft["change_reasons"],
                      accepted_suggestion=accepted, score_source=source, rationale_source=prov,
                      rationale_edit_distance=dist)
        try:
            saved = repo.save_label(label, actor=access.username, expected_version=int(expected_version))
            unchanged = False
        except ConflictError as err:
            return {"status": "conflict", "item": item, "current": err.current.to_dict() if err.current else None,
                    "yours": draft, "expected_version": int(expected_version), "message": str(err)}
    return {"status": "saved", "item": saved.item, "label": saved.to_dict(), "version": saved.version,
            "state": "submitted" if saved.status == "submitted" else "draft", "unchanged": unchanged,
            "checks": checks(draft_of(saved, None), pdict, transcript_index(repo, sa.session_id),
                             saved=True, score_locked=offered is not None or source == "client_self_report")}


def rationale_provenance(draft: dict, pred: dict | None, offered: dict | None, *, bulk: bool = False
                         ) -> tuple[str | None, str, int | None]:
    """``(accepted_suggestion, rationale_source, edit_distance)`` of a draft: the id of the model
    suggestion or score draft (``offered``) it equals, and where its rationale came from, compared
    with both texts (:func:`care_model.core.provenance.classify`)."""
    accepted = None
    if pred is not None and equals_suggestion(draft, pred):
        accepted = pred["id"]
    elif offered is not None and equals_suggestion(draft, {**offered, "parse_status": "ok"}):
        accepted = offered["id"]
    texts = [(pred or {}).get("rationale"), (offered or {}).get("rationale")]
    prov, dist = classify(draft.get("rationale"), texts, bulk=bulk)
    return accepted, prov, dist


def submit_session(repo, access: Access, session_id: str, expected_versions: dict | None = None,
                   predictor=None) -> dict:
    """Submit every item of the user's slot at once (all or nothing).

    ``{"status": "invalid", "problems": {item: [...]}}`` if an item is unreviewed or fails a
    blocking check; ``{"status": "conflict", "items": [...]}`` if ``expected_versions`` (item ->
    version the user last saw) is stale; else ``{"status": "submitted", "versions": {...}}``.
    """
    sa = require_session(repo, access, session_id, edit=True)
    view = _predictions_for(repo, sa.session_id, active_model_version(repo, predictor))
    form = load_form(view.session.form)
    locked = curation_modes.curation_of(repo, view.session)["mode"] == curation_modes.CLIENT_ANCHORED
    items = item_states(form, view, sa.slot, transcript_index(repo, view.session), score_locked=locked)
    problems = {str(it["item"]): blocking(it["checks"]) for it in items if blocking(it["checks"])}
    stale = curation_modes.stale_source_problems([lab for lab in view.labels if lab.annotator == sa.slot],
                                                 curation_modes.source_of(repo, view.session, sa.slot))
    for key, msgs in stale.items():
        problems.setdefault(key, []).extend(msgs)
    if problems:
        return {"status": "invalid", "problems": problems,
                "message": f"{len(problems)} of {len(items)} items are not ready: "
                           + ", ".join(f"item {k}" for k in problems) + "."}
    labels = {lab.item: lab for lab in view.labels if lab.annotator == sa.slot}
    stale = [i for i, v in (expected_versions or {}).items() if int(i) in labels and labels[int(i)].version != int(v)]
    if stale:
        return {"status": "conflict", "items": sorted(int(i) for i in stale),
                "message": "Someone saved items " + ", ".join(str(i) for i in sorted(int(i) for i in stale))
                           + " after you loaded them; review their versions first."}
    todo = [(replace(lab, status="submitted"), lab.version) for lab in labels.values() if lab.status != "submitted"]
    try:
        saved = repo.save_labels(todo, actor=access.username, action="submit") if todo else []
    except ConflictError as err:
        return {"status": "conflict", "items": [err.current.item] if err.current else [], "message": str(err)}
    versions = {str(i): lab.version for i, lab in labels.items()}
    versions.update({str(lab.item): lab.version for lab in saved})
    return {"status": "submitted", "versions": versions, "submitted": len(saved),
            "message": f"Submitted all {len(labels)} items of {sa.session_id}."}
