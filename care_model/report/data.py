"""What the report shows, gathered from a store: the Table 2 rows, and the data of one subject
(a model version or a cross-validation run) for the plots and the candidate comparison.

* **Rows** (the paper's Table 2 layout, Pearson / Spearman / MSE of the predicted dimension mean
  against the client's self-reported one, per dimension): the counselor baseline (counselor's
  ratings against the client's, every session with both), every model version with predictions
  (scored only on sessions of clients outside its training split, :mod:`care_model.stats.heldout`;
  intervals by a bootstrap over clients), per score used (parsed score, raw and calibrated argmax),
  each beside the two constant baselines (:mod:`care_model.stats.baselines`), every finished
  cross-validation run (mean +- SD over folds, for the fold adapters -- with a DPO stage the SFT
  adapters alone and the SFT+DPO ones, with the paired verdict of the second against the first --,
  the base model on the same folds, the counselors on the same sessions and the two constants
  fitted on each fold's training clients) and the
  paper's published rows, kept apart (different corpus).
* **Predictions**: those in the store and the held-out predictions each retraining run wrote
  into its folder (``eval_predictions.jsonl``: the candidate and its baseline on the run's
  validation clients), so a fresh candidate can be reported before anyone predicts with it.

Reads the store through its repository (the app's, or one the CLI opened); no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from care_model.core.records import Prediction
from care_model.core.wai import load_form
from care_model.stats.compare import compare_versions
from care_model.stats.correlations import dimension_correlations
from care_model.stats.evaluate import evaluate_predictions, latest_predictions
from care_model.stats.heldout import UnknownTrainingSplitError, held_out_sessions
from care_model.stats.version_quality import score_used, version_quality_reports
from care_model.core.provenance import DEFAULT_PROVENANCE
from care_model.text.curation import curated_labels, resolve_unresolved
from care_model.text.snapshot import describe_provenance
from care_model.training.runs import read_events, summarize

PUBLISHED = [  # Pearson r per dimension, the paper's Table 2 (CARE is Llama-3.1-8B fine-tuned on its corpus)
    ("CARE (Llama-3.1-8B fine-tuned)", {"goal": 0.52, "task": 0.50, "bond": 0.46}),
    ("Counselors", {"goal": 0.30, "task": 0.30, "bond": 0.22}),
    ("GPT-4o", {"goal": 0.43, "task": 0.48, "bond": 0.37}),
]
PUBLISHED_NOTE = "published, different corpus"
METRICS = ("pearson", "spearman", "mse")


@dataclass
class StoreData:
    sessions: dict
    predictions: list
    labels: list
    versions: dict
    active: str | None
    crossval: list = field(default_factory=list)

    @property
    def curated(self) -> list:
        chosen, unresolved = curated_labels(self.labels, rationale_provenance=DEFAULT_PROVENANCE)  # as references
        return chosen + resolve_unresolved(self.labels, unresolved, rationale_provenance=DEFAULT_PROVENANCE)


# ----------------------------------------------------------------------------- rows
def _est(corr: dict) -> dict:
    return {dim: {m: c[m] for m in METRICS} for dim, c in corr.items()}


def counselor_row(data: StoreData, *, n_boot: int, seed: int) -> dict | None:
    form = load_form("wai-sr")
    both = [s for s in data.sessions.values() if s.ratings.get("client") and s.ratings.get("counselor")]
    if not both:
        return None
    cou = {s.id: form.dimension_scores(s.ratings["counselor"], require_all=True) for s in both}
    cli = {s.id: form.dimension_scores(s.ratings["client"], require_all=True) for s in both}
    corr = dimension_correlations(cou, cli, n_boot=n_boot, seed=seed, what=("counselor", "self-reported"),
                                  clusters=clients_of(data))
    return {"label": "Counselor baseline (counselor vs client ratings)", "kind": "counselor", "n": len(both),
            "cells": _est({k: v.to_dict() for k, v in corr.items()}), "note": "every session with both ratings"}


def version_label(data: StoreData, vid: str) -> str:
    doc = data.versions.get(vid) or {}
    if doc.get("kind") == "lora":
        tag = "active" if vid == data.active else doc.get("status", "")
        prov = (doc.get("learned_from") or {}).get("provenance_counts")
        if prov:  # how many curated rationales of each provenance it learned from (care_model.core.provenance)
            tag += f"; rationales learned: {describe_provenance(prov)}"
        return f"Model version {vid} ({tag})"
    return f"Base model {vid}" + (" (active)" if vid == data.active else "")


def _similarity():
    from care_model.inference.embeddings import cosine_similarities

    return cosine_similarities


def clients_of(data: StoreData) -> dict:
    return {sid: s.client_id for sid, s in data.sessions.items()}


def version_evaluation(data: StoreData, vid: str, *, include_training=False, n_boot=1000, seed=0,
                       with_embeddings=False, assume_untrained=False, with_baselines=False) -> dict:
    """The report of one version on the sessions it may be scored on (held out by client by default);
    with ``with_baselines`` also its quality against the constant baselines per score field."""
    preds = latest_predictions(data.predictions, vid)
    held = held_out_sessions(sorted({p.session_id for p in preds}), [data.versions.get(vid)],
                             clients=clients_of(data), include_training=include_training,
                             assume_untrained=assume_untrained)
    kept = set(held.kept)
    report = evaluate_predictions([data.sessions[s] for s in held.kept], [p for p in preds if p.session_id in kept],
                                  [lab for lab in data.curated if lab.session_id in kept], n_boot=n_boot, seed=seed,
                                  similarity=_similarity() if with_embeddings else None)
    quality = (version_quality_reports(data.sessions, preds, data.versions.get(vid), held, n_boot=n_boot, seed=seed)
               if with_baselines else {})
    return {"id": vid, "held": held, "report": report.to_dict(), "quality": quality,
            "predictions": [p for p in preds if p.session_id in kept]}


BASELINE_LABELS = {"mean": "training mean per item (a constant)", "mode": "most frequent score per item (a constant)"}


def _quality_cells(q, system: str) -> dict:
    ests = q.systems[system]
    return {dim: {m: ests[f"{dim}.{m}"].to_dict() if f"{dim}.{m}" in ests else None for m in METRICS}
            for dim in ("goal", "task", "bond")}


def _mae(q, system: str) -> str:
    e = q.systems[system].get("item_mae")
    if e is None or e.value is None:
        return "item MAE n/a"
    return f"item MAE {e.value:.2f}" + (f" [{e.low:.2f}, {e.high:.2f}]" if e.has_interval else "")


def version_rows(data: StoreData, vid: str, *, include_training=False, assume_untrained=False, n_boot=1000,
                 seed=0) -> list[dict]:
    """A version's Table 2 rows: the model per score used (parsed score, raw and calibrated argmax) and
    beside it the two constant baselines, with intervals over clients; refused without a split."""
    try:
        ev = version_evaluation(data, vid, include_training=include_training, n_boot=n_boot, seed=seed,
                                assume_untrained=assume_untrained, with_baselines=True)
    except UnknownTrainingSplitError as err:
        return [{"label": version_label(data, vid), "kind": "refused", "id": vid, "n": None, "cells": {},
                 "note": f"refused for held-out evaluation: {err}"}]
    held, rows = ev["held"], []
    title = held.title(version_label(data, vid))
    main = ev["quality"].get("score")
    for score_field, q in ev["quality"].items():
        used = score_used(ev["predictions"], score_field)
        cells = (_est(ev["report"]["correlations"]) if score_field == "score" else _quality_cells(q, "model"))
        mark = "" if q.beats_baselines else f"; {q.verdict}"
        rows.append({"label": f"{title}: {used}", "kind": "version", "id": vid, "n": ev["report"]["n_sessions"],
                     "cells": cells, "score_used": used, "beats_baselines": q.beats_baselines, "verdict": q.verdict,
                     "note": f"{held.note()} {_mae(q, 'model')}; intervals resample {q.unit}{mark}",
                     "contaminated": held.contaminated, "assumed_untrained": bool(held.assumed_untrained)})
    if main is not None and main.n_sessions:
        for system, name in BASELINE_LABELS.items():
            rows.append({"label": f"  Baseline for {vid}: {name}", "kind": "baseline", "id": vid,
                         "n": main.n_sessions, "cells": _quality_cells(main, system),
                         "note": f"fitted on the {main.baseline_source}; {_mae(main, system)}; intervals resample "
                                 f"{main.unit}; a constant has no correlation"})
    return rows


def table_rows(data: StoreData, *, include_training=False, n_boot=1000, seed=0, assume_untrained=False) -> list[dict]:
    rows = []
    c = counselor_row(data, n_boot=n_boot, seed=seed)
    if c:
        rows.append(c)
    vids = sorted({p.model_version for p in data.predictions},
                  key=lambda v: ((data.versions.get(v) or {}).get("kind") == "lora",
                                 (data.versions.get(v) or {}).get("created_at", ""), v))
    for vid in vids:
        rows += version_rows(data, vid, include_training=include_training, assume_untrained=assume_untrained,
                             n_boot=n_boot, seed=seed)
    for run in data.crossval:
        if run.get("status") != "done" or not run.get("rows"):
            continue
        rows += crossval_rows(run)
    return rows


CROSSVAL_NAMES = {"crossval": "fold adapters", "crossval_dpo": "fold adapters after the DPO stage (SFT+DPO)",
                  "base": "base model, same folds", "counselor": "counselors, same sessions",
                  "mean": "baseline: training mean per item, fitted on each fold's training clients (a constant)",
                  "mode": "baseline: most frequent score per item, fitted on each fold's training clients "
                          "(a constant)"}


def dpo_verdict(cmp: dict | None) -> str:
    """One line: SFT+DPO against SFT alone on the primary metric (care_model.stats.compare's rule)."""
    prim = next((r for r in (cmp or {}).get("rows", []) if r.get("role") == "primary"), None)
    if prim is None or prim.get("difference") is None:
        return ""
    ci = f" [{prim['low']:+.3f}, {prim['high']:+.3f}]" if prim.get("low") is not None else ""
    return (f"; against SFT alone on the same sessions, item MAE {prim['difference']:+.3f}{ci} "
            f"({cmp.get('unit')}): {prim.get('verdict')}")


def crossval_rows(run: dict) -> list[dict]:
    """A finished cross-validation run's rows (mean +- SD over folds): its fold adapters (with a DPO
    stage: SFT alone and SFT+DPO), the base model and the counselors on the same folds, and the two
    constants (MSE only: a constant has no correlation)."""
    rows = []
    dpo = any(r["system"] == "crossval_dpo" for r in run["rows"])
    for system, name in CROSSVAL_NAMES.items():
        cells: dict = {}
        mine = [r for r in run["rows"] if r["system"] == system and (system not in ("mean", "mode")
                                                                     or r["metric"] == "mse")]
        for r in mine:
            cells.setdefault(r["dimension"], {})[r["metric"]] = {"mean": r["fold_mean"], "sd": r["fold_sd"],
                                                                 "n_folds": r["n_folds"], "k": run.get("k")}
        if not cells:
            continue
        n = max((r.get("n") or 0 for r in mine), default=0) or run.get("n_sessions")
        note = f"mean +- SD over {run.get('k')} folds split by client"
        if system == "crossval_dpo":
            note += dpo_verdict(run.get("dpo_comparison"))
        label = name + (" (SFT alone)" if dpo and system == "crossval" else "")
        rows.append({"label": f"Cross-validation {run['id']}: {label}", "kind": "baseline" if system in (
            "mean", "mode") else "crossval", "id": run["id"], "n": n, "cells": cells, "note": note})
    return rows


# ----------------------------------------------------------------------------- one subject
def subject_choices(data: StoreData) -> list[tuple[str, str]]:
    """(label, value) pairs: the active version, each LoRA version, each finished cross-validation run."""
    out = [("Active version" + (f" ({data.active})" if data.active else " (the base model)"), "active")]
    out += [(version_label(data, v), v) for v, d in data.versions.items() if d.get("kind") == "lora"]
    out += [(f"Cross-validation {r['id']}", r["id"]) for r in data.crossval if r.get("status") == "done"]
    return out


def _default_version(data: StoreData) -> str | None:
    if data.active:
        return data.active
    bases = [v for v, d in data.versions.items() if d.get("kind") == "base"]
    counts: dict[str, int] = {}
    for p in data.predictions:
        counts[p.model_version] = counts.get(p.model_version, 0) + 1
    return next((b for b in bases if b in counts), None) or (max(counts, key=counts.get) if counts else None)


def loss_series(run_dir) -> dict:
    if not run_dir or not Path(run_dir).is_dir():
        return {}
    p = summarize(read_events(run_dir))
    return {"training": p.losses, "validation": p.validation_losses}


def subject_data(data: StoreData, which: str = "active", *, include_training=False, n_boot=1000, seed=0,
                 assume_untrained=False) -> dict:
    """Predictions, sessions, loss curves, text metrics and (for a LoRA version) the comparison with
    the active version (or, with none active, the version it was trained against)."""
    from care_model.training.crossval import fold_dir, load_crossval, load_predictions

    run = next((r for r in data.crossval if r["id"] == which), None)
    if run is not None:
        meta = load_crossval(run["run_dir"])
        preds, series = [], {}
        for i in range(meta["k"]):
            preds += load_predictions(fold_dir(run["run_dir"], i) / "predictions.json") or []
            series[f"fold {i} training"] = loss_series(fold_dir(run["run_dir"], i)).get("training", [])
        return {"kind": "crossval", "id": which, "title": f"Cross-validation {which} (pooled held-out folds)",
                "predictions": preds, "loss": series, "note": f"{meta['k']} folds by client; each session predicted by "
                "the adapter that did not train on it", "contaminated": False, "text": None, "comparison": None}
    vid = _default_version(data) if which == "active" else which
    known = set(data.versions) | {p.model_version for p in data.predictions}
    if which != "active" and which not in known:
        from care_model.core.errors import NotFoundError

        raise NotFoundError(f"No model version or finished cross-validation run {which!r} in this store.",
                            "Use 'active', or one of: "
                            + ", ".join(v for _, v in subject_choices(data)[1:]) or "(none)")
    if vid is None:
        return {"kind": "none", "id": None, "title": "No model version has predictions yet", "predictions": [],
                "loss": {}, "note": "", "contaminated": False, "text": None, "comparison": None}
    ev = version_evaluation(data, vid, include_training=include_training, n_boot=n_boot, seed=seed,
                            with_embeddings=True, assume_untrained=assume_untrained)
    doc = data.versions.get(vid) or {}
    out = {"kind": "version", "id": vid, "title": ev["held"].title(version_label(data, vid)),
           "predictions": ev["predictions"], "loss": loss_series(doc.get("run_dir")), "note": ev["held"].note(),
           "contaminated": ev["held"].contaminated, "text": ev["report"].get("text"), "comparison": None}
    ref = data.active if data.active and data.active != vid else doc.get("parent")
    if doc.get("kind") == "lora" and ref and ref != vid:
        ref_preds = latest_predictions(data.predictions, ref)
        held = held_out_sessions(sorted({p.session_id for p in ev["predictions"]}),
                                 [doc, data.versions.get(ref)], clients=clients_of(data),
                                 include_training=include_training, assume_untrained=assume_untrained)
        keep = set(held.kept)
        cmp = compare_versions({s: data.sessions[s] for s in keep},
                               [p for p in ev["predictions"] if p.session_id in keep],
                               [p for p in ref_preds if p.session_id in keep], n_boot=n_boot, seed=seed)
        out["comparison"] = {**cmp, "candidate": vid, "active": ref, "title": held.title(
            f"{vid} (candidate) vs {ref} ({'active' if ref == data.active else 'the version it was trained against'})"
            f" on the same {cmp['n_sessions']} held-out session(s)")}
    return out


def plot_inputs(data: StoreData, subject: dict) -> dict:
    """Numbers for the four plots, from the subject's predictions and the clients' self-reports."""
    form = load_form("wai-sr")
    by_session: dict[str, dict[int, Prediction]] = {}
    for p in subject["predictions"]:
        by_session.setdefault(p.session_id, {})[int(p.item)] = p
    scatter = {d: [] for d in form.dimension_keys}
    calib, errors = [], {i: [] for i in form.item_ids}
    for sid, items in by_session.items():
        client = (data.sessions[sid].ratings.get("client") if sid in data.sessions else None) or {}
        if not client:
            continue
        pred_dims = form.dimension_scores({k: p.score for k, p in items.items() if p.score is not None},
                                          require_all=True)
        true_dims = form.dimension_scores(client, require_all=True)
        for d in form.dimension_keys:
            if pred_dims.get(d) is not None and true_dims.get(d) is not None:
                scatter[d].append((pred_dims[d], true_dims[d]))
        for k, p in items.items():
            truth = client.get(k, client.get(str(k)))
            if truth is None:
                continue
            if p.expected_score is not None:
                calib.append((float(p.expected_score), float(truth)))
            if p.score is not None:
                errors[k].append(abs(p.score - float(truth)))
    mae = {k: (sum(v) / len(v) if v else None) for k, v in errors.items()}
    return {"scatter": scatter, "calibration": calib, "item_mae": mae,
            "item_dims": {i: form.dimension_of(i) for i in form.item_ids}}
