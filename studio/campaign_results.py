"""Human evaluation campaign results and exports (admins only), over :mod:`studio.campaigns`.

Results (:func:`campaign_results`) use :mod:`care_model.stats.agreement`: per system and criterion the
mean with a t interval and the pass rate (score >= 3) with a Wilson interval; pairwise win rates
(ties half a win, "both bad" apart) with Wilson intervals and Bradley-Terry strengths for more
than two systems; per criterion Krippendorff's alpha (ordinal; units = (target, system), coders
= raters; missing ratings are simply missing values, which alpha handles) and ICC(2,k).
ICC(2,k) needs every unit rated by the same k raters, so it is computed on the **largest
complete block**: among the sets of raters that rated some unit together, the one whose members
all rated the most units (ties: the larger set); those units with only those raters' ratings.
Units outside the block are left out and counted (``n_left_out``). Only submitted ratings count.

Exports (:func:`export_campaign`): ratings.csv, results.csv and campaign.json, written to a
private temporary folder for download.
"""
from __future__ import annotations

import csv
import io
import json
import re

from care_model.stats import agreement, human_eval

from .access import Access
from .campaigns import CRITERIA, PASS, campaign_ratings, get_campaign, rater_progress, require_admin


# ----------------------------------------------------------------------------- results
def rating_rows(repo, campaign: dict, *, submitted_only: bool = True) -> list[dict]:
    """Every rating joined with its task and target, one row per criterion score or choice."""
    targets = {t["id"]: t for t in campaign["targets"]}
    rows = []
    for r in sorted(campaign_ratings(repo, campaign["id"]).all(), key=lambda d: (d["rater"], d["id"])):
        task = campaign["tasks"].get(r["id"])
        if task is None or (submitted_only and r.get("status") != "submitted"):
            continue
        t = targets[task["target"]]
        base = {"campaign": campaign["id"], "rater": r["rater"], "task": r["id"], "target": t["id"],
                "session_id": t["session_id"], "item": t["item"], "kind": task["kind"], "status": r.get("status"),
                "comment": r.get("comment", ""), "updated_at": r.get("updated_at", "")}
        if task["kind"] == "rubric":
            for c in CRITERIA:
                if (r.get("scores") or {}).get(c) is not None:
                    rows.append({**base, "system": task["system"], "system_a": "", "system_b": "", "criterion": c,
                                 "score": int(r["scores"][c]), "choice": ""})
        elif r.get("choice"):
            rows.append({**base, "system": "", "system_a": task["left"], "system_b": task["right"], "criterion": "",
                         "score": None, "choice": r["choice"]})
    return rows


def _largest_block(units: dict[tuple, dict[str, int]]):
    """The rater set covering most units completely (ties: more raters), and those units."""
    best, best_units = None, []
    for cand in sorted({frozenset(v) for v in units.values() if len(v) >= 2}, key=lambda s: sorted(s)):
        covered = [u for u, v in units.items() if cand <= set(v)]
        if best is None or (len(covered), len(cand)) > (len(best_units), len(best)):
            best, best_units = cand, covered
    return (sorted(best) if best else []), sorted(best_units)


def icc_2k(units: dict[tuple, dict[str, int]]) -> dict:
    """ICC(2,k) on the largest complete block of ``{unit: {rater: score}}`` (see the module docstring)."""
    panel, covered = _largest_block(units)
    left_out = len(units) - len(covered)
    if len(covered) < 2:
        return {"value": None, "low": None, "high": None, "k": len(panel), "n_targets": len(covered),
                "raters": panel, "n_left_out": left_out,
                "reason": "ICC needs at least 2 units rated by the same 2 or more raters"}
    res = agreement.icc([[units[u][r] for r in panel] for u in covered])
    f = res["ICC(2,k)"]
    return {"value": f.to_dict()["value"], "low": f.to_dict()["low"], "high": f.to_dict()["high"], "k": len(panel),
            "n_targets": res.n_targets, "raters": panel, "n_left_out": left_out,
            "reason": "" if f.to_dict()["value"] is not None else "no variance between units: ICC undefined"}


def campaign_results(repo, campaign_id: str, access: Access | None = None) -> dict:
    """Rubric means and pass rates, pairwise win rates (and Bradley-Terry), agreement per criterion."""
    if access is not None:
        require_admin(access, "viewing evaluation results")
    camp = get_campaign(repo, campaign_id)
    rows = rating_rows(repo, camp)
    rubric = [r for r in rows if r["kind"] == "rubric"]
    pairwise = [r for r in rows if r["kind"] == "pairwise"]
    out = {"campaign": {k: camp[k] for k in ("id", "name", "mode", "systems", "raters", "overlap", "status",
                                              "created_by", "sampling")},
           "n_targets": len(camp["targets"]), "progress": rater_progress(camp, campaign_ratings(repo,
                                                                                                camp["id"]).all()),
           "n_ratings": {"rubric": len({r["task"] for r in rubric}), "pairwise": len(pairwise)},
           "pass_threshold": PASS, "rubric": None, "pairwise": None, "agreement": {},
           "missing": "Only submitted ratings count. Alpha treats a rating nobody gave as a missing value; "
                      "ICC(2,k) uses the largest block of units rated by the same raters (n_left_out: the others)."}
    if rubric:
        out["rubric"] = human_eval.rubric_summary(
            [{"system": r["system"], "criterion": r["criterion"], "score": r["score"]} for r in rubric],
            criteria=list(CRITERIA), pass_threshold=PASS).to_dict()
        for c in CRITERIA:
            units: dict[tuple, dict[str, int]] = {}
            for r in rubric:
                if r["criterion"] == c:
                    units.setdefault((r["target"], r["system"]), {})[r["rater"]] = r["score"]
            keys = sorted(units)
            matrix = [[units[u].get(rater) for u in keys] for rater in camp["raters"]]
            out["agreement"][c] = {"alpha": agreement.krippendorff_alpha(matrix, level="ordinal",
                                                                         value_domain=[1, 2, 3, 4, 5]).to_dict(),
                                   "icc": icc_2k(units), "n_units": len(keys)}
    if pairwise:
        judgments = [{"system_a": r["system_a"], "system_b": r["system_b"], "outcome": r["choice"]} for r in pairwise]
        out["pairwise"] = human_eval.pairwise_summary(judgments).to_dict()
        units: dict[tuple, dict[str, int]] = {}
        for r in pairwise:
            lo, hi = sorted((r["system_a"], r["system_b"]))
            winner = {"a": r["system_a"], "b": r["system_b"]}.get(r["choice"])
            code = {lo: 0, hi: 1}.get(winner, {"tie": 2, "both_bad": 3}.get(r["choice"]))
            units.setdefault((r["target"], lo, hi), {})[r["rater"]] = code
        keys = sorted(units)
        out["agreement"]["pairwise"] = {"alpha": agreement.krippendorff_alpha(
            [[units[u].get(rater) for u in keys] for rater in camp["raters"]], level="nominal").to_dict(),
            "n_units": len(keys)}
    return out


# ----------------------------------------------------------------------------- export
def _cell(v):
    if v is None:
        return ""
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"-?\d+(\.\d+)?", s) else s


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return buf.getvalue()


RATING_COLUMNS = ["campaign", "rater", "task", "target", "session_id", "item", "kind", "system", "system_a", "system_b",
                  "criterion", "score", "choice", "comment", "status", "updated_at"]
RESULT_COLUMNS = ["section", "system", "system_a", "system_b", "criterion", "n", "value", "low", "high", "extra"]


def result_rows(results: dict) -> list[dict]:
    rows = []
    for r in (results.get("rubric") or {}).get("rows", []):
        for stat in ("mean", "pass_rate"):
            e = r[stat]
            rows.append({"section": f"rubric_{stat}", "system": r["system"], "criterion": r["criterion"], "n": r["n"],
                         "value": e["value"], "low": e["low"], "high": e["high"], "extra": e["method"] or e["reason"]})
    pw = results.get("pairwise") or {}
    for p in pw.get("pairs", []):
        e = p["win_rate_a"]
        rows.append({"section": "pairwise_win_rate_a", "system_a": p["system_a"], "system_b": p["system_b"],
                     "n": p["n"],
                     "value": e["value"], "low": e["low"], "high": e["high"],
                     "extra": f"wins_a={p['wins_a']} wins_b={p['wins_b']} ties={p['ties']} both_bad={p['both_bad']}"})
    bt = pw.get("bradley_terry") or {}
    for s in bt.get("systems", []):
        rows.append({"section": "bradley_terry_strength", "system": s,
                     "value": (bt.get("strength") or {}).get(s), "extra": bt.get("reason", "")})
    for c, a in results.get("agreement", {}).items():
        al = a["alpha"]
        rows.append({"section": f"krippendorff_alpha_{al['level']}", "criterion": c, "n": al["n_units"],
                     "value": al["alpha"], "extra": al["reason"]})
        if "icc" in a:
            i = a["icc"]
            rows.append({"section": "icc_2k", "criterion": c, "n": i["n_targets"], "value": i["value"], "low": i["low"],
                         "high": i["high"], "extra": f"k={i['k']} raters={'+'.join(i['raters'])} "
                                                     f"left_out={i['n_left_out']} {i['reason']}".strip()})
    return rows


def export_campaign(repo, access: Access, campaign_id: str) -> dict:
    """Admin: write ratings.csv, results.csv and campaign.json (campaign, ratings, results) to a
    fresh private temp folder; returns their paths."""
    require_admin(access, "exporting evaluation results")
    camp = get_campaign(repo, campaign_id)
    results = campaign_results(repo, campaign_id)
    ratings = rating_rows(repo, camp, submitted_only=False)
    from .downloads import private_folder, private_path

    folder = private_folder()  # only this admin may download them from the app (studio.downloads)
    paths = {key: private_path(access.username, "eval", ext, f"{camp['id']}-{what}", folder)
             for key, what, ext in (("ratings_csv", "ratings", "csv"), ("results_csv", "results", "csv"),
                                    ("json", "all", "json"))}
    paths["ratings_csv"].write_text(_csv(ratings, RATING_COLUMNS), encoding="utf-8")
    paths["results_csv"].write_text(_csv(result_rows(results), RESULT_COLUMNS), encoding="utf-8")
    paths["json"].write_text(json.dumps({"campaign": camp, "ratings": ratings, "results": results},
                                        ensure_ascii=False, indent=1), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
