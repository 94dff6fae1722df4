"""A rater's side of a human evaluation campaign: the blind view of one task and saving its rating.

Blindness (see :mod:`studio.campaigns`): nothing here returns a system name, except the two
systems of a pairwise task once its rater has finished every task of the campaign (or, where the
admin chose ``reveal_after_each`` at creation, once the rater submitted that choice).
"""
from __future__ import annotations

from care_model.core.errors import ConflictError, PermissionDenied, ValidationError
from care_model.core.records import now_iso
from care_model.core.wai import load_form

from .access import Access
from .campaigns import CAMPAIGNS, CHOICE_NAMES, CHOICES, CRITERIA, CRITERION_INFO, campaign_ratings, rater_progress


def _rater_campaign(repo, access: Access, campaign_id: str) -> dict:
    """The campaign, if ``access`` is one of its raters (same answer whether or not it exists)."""
    doc = repo.collection(CAMPAIGNS).get(str(campaign_id or "").strip())
    if doc is None or access.username not in doc["raters"]:
        raise PermissionDenied(f"You are not a rater of campaign {campaign_id!r}.",
                               "Pick a campaign from your list, or ask an admin to add you as a rater.")
    return doc



def _revealed(doc: dict, task: dict, status: str, done: int, total: int) -> dict | None:
    """The systems of a submitted pairwise task, if this campaign reveals them now (campaigns created
    before the setting existed reveal only after the rater finished)."""
    if task["kind"] != "pairwise" or status != "submitted":
        return None
    if doc.get("reveal") == "after_each" or (total and done >= total):
        return {"a": task["left"], "b": task["right"]}
    return None


# ----------------------------------------------------------------------------- rating
def _blind_output(o: dict, scale: dict) -> dict:
    return {"score": o["score"], "score_label": scale.get(o["score"], ""), "rationale": o["rationale"],
            "evidence": list(o.get("evidence") or [])}


def _blind_rating(doc: dict | None) -> dict:
    doc = doc or {}
    return {"scores": {c: (doc.get("scores") or {}).get(c) for c in CRITERIA}, "comment": doc.get("comment", ""),
            "choice": doc.get("choice"), "status": doc.get("status", "new"), "version": int(doc.get("version", 0)),
            "updated_at": doc.get("updated_at", "")}


def rater_task(repo, access: Access, campaign_id: str, task_id: str | None = None) -> dict:
    """What a rater sees for one task (default: the first one not yet submitted): transcript,
    item, the rationale(s) without system names, their own saved rating and their progress."""
    doc = _rater_campaign(repo, access, campaign_id)
    mine = doc["assignments"].get(access.username, [])
    ratings = {r["id"]: r for r in campaign_ratings(repo, doc["id"]).all(lambda d: d.get("rater") == access.username)}
    done = sum(1 for k in mine if (ratings.get(k) or {}).get("status") == "submitted")
    if not mine:
        raise ValidationError("You have no tasks in this campaign.", "Ask the admin who created it.")
    if not task_id:
        task_id = next((k for k in mine if (ratings.get(k) or {}).get("status") != "submitted"), mine[-1])
    if task_id not in mine:
        raise PermissionDenied(f"Task {task_id!r} is not one of yours in this campaign.", "Open your next task.")
    pos = mine.index(task_id)
    task = doc["tasks"][task_id]
    target = next(t for t in doc["targets"] if t["id"] == task["target"])
    session = repo.get_session(target["session_id"])
    form = load_form(session.form)
    lang = session.language if session.language in form.languages else "en"
    scale = form.scale_labels(lang)
    rating = _blind_rating(ratings.get(task_id))
    view = {
        "campaign_id": doc["id"], "campaign_name": doc["name"], "campaign_status": doc["status"],
        "task_id": task_id, "kind": task["kind"], "position": pos + 1, "total": len(mine), "done": done,
        "prev_task": mine[pos - 1] if pos > 0 else None, "next_task": mine[pos + 1] if pos + 1 < len(mine) else None,
        "session": {"id": session.id, "language": session.language, "turns": [t.to_dict() for t in session.turns]},
        "item": target["item"], "item_text": form.item_text(target["item"], "client", lang),
        "dimension": form.dimension_of(target["item"]), "scale": {str(k): v for k, v in scale.items()},
        "rating": rating,
    }
    if task["kind"] == "rubric":
        view["output"] = _blind_output(target["outputs"][task["system"]], scale)
        view["criteria"] = [{"key": c, **CRITERION_INFO[c], "anchors": {str(k): v for k,
                                                                        v in CRITERION_INFO[c]["anchors"].items()}}
                            for c in CRITERIA]
    else:
        view["a"] = _blind_output(target["outputs"][task["left"]], scale)
        view["b"] = _blind_output(target["outputs"][task["right"]], scale)
        view["choices"] = dict(CHOICE_NAMES)
        reveal = _revealed(doc, task, rating["status"], done, len(mine))
        if reveal:
            view["reveal"] = reveal
    return view


def _clean_scores(scores) -> dict:
    out = {}
    for c, v in (scores or {}).items():
        if c not in CRITERIA:
            raise ValidationError(f"Unknown criterion {c!r}.", f"Use {', '.join(CRITERIA)}.")
        if v in (None, ""):
            continue
        try:
            iv = int(float(v))
        except (TypeError, ValueError):
            raise ValidationError(f"{CRITERION_INFO[c]['name']} score {v!r} is not a number.", "Use 1 to 5.") from None
        if iv != float(v) or not 1 <= iv <= 5:
            raise ValidationError(f"{CRITERION_INFO[c]['name']} score {v!r} is outside 1-5.",
                                  "Use a whole number from 1 to 5.")
        out[c] = iv
    return out


def save_rating(repo, access: Access, campaign_id: str, task_id: str, *, scores: dict | None = None,
                comment: str | None = None, choice: str | None = None, submit: bool = False,
                expected_version: int = 0) -> dict:
    """Save a rater's (partial) rating of one task on top of ``expected_version``.

    ``scores``/``comment``/``choice`` given as None are left as saved. ``submit`` marks the task
    done (rubric: all three criteria scored; pairwise: a choice made; a submitted pairwise
    choice is final; its systems are revealed only as :func:`_revealed` allows). Saving what is
    stored writes nothing. A stale version returns ``{"status": "conflict", "current": ...}`` and writes nothing.
    """
    doc = _rater_campaign(repo, access, campaign_id)
    if task_id not in doc["assignments"].get(access.username, []):
        raise PermissionDenied(f"Task {task_id!r} is not one of yours in this campaign.", "Open your next task.")
    if doc["status"] != "open":
        raise ValidationError("This campaign is closed; ratings can no longer change.", "Ask its admin to reopen it.")
    task = doc["tasks"][task_id]
    coll = campaign_ratings(repo, doc["id"])
    current = coll.get(task_id)
    if task["kind"] == "rubric":
        if choice not in (None, ""):
            raise ValidationError("A rubric task has no A/B choice.", "Score the three criteria instead.")
        new_scores = {**((current or {}).get("scores") or {}), **_clean_scores(scores)}
        new_choice = None
    else:
        if scores:
            raise ValidationError("A pairwise task has no criterion scores.", "Choose A, B, tie or both bad.")
        if current and current.get("status") == "submitted":
            raise ValidationError("This comparison is submitted and final.",
                                  "Go on to your next task.")
        new_scores = {}
        new_choice = (current or {}).get("choice") if choice in (None, "") else str(choice).strip().lower()
        if new_choice is not None and new_choice not in CHOICES:
            raise ValidationError(f"Unknown choice {choice!r}.", "Use a, b, tie or both_bad.")
    new_comment = (current or {}).get("comment", "") if comment is None else str(comment)
    complete = all(new_scores.get(c) for c in CRITERIA) if task["kind"] == "rubric" else new_choice is not None
    if submit and not complete:
        missing = ([CRITERION_INFO[c]["name"] for c in CRITERIA if not new_scores.get(c)] if task["kind"] == "rubric"
                   else ["a choice"])
        raise ValidationError(f"Not ready to submit: {', '.join(missing)} missing.",
                              "Score every criterion (1-5) first."
                              if task["kind"] == "rubric" else "Choose A, B, tie or both bad first.")
    status = "submitted" if submit or (current or {}).get("status") == "submitted" else "draft"
    body = {"id": task_id, "rater": access.username, "target": task["target"], "kind": task["kind"],
            "scores": new_scores, "choice": new_choice, "comment": new_comment, "status": status}
    if current is not None and all(current.get(k) == v for k, v in body.items()) \
            and int(current["version"]) >= int(expected_version):
        saved, unchanged = current, True
    else:
        if status == "submitted" and (current or {}).get("status") != "submitted":
            body["submitted_at"] = now_iso()
        elif current and current.get("submitted_at"):
            body["submitted_at"] = current["submitted_at"]
        try:
            saved = coll.put(body, actor=access.username, expected_version=int(expected_version),
                             action="submit" if submit else None)
        except ConflictError as err:
            return {"status": "conflict", "current": _blind_rating(err.current), "message": str(err)}
        unchanged = False
    progress = rater_progress(doc, coll.all(lambda d: d.get("rater") == access.username))[access.username]
    out = {"status": "saved", "unchanged": unchanged, "rating": _blind_rating(saved), "version": int(saved["version"]),
           "done": progress["done"], "total": progress["total"]}
    reveal = _revealed(doc, task, saved["status"], progress["done"], progress["total"])
    if reveal:
        out["reveal"] = reveal
    return out
