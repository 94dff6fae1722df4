"""The review queue: the sessions a user may review, with status, progress and model uncertainty
(:func:`queue_rows`; the rows of the Review tab's queue and of ``/queue``).
"""
from __future__ import annotations

import math

from care_model.core.errors import ValidationError
from care_model.core.wai import load_form

from . import curation_modes
from .access import Access, visible_sessions

SESSION_STATUSES = ("not started", "in progress", "submitted")
ORDERS = ("id", "uncertainty")
SCOPES = ("mine", "all")


def spread(probs, points) -> float | None:
    """Standard deviation of the score under the option probabilities (0 = certain)."""
    if not probs or len(probs) != len(points):
        return None
    total = sum(probs)
    if total <= 0:
        return None
    ps = [p / total for p in probs]
    mu = sum(k * p for k, p in zip(points, ps))
    return math.sqrt(max(0.0, sum(p * (k - mu) ** 2 for k, p in zip(points, ps))))


def uncertainty(predictions, form=None) -> float | None:
    """A session's model uncertainty: the mean spread of its items' option probabilities (the
    calibrated ones where the prediction has them)."""
    points = (form or load_form()).scale.points
    vals = [s for s in (spread(p.probs_calibrated or p.probs, points) for p in predictions) if s is not None]
    return sum(vals) / len(vals) if vals else None


def latest_predictions(repo, session_id: str, model_version: str | None) -> list:
    """Latest suggestion per item of ``model_version`` if it predicted the session, else of the
    most recent version that did (the rule :func:`open_view` uses)."""
    preds = repo.predictions(session_id)
    if not preds:
        return []
    versions = {p.model_version for p in preds}
    if model_version not in versions:
        model_version = max(preds, key=lambda p: p.created_at).model_version
    return [p for p in preds if p.model_version == model_version]


def review_status(labels, item_ids) -> tuple[str, int, int]:
    by_item = {lab.item: lab for lab in labels}
    reviewed = sum(1 for i in item_ids if i in by_item)
    submitted = sum(1 for i in item_ids if i in by_item and by_item[i].status == "submitted")
    if reviewed == 0:
        return "not started", reviewed, submitted
    return ("submitted" if submitted == len(item_ids) else "in progress"), reviewed, submitted


def queue_rows(repo, access: Access, *, scope: str = "mine", search: str = "", order: str = "id",
               model_version: str | None = None) -> dict:
    """The user's queue: ``{"rows": [...], "counts": {...}}``.

    ``scope`` "mine": sessions assigned to the user; "all": every session they may see.
    ``search`` matches ids, client/counselor ids, source, language, the curation mode
    ("client-anchored" / "expert-judged") and metadata (not transcript text). Each row's
    ``curation`` says how its scores are curated (:mod:`studio.curation_modes`). ``order`` "id" or
    "uncertainty" (most uncertain first; unpredicted sessions last).
    """
    if scope not in SCOPES:
        raise ValidationError(f"Unknown queue scope {scope!r}.", f"Use one of {', '.join(SCOPES)}.")
    if order not in ORDERS:
        raise ValidationError(f"Unknown queue order {order!r}.", f"Use one of {', '.join(ORDERS)}.")
    visible = visible_sessions(repo, access)
    if scope == "mine":
        visible = {sid: sa for sid, sa in visible.items() if access.username in sa.annotators}
    needle = (search or "").strip().casefold()
    rows = []
    forms = {}
    summaries = [s for s in repo.session_summaries() if s["id"] in visible]
    modes = curation_modes.queue_modes(repo, summaries)
    for summ in summaries:
        sa = visible[summ["id"]]
        curation = curation_modes.MODE_NAMES[modes[summ["id"]]]
        if needle:
            hay = " ".join([summ["id"], summ["client_id"], summ["counselor_id"], summ["source"], summ["language"],
                            curation] + [str(v) for v in summ["metadata"].values()]).casefold()
            if needle not in hay:
                continue
        form = forms.setdefault("wai-sr", load_form())
        labels = repo.labels(summ["id"], annotator=sa.slot) if sa.slot else []
        status, reviewed, submitted = review_status(labels, form.item_ids)
        preds = latest_predictions(repo, summ["id"], model_version)
        unc = uncertainty(preds, form)
        rows.append({"id": summ["id"], "language": summ["language"], "turns": summ["turns"],
                     "status": status if sa.slot else "read-only", "reviewed": reviewed, "submitted": submitted,
                     "items": len(form.item_ids), "uncertainty": None if unc is None else round(unc, 3),
                     "model_version": preds[0].model_version if preds else None,
                     "assigned": ", ".join(sa.annotators), "mode": sa.mode, "curation": curation,
                     "topic": str(summ["metadata"].get("topic") or summ["metadata"].get("summary") or "")[:80],
                     "client_ratings": summ["has_client_ratings"]})
    if order == "uncertainty":
        rows.sort(key=lambda r: (r["uncertainty"] is None, -(r["uncertainty"] or 0.0), r["id"]))
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in SESSION_STATUSES}
    counts["total"] = len(rows)
    counts["items_reviewed"] = sum(r["reviewed"] for r in rows)
    counts["items_total"] = sum(r["items"] for r in rows if r["status"] != "read-only")
    return {"rows": rows, "counts": counts}
