"""Human evaluation campaigns as pure functions over the repository (no Gradio).

An admin creates a **campaign**: a sample of (session, item) **targets**, the **systems** whose
rationales are rated (model versions present in the sessions' predictions, and ``expert``: the
curated label's rationale, :func:`care_model.text.curation.curated_labels`), the **mode** (rubric,
pairwise or both), the **raters** and the **overlap** (raters per target).

Storage
-------
* ``repo.collection("campaigns")``: one document per campaign. Each target freezes, per
  system, the rationale, score, evidence and its source (prediction id or label id) at creation,
  so later edits do not change what is rated. ``tasks`` maps an opaque task id to what it is
  (rater, target, kind, system or the left/right systems); ``assignments`` lists each rater's
  task ids in a seeded random order (rubric tasks first, then pairwise). Only ``status``
  (open/closed) changes after creation.
* ``repo.collection("campaign_ratings", shard=<campaign id>)``: one document per task (a task
  is one rater x target x kind x system, or x system pair for pairwise), saved with
  ``expected_version`` (a stale save raises ConflictError, returned as ``status="conflict"``),
  durable and audited like labels. Every score click is saved at once.

Blindness: a rater's views (:func:`rater_task`, :func:`save_rating`, :func:`list_campaigns`)
never contain a system name or anyone else's rating. A pairwise task reveals its two systems to
its rater only after the rater has finished every task of the campaign (an admin may choose at
creation to reveal after each submitted choice, which is then final); rubric tasks never
reveal. Pairs of identical texts are never shown. Results and exports are for admins only.

Modules: this one holds the constants, the campaign documents and listing; creating a campaign
(systems, sampling): :mod:`studio.campaign_setup`; a rater's view and saves:
:mod:`studio.campaign_rating`; results and exports: :mod:`studio.campaign_results`.
"""
from __future__ import annotations

from care_model.stats import agreement
from care_model.core.errors import NotFoundError, ValidationError

from .access import Access

CAMPAIGNS = "campaigns"
RATINGS = "campaign_ratings"
EXPERT = "expert"
MODES = ("rubric", "pairwise", "both")
SAMPLINGS = ("random", "stratified")
STRATA = ("dimension", "score_band", "dimension+score_band")
CRITERIA = agreement.RUBRIC_CRITERIA
CHOICES = ("a", "b", "tie", "both_bad")
CHOICE_NAMES = {"a": "A is better", "b": "B is better", "tie": "Tie (equally good)", "both_bad": "Both bad"}
PASS = 3
CRITERION_INFO = {
    "faithfulness": {
        "name": "Faithfulness",
        "definition": "Consistent with the dialogue and with the score: what it claims and quotes is in the "
                      "transcript, and the reasoning supports the score given.",
        "anchors": {1: "Contradicts the dialogue or the score, or invents content",
                    2: "Mostly unsupported; the score does not follow",
                    3: "Partly supported; some claims unsupported or a weak link to the score (pass)",
                    4: "Supported, with minor slips",
                    5: "Fully supported; quotes accurate; the score follows from it"}},
    "relevance": {
        "name": "Relevance",
        "definition": "Addresses this item (what the item asks about), not the session in general or another item.",
        "anchors": {1: "About something else", 2: "Touches the item only in passing",
                    3: "Addresses the item, with digressions (pass)", 4: "Addresses the item, mostly focused",
                    5: "Directly and entirely about the item"}},
    "informativeness": {
        "name": "Informativeness",
        "definition": "Specific to this client and session, with concrete evidence; not generic text that would fit "
                      "any session.",
        "anchors": {1: "Generic boilerplate", 2: "Mostly generic, one vague detail",
                    3: "Some specifics from the session (pass)", 4: "Specific, with concrete evidence",
                    5: "Specific and concrete, quotes behaviour and its course over the session"}},
}


# ----------------------------------------------------------------------------- access
def require_admin(access: Access, action: str) -> None:
    access.require("admin", action=action)


def get_campaign(repo, campaign_id: str) -> dict:
    doc = repo.collection(CAMPAIGNS).get(str(campaign_id or "").strip())
    if doc is None:
        raise NotFoundError(f"No evaluation campaign {campaign_id!r}.", "Pick one from the list of campaigns.")
    return doc


def campaign_ratings(repo, campaign_id: str):
    return repo.collection(RATINGS, shard=campaign_id)


# ----------------------------------------------------------------------------- listing
def rater_progress(campaign: dict, ratings: list[dict]) -> dict[str, dict]:
    done: dict[str, int] = {}
    for r in ratings:
        if r.get("status") == "submitted" and r["id"] in campaign["tasks"]:
            done[r["rater"]] = done.get(r["rater"], 0) + 1
    return {r: {"done": done.get(r, 0), "total": len(campaign["assignments"].get(r, []))} for r in campaign["raters"]}


def _summary(repo, doc: dict, *, admin: bool, rater: str | None = None) -> dict:
    progress = rater_progress(doc, campaign_ratings(repo, doc["id"]).all())
    row = {"id": doc["id"], "name": doc["name"], "mode": doc["mode"], "status": doc["status"],
           "targets": len(doc["targets"]), "created_at": doc.get("created_at", "")}
    if admin:
        row.update(systems=list(doc["systems"]), raters=list(doc["raters"]), overlap=doc["overlap"],
                   created_by=doc["created_by"], progress=progress)
    if rater is not None and rater in progress:
        row.update(done=progress[rater]["done"], total=progress[rater]["total"])
    return row


def list_campaigns(repo, access: Access) -> list[dict]:
    """Admins: every campaign with systems and per-rater progress. Others: the campaigns they
    rate, with their own progress only (no systems)."""
    out = []
    for doc in sorted(repo.collection(CAMPAIGNS).all(), key=lambda d: d.get("created_at", ""), reverse=True):
        mine = access.username in doc["raters"]
        if access.role == "admin" or mine:
            out.append(_summary(repo, doc, admin=access.role == "admin", rater=access.username if mine else None))
    return out


def choice_label(row: dict) -> str:
    """A rater's campaign as the dropdown shows it: "Name (3/18 done)", "Name (all 18 done)", ", closed"."""
    done, total = row.get("done", 0), row.get("total", 0)
    progress = f"all {total} done" if total and done >= total else f"{done}/{total} done"
    return f'{row["name"]} ({progress}{", closed" if row.get("status") != "open" else ""})'


def rater_choices(repo, access: Access) -> list[tuple[str, str]]:
    """The campaign dropdown's choices for ``access``, progress read now: call it again after every
    submitted rating (and on page load), so the dropdown never shows an old count."""
    return [(choice_label(r), r["id"]) for r in list_campaigns(repo, access) if "total" in r]


def set_campaign_status(repo, access: Access, campaign_id: str, status: str) -> dict:
    require_admin(access, "opening or closing campaigns")
    if status not in ("open", "closed"):
        raise ValidationError(f"Unknown campaign status {status!r}.", "Use 'open' or 'closed'.")
    doc = get_campaign(repo, campaign_id)
    version = doc["version"]
    doc["status"] = status
    return _summary(repo, repo.collection(CAMPAIGNS).put(doc, actor=access.username, expected_version=version,
                                                         action=f"status:{status}"), admin=True)
