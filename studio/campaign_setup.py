"""Setting up a human evaluation campaign (admin): which systems can be rated, a seeded sample of
(session, item) targets, and the campaign document with every rater's tasks.

What a campaign holds and why: :mod:`studio.campaigns`.
"""
from __future__ import annotations

import itertools
import random
import re
import uuid

from care_model.core.errors import NotFoundError, ValidationError
from care_model.core.records import stable_hash
from care_model.core.wai import load_form
from care_model.text.curation import curated_labels

from .access import Access
from .admin import parse_ids
from .campaign_conflicts import pick_raters, target_authors
from .campaigns import CAMPAIGNS, CRITERIA, EXPERT, MODES, PASS, SAMPLINGS, STRATA, require_admin


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
    require_admin(access, "planning an evaluation")
    counts: dict[str, int] = {}
    for sid in _session_ids(repo, session_ids):
        versions = sorted(repo.predicted_versions(sid))
        for item, outs in system_outputs(repo, sid, versions + [EXPERT]).items():
            for system in outs:
                counts[system] = counts.get(system, 0) + 1
    return [{"system": s, "kind": "expert" if s == EXPERT else "model", "targets": n}
            for s, n in sorted(counts.items(), key=lambda kv: (kv[0] == EXPERT, kv[0]))]


def _session_ids(repo, session_ids) -> list[str]:
    ids = parse_ids(session_ids) if session_ids else []
    if not ids:
        return repo.session_ids()
    missing = [s for s in ids if not repo.has_session(s)]
    if missing:
        raise NotFoundError(f"No session(s) {', '.join(map(repr, missing[:5]))} in the store.",
                            "Check the session ids.")
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
            f"Only {len(eligible)} (session, item) pairs have a rationale from every chosen system; "
            f"{n} were asked for.",
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


# ----------------------------------------------------------------------------- identical texts
def same_text(x: dict, y: dict) -> bool:
    """Two outputs whose rationales are the same text (whitespace aside): nothing to compare."""
    return " ".join(str(x.get("rationale") or "").split()) == " ".join(str(y.get("rationale") or "").split())


def distinct_pairs(target: dict, pairs) -> list[tuple[str, str]]:
    """The system pairs of ``target`` whose texts differ (identical pairs are never shown to a rater)."""
    return [(a, b) for a, b in pairs if not same_text(target["outputs"][a], target["outputs"][b])]


# ----------------------------------------------------------------------------- creation
def _task_id(campaign_id: str, rater: str, target: str, kind: str, systems) -> str:
    return "k" + stable_hash([campaign_id, rater, target, kind, list(systems)], 12)


def create_campaign(repo, access: Access, *, name: str, systems, mode: str = "both", n_targets: int = 20,
                    raters, overlap: int = 2, sampling: str = "random", strata: str = "dimension",
                    session_ids=None, items=None, seed: int = 0, allow_self_rating: bool = False,
                    reveal_after_each: bool = False) -> dict:
    """Create a campaign (admin); returns the stored document. No rater rates a curated rationale
    they wrote unless ``allow_self_rating`` (then recorded): :mod:`studio.campaign_conflicts`.

    Pairwise: a pair whose two texts are identical is never a task (mode ``pairwise`` samples only
    targets with at least one differing pair); how many were skipped is in ``sampling["identical_skipped"]``.
    A and B are assigned per rater and target by a coin flip seeded from ``seed`` (stored as the task's
    ``left``/``right``). A rater learns which system wrote A and B only after finishing every task of the
    campaign, unless ``reveal_after_each`` (then after each submitted choice); ``reveal`` records which."""
    require_admin(access, "creating evaluation campaigns")
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError("The campaign has no name.", "Give it a short name, e.g. 'v2 vs expert, May'.")
    if mode not in MODES:
        raise ValidationError(f"Unknown mode {mode!r}.", f"Use one of {', '.join(MODES)}.")
    systems = list(dict.fromkeys(parse_ids(systems)))
    if not systems:
        raise ValidationError("No systems chosen.", "Choose at least one model version or 'expert'.")
    if mode != "rubric" and len(systems) < 2:
        raise ValidationError("Pairwise comparison needs at least two systems.",
                              "Choose two or more, or use mode 'rubric'.")
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
    pairs = list(itertools.combinations(systems, 2))
    skipped_targets = 0
    if mode == "pairwise":
        usable = [t for t in eligible if distinct_pairs(t, pairs)]
        skipped_targets = len(eligible) - len(usable)
        if skipped_targets and int(n_targets) > len(usable):
            raise ValidationError(
                f"Only {len(usable)} (session, item) pairs have differing rationales from the chosen systems; "
                f"{skipped_targets} more have identical texts and cannot be compared; {int(n_targets)} were asked for.",
                "Ask for fewer targets, choose more sessions, or compare systems whose texts differ.")
        eligible = usable
    band_system = next((s for s in systems if s != EXPERT), systems[0])
    picked = sample_targets(eligible, int(n_targets), method=sampling, strata=strata, band_system=band_system,
                            seed=seed)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:30] or "campaign"
    cid = f"{slug}-{uuid.uuid4().hex[:6]}"
    rng = random.Random(f"campaign-raters|{seed}|{cid}")
    order = raters[:]
    rng.shuffle(order)
    targets, tasks = [], {}
    per_rater: dict[str, dict[str, list[str]]] = {r: {"rubric": [], "pairwise": []} for r in raters}
    self_rating = {}
    skipped_pairs = 0
    for i, t in enumerate(picked):
        tid = f"t{i + 1:03d}"
        who, own = pick_raters(order, i, overlap, target_authors(repo, t) if EXPERT in systems else set(), target=tid,
                               allow_self_rating=bool(allow_self_rating))
        if own:
            self_rating[tid] = own
        targets.append({"id": tid, "session_id": t["session_id"], "item": t["item"], "dimension": t["dimension"],
                        "outputs": t["outputs"], "raters": sorted(who)})
        compared = distinct_pairs(t, pairs) if mode in ("pairwise", "both") else []
        skipped_pairs += (len(pairs) - len(compared)) if mode in ("pairwise", "both") else 0
        for r in who:
            if mode in ("rubric", "both"):
                for s in systems:
                    k = _task_id(cid, r, tid, "rubric", [s])
                    tasks[k] = {"rater": r, "target": tid, "kind": "rubric", "system": s}
                    per_rater[r]["rubric"].append(k)
            if mode in ("pairwise", "both"):
                for a, b in compared:  # A/B by a coin flip seeded from the seed (the same seed, the same sides)
                    if random.Random(stable_hash([seed, t["session_id"], t["item"], r, a, b])).random() < 0.5:
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
                        "items": sorted({t["item"] for t in targets}),
                        "identical_skipped": {"targets": skipped_targets, "pairs": skipped_pairs}},
           "reveal": "after_each" if reveal_after_each else "after_campaign",
           "targets": targets, "tasks": tasks, "assignments": assignments, "self_rating": self_rating}
    return repo.collection(CAMPAIGNS).put(doc, actor=access.username, expected_version=0, action="create")
