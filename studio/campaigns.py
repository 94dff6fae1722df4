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
its rater only after the rater submitted the choice (which then is final); rubric tasks never
reveal. Results and exports are for admins only.

Results and exports: :mod:`studio.campaign_results`.
"""
from __future__ import annotations

import itertools
import random
import re
import uuid

from care_model.stats import agreement
from care_model.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from care_model.text.curation import curated_labels
from care_model.core.records import now_iso, stable_hash
from care_model.core.wai import load_form

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
def _admin(access: Access, action: str) -> None:
    access.require("admin", action=action)


def get_campaign(repo, campaign_id: str) -> dict:
    doc = repo.collection(CAMPAIGNS).get(str(campaign_id or "").strip())
    if doc is None:
        raise NotFoundError(f"No evaluation campaign {campaign_id!r}.", "Pick one from the list of campaigns.")
    return doc


def _rater_campaign(repo, access: Access, campaign_id: str) -> dict:
    """The campaign, if ``access`` is one of its raters (same answer whether or not it exists)."""
    doc = repo.collection(CAMPAIGNS).get(str(campaign_id or "").strip())
    if doc is None or access.username not in doc["raters"]:
        raise PermissionDenied(f"You are not a rater of campaign {campaign_id!r}.",
                               "Pick a campaign from your list, or ask an admin to add you as a rater.")
    return doc


def _ratings(repo, campaign_id: str):
    return repo.collection(RATINGS, shard=campaign_id)


# ----------------------------------------------------------------------------- systems
def _model_output(p) -> dict | None:
    if p.score is None or not (p.rationale or "").strip() or p.parse_status == "failed":
        return None
    return {"score": int(p.score), "rationale": p.rationale, "evidence": list(p.evidence),
            "source": {"prediction_id": p.id}}


def system_outputs(repo, session_id: str, systems: list[str]) -> dict[int, dict[str, dict]]:
    """``{item: {system: output}}`` for the systems that have a scored, non-empty rationale."""
    out: dict[int, dict[str, dict]] = {}
    for system in systems:
        if system == EXPERT:
            chosen, _unresolved = curated_labels(repo.labels(session_id, status="submitted"))
            for lab in chosen:
                if lab.score is not None and (lab.rationale or "").strip():
                    out.setdefault(int(lab.item), {})[EXPERT] = {
                        "score": int(lab.score), "rationale": lab.rationale, "evidence": list(lab.evidence),
                        "source": {"label_id": lab.id}}
        else:
            for p in repo.predictions(session_id, system):
                o = _model_output(p)
                if o is not None:
                    out.setdefault(int(p.item), {})[system] = o
    return out


def available_systems(repo, access: Access, session_ids=None) -> list[dict]:
    """Model versions predicted for the sessions, and ``expert`` if curated labels exist, with
    the number of (session, item) pairs each can be rated on."""
    _admin(access, "planning an evaluation")
    counts: dict[str, int] = {}
    for sid in _session_ids(repo, session_ids):
        versions = sorted(repo.predicted_versions(sid))
        for item, outs in system_outputs(repo, sid, versions + [EXPERT]).items():
            for system in outs:
                counts[system] = counts.get(system, 0) + 1
    return [{"system": s, "kind": "expert" if s == EXPERT else "model", "targets": n}
            for s, n in sorted(counts.items(), key=lambda kv: (kv[0] == EXPERT, kv[0]))]


def _session_ids(repo, session_ids) -> list[str]:
    from .admin import parse_ids

    ids = parse_ids(session_ids) if session_ids else []
    if not ids:
        return repo.session_ids()
    missing = [s for s in ids if not repo.has_session(s)]
    if missing:
        raise NotFoundError(f"No session(s) {', '.join(map(repr, missing[:5]))} in the store.", "Check the session ids.")
    return list(dict.fromkeys(ids))


# ----------------------------------------------------------------------------- sampling
def score_band(score: int | None) -> str:
    return "none" if score is None else "low (1-2)" if score <= 2 else "mid (3)" if score == 3 else "high (4-5)"


def eligible_targets(repo, session_ids, items, systems: list[str]) -> list[dict]:
    """(session, item) pairs with an output from every system, in (session, item) order."""
    form = load_form()
    items = [form.check_item(i) for i in (items or form.item_ids)]
    out = []
    for sid in _session_ids(repo, session_ids):
        outs = system_outputs(repo, sid, systems)
        for item in items:
            have = outs.get(item, {})
            if all(s in have for s in systems):
                out.append({"session_id": sid, "item": item, "dimension": form.dimension_of(item),
                            "outputs": {s: have[s] for s in systems}})
    return out


def _stratum(target: dict, strata: str, band_system: str) -> str:
    parts = []
    if "dimension" in strata:
        parts.append(target["dimension"])
    if "score_band" in strata:
        parts.append(score_band(target["outputs"][band_system]["score"]))
    return " / ".join(parts)


def sample_targets(eligible: list[dict], n: int, *, method: str = "random", strata: str = "dimension",
                   band_system: str | None = None, seed: int = 0) -> list[dict]:
    """A seeded random sample of ``n`` targets, or a stratified one (proportional allocation,
    largest remainders) by dimension and/or by the score band of ``band_system``."""
    if method not in SAMPLINGS:
        raise ValidationError(f"Unknown sampling {method!r}.", f"Use one of {', '.join(SAMPLINGS)}.")
    if n < 1:
        raise ValidationError(f"A campaign needs at least one target, not {n}.", "Ask for 1 or more targets.")
    if n > len(eligible):
        raise ValidationError(
            f"Only {len(eligible)} (session, item) pairs have a rationale from every chosen system; {n} were asked for.",
            "Ask for fewer targets, choose more sessions or items, or drop a system that covers few of them.")
    rng = random.Random(f"campaign-sample|{seed}")
    if method == "random":
        return sorted(rng.sample(eligible, n), key=lambda t: (t["session_id"], t["item"]))
    if strata not in STRATA:
        raise ValidationError(f"Unknown strata {strata!r}.", f"Use one of {', '.join(STRATA)}.")
    groups: dict[str, list[dict]] = {}
    for t in eligible:
        groups.setdefault(_stratum(t, strata, band_system or next(iter(t["outputs"]))), []).append(t)
    total = len(eligible)
    quotas = {k: n * len(v) / total for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    for k in sorted(groups, key=lambda k: (-(quotas[k] - take[k]), k))[: n - sum(take.values())]:
        take[k] += 1
    chosen = []
    for k in sorted(groups):
        chosen += rng.sample(groups[k], take[k])
    return sorted(chosen, key=lambda t: (t["session_id"], t["item"]))


# ----------------------------------------------------------------------------- creation
def _task_id(campaign_id: str, rater: str, target: str, kind: str, systems) -> str:
    return "k" + stable_hash([campaign_id, rater, target, kind, list(systems)], 12)


def create_campaign(repo, access: Access, *, name: str, systems, mode: str = "both", n_targets: int = 20,
                    raters, overlap: int = 2, sampling: str = "random", strata: str = "dimension",
                    session_ids=None, items=None, seed: int = 0, allow_self_rating: bool = False) -> dict:
    """Create a campaign (admin); returns the stored document. No rater rates a curated rationale
    they wrote unless ``allow_self_rating`` (then recorded): :mod:`studio.campaign_conflicts`."""
    from .campaign_conflicts import pick_raters, target_authors

    _admin(access, "creating evaluation campaigns")
    from .admin import parse_ids

    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError("The campaign has no name.", "Give it a short name, e.g. 'v2 vs expert, May'.")
    if mode not in MODES:
        raise ValidationError(f"Unknown mode {mode!r}.", f"Use one of {', '.join(MODES)}.")
    systems = list(dict.fromkeys(parse_ids(systems)))
    if not systems:
        raise ValidationError("No systems chosen.", "Choose at least one model version or 'expert'.")
    if mode != "rubric" and len(systems) < 2:
        raise ValidationError("Pairwise comparison needs at least two systems.", "Choose two or more, or use mode 'rubric'.")
    raters = list(dict.fromkeys(parse_ids(raters)))
    if not raters:
        raise ValidationError("No raters chosen.", "Name at least one user as a rater.")
    for r in raters:
        repo.role_of(r)  # raises for unknown or inactive users
    overlap = int(overlap)
    if not 1 <= overlap <= len(raters):
        raise ValidationError(f"Overlap {overlap} is not between 1 and the number of raters ({len(raters)}).",
                              "Overlap is how many raters rate each target; agreement needs 2 or more.")
    eligible = eligible_targets(repo, session_ids, parse_ids(items) if items else None, systems)
    band_system = next((s for s in systems if s != EXPERT), systems[0])
    picked = sample_targets(eligible, int(n_targets), method=sampling, strata=strata, band_system=band_system, seed=seed)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:30] or "campaign"
    cid = f"{slug}-{uuid.uuid4().hex[:6]}"
    rng = random.Random(f"campaign-raters|{seed}|{cid}")
    order = raters[:]
    rng.shuffle(order)
    targets, tasks = [], {}
    per_rater: dict[str, dict[str, list[str]]] = {r: {"rubric": [], "pairwise": []} for r in raters}
    pairs = list(itertools.combinations(systems, 2))
    self_rating = {}
    for i, t in enumerate(picked):
        tid = f"t{i + 1:03d}"
        who, own = pick_raters(order, i, overlap, target_authors(repo, t) if EXPERT in systems else set(), target=tid,
                               allow_self_rating=bool(allow_self_rating))
        if own:
            self_rating[tid] = own
        targets.append({"id": tid, "session_id": t["session_id"], "item": t["item"], "dimension": t["dimension"],
                        "outputs": t["outputs"], "raters": sorted(who)})
        for r in who:
            if mode in ("rubric", "both"):
                for s in systems:
                    k = _task_id(cid, r, tid, "rubric", [s])
                    tasks[k] = {"rater": r, "target": tid, "kind": "rubric", "system": s}
                    per_rater[r]["rubric"].append(k)
            if mode in ("pairwise", "both"):
                for a, b in pairs:
                    if random.Random(stable_hash([seed, cid, r, tid, a, b])).random() < 0.5:
                        a, b = b, a
                    k = _task_id(cid, r, tid, "pairwise", [a, b])
                    tasks[k] = {"rater": r, "target": tid, "kind": "pairwise", "left": a, "right": b}
                    per_rater[r]["pairwise"].append(k)
    assignments = {}
    for r in raters:
        ro = random.Random(f"campaign-order|{seed}|{cid}|{r}")
        rub, pw = per_rater[r]["rubric"], per_rater[r]["pairwise"]
        ro.shuffle(rub)
        ro.shuffle(pw)
        assignments[r] = rub + pw
    doc = {"id": cid, "name": name, "created_by": access.username, "mode": mode, "systems": systems,
           "raters": raters, "overlap": overlap, "status": "open", "criteria": list(CRITERIA), "pass_threshold": PASS,
           "sampling": {"method": sampling, "strata": strata if sampling == "stratified" else None, "seed": int(seed),
                        "n_targets": len(targets), "n_eligible": len(eligible), "band_system": band_system,
                        "sessions": sorted({t["session_id"] for t in targets}),
                        "items": sorted({t["item"] for t in targets})},
           "targets": targets, "tasks": tasks, "assignments": assignments, "self_rating": self_rating}
    return repo.collection(CAMPAIGNS).put(doc, actor=access.username, expected_version=0, action="create")


def set_campaign_status(repo, access: Access, campaign_id: str, status: str) -> dict:
    _admin(access, "opening or closing campaigns")
    if status not in ("open", "closed"):
        raise ValidationError(f"Unknown campaign status {status!r}.", "Use 'open' or 'closed'.")
    doc = get_campaign(repo, campaign_id)
    version = doc["version"]
    doc["status"] = status
    return _summary(repo, repo.collection(CAMPAIGNS).put(doc, actor=access.username, expected_version=version,
                                                         action=f"status:{status}"), admin=True)


# ----------------------------------------------------------------------------- listing
def _progress(campaign: dict, ratings: list[dict]) -> dict[str, dict]:
    done: dict[str, int] = {}
    for r in ratings:
        if r.get("status") == "submitted" and r["id"] in campaign["tasks"]:
            done[r["rater"]] = done.get(r["rater"], 0) + 1
    return {r: {"done": done.get(r, 0), "total": len(campaign["assignments"].get(r, []))} for r in campaign["raters"]}


def _summary(repo, doc: dict, *, admin: bool, rater: str | None = None) -> dict:
    progress = _progress(doc, _ratings(repo, doc["id"]).all())
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
    ratings = {r["id"]: r for r in _ratings(repo, doc["id"]).all(lambda d: d.get("rater") == access.username)}
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
        view["criteria"] = [{"key": c, **CRITERION_INFO[c], "anchors": {str(k): v for k, v in CRITERION_INFO[c]["anchors"].items()}}
                            for c in CRITERIA]
    else:
        view["a"] = _blind_output(target["outputs"][task["left"]], scale)
        view["b"] = _blind_output(target["outputs"][task["right"]], scale)
        view["choices"] = dict(CHOICE_NAMES)
        if rating["status"] == "submitted":
            view["reveal"] = {"a": task["left"], "b": task["right"]}
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
            raise ValidationError(f"{CRITERION_INFO[c]['name']} score {v!r} is outside 1-5.", "Use a whole number from 1 to 5.")
        out[c] = iv
    return out


def save_rating(repo, access: Access, campaign_id: str, task_id: str, *, scores: dict | None = None,
                comment: str | None = None, choice: str | None = None, submit: bool = False,
                expected_version: int = 0) -> dict:
    """Save a rater's (partial) rating of one task on top of ``expected_version``.

    ``scores``/``comment``/``choice`` given as None are left as saved. ``submit`` marks the task
    done (rubric: all three criteria scored; pairwise: a choice made; a submitted pairwise
    choice is final and reveals the systems). Saving what is stored writes nothing. A stale
    version returns ``{"status": "conflict", "current": ...}`` and writes nothing.
    """
    doc = _rater_campaign(repo, access, campaign_id)
    if task_id not in doc["assignments"].get(access.username, []):
        raise PermissionDenied(f"Task {task_id!r} is not one of yours in this campaign.", "Open your next task.")
    if doc["status"] != "open":
        raise ValidationError("This campaign is closed; ratings can no longer change.", "Ask its admin to reopen it.")
    task = doc["tasks"][task_id]
    coll = _ratings(repo, doc["id"])
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
            raise ValidationError("This comparison is submitted and final (the systems were revealed).",
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
        raise ValidationError(f"Not ready to submit: {', '.join(missing)} missing.", "Score every criterion (1-5) first."
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
    progress = _progress(doc, coll.all(lambda d: d.get("rater") == access.username))[access.username]
    out = {"status": "saved", "unchanged": unchanged, "rating": _blind_rating(saved), "version": int(saved["version"]),
           "done": progress["done"], "total": progress["total"]}
    if task["kind"] == "pairwise" and saved["status"] == "submitted":
        out["reveal"] = {"a": task["left"], "b": task["right"]}
    return out
