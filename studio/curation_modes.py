"""Curation modes per assignment: client-anchored (the paper) or expert-judged, as pure functions.

* **client_anchored** (:data:`care_model.text.curation.CLIENT_ANCHORED`), for sessions with the
  client's self-report: each item's score is the client's own rating. The review payload shows it
  as the item's score (``anchored_score``, and the draft's score), the card cannot change it, and
  :func:`anchored_save` refuses a different score with a message that says so; a save without a
  score gets the client's. An unreviewed card starts from the model's rationale drafted for the
  client's score (:mod:`care_model.text.drafting`) when there is one, else from its free
  rationale. The expert edits the rationale (fidelity to the dialogue, consistency with that
  score) and the evidence. Labels record ``score_source="client_self_report"``.
* **expert_judged** (:data:`care_model.text.curation.EXPERT_JUDGED`), for sessions without a
  self-report: the expert's own score, as before (``score_source="expert"``). An annotator codes
  **blind**: the client's and the counselor's ratings are removed from the review payload (and so
  from the page) unless an admin shows them, for one session (``show_ratings`` here) or for the
  whole store (the review setting ``show_ratings``). In client-anchored mode the client's ratings
  are the scores, and the counselor's stay hidden from annotators the same way.

Admins and adjudicators always see the ratings. The mode of a session is the admin's choice
(collection ``curation_modes``, one audited document per session: ``mode``, ``show_ratings``),
else the default from whether the session has a client self-report
(:func:`care_model.text.curation.default_curation_mode`). Adjudicated labels record ``adjudicated``.
"""
from __future__ import annotations

from care_model.text.curation import (CLIENT_ANCHORED, CURATION_MODES, EXPERT_JUDGED, default_curation_mode,
    score_source_for)
from care_model.core.errors import ValidationError

from .access import Access, review_settings

COLLECTION = "curation_modes"
MODE_NAMES = {CLIENT_ANCHORED: "client-anchored", EXPERT_JUDGED: "expert-judged"}


def _defaults(session) -> dict:
    return {"default_mode": default_curation_mode(session), "has_self_report": bool(session.ratings.get("client"))}


def curation_of(repo, session) -> dict:
    """``{"mode", "default_mode", "chosen" (by an admin), "has_self_report", "show_ratings"}`` of a
    session (``session``: a Session or its id)."""
    session = repo.get_session(session) if isinstance(session, str) else session
    doc = repo.collection(COLLECTION).get(session.id) or {}
    out = _defaults(session)
    out["chosen"] = doc.get("mode") in CURATION_MODES
    out["mode"] = doc["mode"] if out["chosen"] else out["default_mode"]
    show = doc.get("show_ratings")
    out["show_ratings"] = bool(review_settings(repo).get("show_ratings")) if show is None else bool(show)
    out["show_ratings_source"] = "store setting" if show is None else "session"
    return out


def queue_modes(repo, summaries) -> dict[str, str]:
    """Session id -> its curation mode, for many sessions at once (the review queue): the admin's
    choice, else the default from the summary's ``has_client_ratings``."""
    chosen = {d["id"]: d.get("mode") for d in repo.collection(COLLECTION).all() if d.get("mode") in CURATION_MODES}
    return {s["id"]: chosen.get(s["id"]) or (CLIENT_ANCHORED if s["has_client_ratings"] else EXPERT_JUDGED)
            for s in summaries}


def set_curation_mode(repo, access: Access, session_ids, mode: str = "default", show_ratings=None) -> dict:
    """Admin: set the curation mode of sessions ("default" goes back to the default), and
    optionally whether their annotators see the ratings (None: the store's setting). Checks every
    session before changing any."""
    from .admin import parse_ids

    access.require("admin", action="setting curation modes")
    sids = parse_ids(session_ids)
    mode = (mode or "default").strip()
    if not sids:
        raise ValidationError("No sessions given.", "Give at least one session id.")
    if mode not in CURATION_MODES + ("default",):
        raise ValidationError(f"Unknown curation mode {mode!r}.", f"Use one of {', '.join(CURATION_MODES)} or default.")
    sessions = []
    for sid in sids:
        if not repo.has_session(sid):
            raise ValidationError(f"No session {sid!r} in the store.", "Check the ids (nothing was changed).")
        sessions.append(repo.get_session(sid))
    if mode == CLIENT_ANCHORED:
        missing = [s.id for s in sessions if not s.ratings.get("client")]
        if missing:
            raise ValidationError(f"Session(s) {', '.join(missing)} have no client self-report, so their scores cannot "
                                  "be anchored to the client's.",
                                  "Curate them expert-judged, or import the clients' WAI-SR ratings first "
                                  "(nothing was changed).")
    coll = repo.collection(COLLECTION)
    for s in sessions:
        doc = coll.get(s.id) or {"id": s.id}
        doc["mode"] = None if mode == "default" else mode
        doc["show_ratings"] = None if show_ratings in (None, "") else bool(show_ratings)
        coll.put(doc, actor=access.username, action="set_mode")
    modes = {s.id: curation_of(repo, s)["mode"] for s in sessions}
    return {"sessions": len(sessions), "modes": modes, "show_ratings": show_ratings}


def list_curation_modes(repo, access: Access) -> list[dict]:
    """Admin: every session's curation mode (chosen or default) and ratings visibility."""
    access.require("admin", action="listing curation modes")
    return [{"session_id": sid, **curation_of(repo, sid)} for sid in repo.session_ids()]


# ----- the review payload and saves -------------------------------------------------------------
def sees_ratings(access: Access, curation: dict) -> dict[str, bool]:
    """Which raters' ratings this user may see while coding the session."""
    if access.is_staff or curation["show_ratings"]:
        return {"client": True, "counselor": True}
    return {"client": curation["mode"] == CLIENT_ANCHORED, "counselor": False}


def score_drafts(repo, session_id: str, targets: dict[int, int]) -> dict[int, dict]:
    """The latest drafted rationale (:mod:`care_model.text.drafting`, predictions of mode "draft") per
    item written for the item's target score: item -> {id, model_version, score, rationale, evidence}."""
    out = {}
    for p in repo.predictions(session_id, history=True):  # oldest first: a later draft wins
        if (p.is_draft and p.rationale and p.drafted_for_score is not None
                and targets.get(int(p.item)) == p.drafted_for_score):
            out[int(p.item)] = {"id": p.id, "model_version": p.model_version, "score": p.drafted_for_score,
                                "rationale": p.rationale, "evidence": list(p.evidence)}
    return out


def apply_to_view(repo, view: dict, curation: dict, access: Access, session, recheck) -> dict:
    """Anchor the scores and hide the ratings in an :func:`studio.review.open_view` payload (in
    place). In client-anchored mode an unreviewed item starts from the model's rationale drafted
    for the client's score when there is one (``score_draft``), else from its free rationale.
    ``recheck(draft, prediction, saved)`` recomputes an item's checks."""
    anchored = curation["mode"] == CLIENT_ANCHORED
    client = session.ratings.get("client") or {}
    drafts = score_drafts(repo, session.id, client) if anchored else {}
    view["curation"] = {"mode": curation["mode"], "default_mode": curation["default_mode"],
                        "chosen": curation["chosen"],
                        "score_locked": anchored, "score_source": score_source_for(curation["mode"],
                                                                                   view["slot"] or ""),
                        "ratings_visible": sees_ratings(access, curation)}
    for it in view["items"]:
        it["anchored_score"] = client.get(int(it["item"])) if anchored else None
        it["score_draft"] = drafts.get(int(it["item"]))
        if it["label"] is None and it["score_draft"]:
            it["draft"].update(rationale=it["score_draft"]["rationale"], evidence=list(it["score_draft"]["evidence"]))
        if anchored:  # the score is the client's; checks for a fixed score
            it["draft"]["score"] = it["anchored_score"]
            it["checks"] = recheck(it["draft"], it["prediction"], it["label"] is not None)
    for rater, visible in view["curation"]["ratings_visible"].items():
        if not visible:
            view["session"]["ratings"].pop(rater, None)
            view["summary"][rater] = None
    return view


def offered_draft(repo, session_id: str, item: int) -> dict | None:
    """The drafted rationale a client-anchored card offers for ``item`` (see :func:`score_drafts`),
    None in expert-judged mode or when there is none."""
    session = repo.get_session(session_id)
    if curation_of(repo, session)["mode"] != CLIENT_ANCHORED:
        return None
    return score_drafts(repo, session_id, session.ratings.get("client") or {}).get(int(item))


def anchored_save(repo, session_id: str, slot: str, item: int, score) -> tuple[int | None, str]:
    """The score a save stores and its ``score_source``: in client-anchored mode the client's
    rating (a different score is refused, no score gets the client's); else the score as given."""
    session = repo.get_session(session_id)
    mode = curation_of(repo, session)["mode"]
    source = score_source_for(mode, slot)
    if mode != CLIENT_ANCHORED:
        return score, source
    want = (session.ratings.get("client") or {}).get(int(item))
    if score is not None and want is not None and int(score) != int(want):
        raise ValidationError(f"Item {item} of {session_id} is client-anchored: its score is the client's own rating "
                              f"({want}) and cannot be changed to {score}.",
                              "Leave the score as it is (or send none) and write the rationale that fits the client's "
                              "score; an admin can switch the session to expert-judged.")
    return (want if want is not None else score), source


def source_of(repo, session, slot: str) -> str:
    """The ``score_source`` a label saved now in ``slot`` of the session records."""
    return score_source_for(curation_of(repo, session)["mode"], slot)


def stale_source_problems(labels, source: str) -> dict[str, list[str]]:
    """Items saved under another curation mode than the session's current one (an admin changed it)."""
    return {str(lab.item): [f"Saved as {lab.score_source.replace('_', ' ')} but the session is now curated for "
                            f"{source.replace('_', ' ')}: check the item and save it again."]
            for lab in labels if lab.score_source != source}


def mode_html(view: dict) -> str:
    """A line above the card that says how this session is curated."""
    from .render import esc

    cur = view.get("curation") or {}
    if cur.get("mode") == CLIENT_ANCHORED:
        text = ("Client-anchored: each item's score is the client's own WAI-SR rating and cannot be changed. "
                "Write the rationale for that score (faithful to the dialogue) and pick its evidence.")
    else:
        text = "Expert-judged: score each item yourself from the transcript."
        if not all((cur.get("ratings_visible") or {}).values()):
            text += " The client's and counselor's ratings are hidden while you code."
    return f'<div class="care-muted" id="care-curation-mode" data-mode="{esc(cur.get("mode") or "")}">{esc(text)}</div>'
