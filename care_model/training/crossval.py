"""Cross-validation with retraining: K folds split by client, one LoRA adapter per fold.

What it does (the paper's protocol, section 5):

1. :func:`prepare_crossval` (the store's owner: this CLI, or the app) freezes the curated set
   (:func:`care_model.text.snapshot.take_snapshot`, the same curated set retraining uses) and splits its
   sessions into K folds **by client** (no client on both sides; a session without a client id is
   its own client, and ``config.json`` says how many), stratified on the mean curated score
   (:func:`care_model.stats.folds.cross_validation_folds`). Each fold gets a retraining run folder
   ``fold-<i>/`` whose snapshot holds only the other folds' sessions.
2. :func:`execute_crossval` (never opens the store): for each fold, train the adapter with the
   retraining code itself (:func:`care_model.training.run.execute_run` under ``accelerate``), then
   predict the held-out fold with the inference code itself (:func:`care_model.training.evaluation.predict_version`,
   i.e. :class:`care_model.inference.predictor.Predictor` with the run's prediction settings), and the same
   fold with the base model without retraining; with a DPO stage (``dpo_steps``; each fold's pairs come
   from its training sessions only) also with the SFT+DPO adapter, the SFT adapter alone being the
   ``crossval`` system. Resumable fold by fold: a finished stage is never
   redone, an interrupted training continues from its last checkpoint. Progress: ``progress.jsonl``
   (JSON lines) and a bar on stderr. Cancel: ``touch <dir>/CANCEL`` or SIGTERM.
3. The statistics (:mod:`care_model.stats.crossval_metrics`, beside the two constants fitted on each
   fold's training clients; with DPO the paired comparison SFT+DPO vs SFT alone,
   :func:`care_model.stats.compare.compare_versions`) go to ``result.json``; the store records the
   run in ``crossval_runs`` (:func:`finish_crossval`). Fold adapters and predictions live only in
   the run folder (``<store>/crossval/<id>/``): they are never model versions and never promotable.


The command line: ``care crossval`` (:mod:`care_model.jobs.crossval`).
"""
from __future__ import annotations

import gc
import os
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from care_model.core.errors import CareError, ConfigError, TrainingError
from care_model.core.records import Prediction, now_iso
from care_model.text.snapshot import read_snapshot, snapshot_hash, take_snapshot, write_snapshot
from care_model.training.config import RetrainConfig
from care_model.training.runs import (
    ProgressWriter,
    cancel_requested,
    clear_cancel,
    read_events,
    read_json,
    run_path,
    write_json,
)

CROSSVAL_RUNS = "crossval_runs"


def new_crossval_id() -> str:
    return time.strftime("cv-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def fold_dir(cv_dir: Path | str, i: int) -> Path:
    return Path(cv_dir) / f"fold-{i}"


def curated_snapshot(repo, config: RetrainConfig):
    """The curated set exactly as a retraining run with ``config`` would freeze it."""
    return take_snapshot(repo, score_sources=config.score_sources, rationales=config.rationales,
                             rationale_provenance=config.rationale_provenance)


def _strata_score(snapshot, sid: str) -> float | None:
    scores = [lab.score for lab in snapshot.labels[sid] if lab.score is not None]
    return sum(scores) / len(scores) if scores else None


def make_folds(snapshot, k: int, seed: int) -> list[list[str]]:
    """K lists of test session ids: by client (clientless sessions are their own client), stratified."""
    from care_model.stats.folds import cross_validation_folds

    rows = [(sid, snapshot.client_of(sid), _strata_score(snapshot, sid)) for sid in sorted(snapshot.labels)]
    try:
        return [test for _, test in cross_validation_folds(rows, k=k, seed=seed)]
    except CareError as err:
        raise TrainingError(f"Cannot make {k} folds: {err.problem}", err.fix) from None


def _subset(snapshot, session_ids):
    keep = set(session_ids)
    sessions = {s: v for s, v in snapshot.sessions.items() if s in keep}
    labels = {s: v for s, v in snapshot.labels.items() if s in keep}
    return replace(snapshot, sessions=sessions, labels=labels, hash=snapshot_hash(sessions, labels, snapshot.rule))


def fold_train_config(config: RetrainConfig) -> RetrainConfig:
    """The fold's training config: all of its sessions train (the held-out fold is the test set)."""
    return config.replace(validation_fraction=0.0, evaluate=False)


# ----------------------------------------------------------------------------- phase 1
def prepare_crossval(repo, config: RetrainConfig, k: int = 5, *, seed: int | None = None, cv_dir=None,
                     cv_id: str | None = None, actor: str = "system") -> Path:
    """Snapshot, fold split and one prepared retraining run folder per fold (see the module docstring)."""
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"--folds {k} is too few.", "Use at least 2 folds (the paper uses 5).")
    seed = config.seed if seed is None else int(seed)
    cv_id = cv_id or new_crossval_id()
    cv_dir = Path(cv_dir) if cv_dir else Path(repo.root) / "crossval" / cv_id
    if (cv_dir / "config.json").exists():
        raise TrainingError(f"{cv_dir} already holds a cross-validation run.",
                            "Resume it with --run-dir, or pick a new id.")
    snapshot = curated_snapshot(repo, config)
    if not snapshot.labels:
        raise TrainingError("The curated set is empty: there is nothing to cross-validate.",
                            "Curate sessions first, or check the recipe's score_sources and rationales "
                            "(recipes/README.md).")
    folds = make_folds(snapshot, k, seed)
    clientless = sorted(s for s in snapshot.sessions if not snapshot.sessions[s].client_id)
    train_config = fold_train_config(config)
    cv_dir.mkdir(parents=True, exist_ok=True)
    write_snapshot(snapshot, cv_dir / "snapshot.jsonl")
    for i, test in enumerate(folds):
        train_ids = sorted(set(snapshot.labels) - set(test))
        sub = _subset(snapshot, train_ids)
        d = fold_dir(cv_dir, i)
        d.mkdir(parents=True, exist_ok=True)
        write_snapshot(sub, run_path(d, "snapshot"))
        if config.dpo_stage() is not None:  # the fold's preference pairs: its training sessions only
            from care_model.training.dpo import write_pairs

            write_pairs(repo, sub, train_ids, config, d)
        write_json(d / "test_sessions.json", {"fold": i, "test_sessions": test,
                                             "test_clients": sorted({snapshot.client_of(s) for s in test})})
        write_json(run_path(d, "config"), {"run_id": f"{cv_id}-fold-{i}", "config": train_config.to_dict(),
                                           "data_hash": sub.hash, "prepared_at": now_iso(), "prepared_by": actor,
                                           "crossval": cv_id})
    meta = {"cv_id": cv_id, "k": k, "seed": seed, "config": config.to_dict(), "data_hash": snapshot.hash,
            "snapshot": snapshot.header(), "n_sessions": len(snapshot.labels),
            "n_clients": len({snapshot.client_of(s) for s in snapshot.labels}),
            "sessions_without_client": len(clientless), "folds": folds, "prepared_at": now_iso(), "prepared_by": actor,
            "split": "by client (a session without a client id is its own client), "
                     "stratified on the mean curated score"}
    write_json(cv_dir / "config.json", meta)
    repo.collection(CROSSVAL_RUNS).put({"id": cv_id, "status": "prepared", "run_dir": str(cv_dir.resolve()), "k": k,
                                        "data_hash": snapshot.hash, "n_sessions": meta["n_sessions"],
                                        "n_clients": meta["n_clients"], "sessions_without_client": len(clientless),
                                        "recipe_config": config.to_dict(), "started_by": actor},
                                       actor=actor, action="prepare")
    return cv_dir


def load_crossval(cv_dir) -> dict:
    meta = read_json(Path(cv_dir) / "config.json")
    if not meta:
        raise TrainingError(f"{cv_dir} is not a prepared cross-validation run (no config.json).",
                            "Prepare it with care crossval --store DIR ..., or start it from the "
                            "app.")
    return meta


# ----------------------------------------------------------------------------- phase 2
def _save_predictions(path: Path, preds, seconds: float) -> None:
    write_json(path, {"seconds": round(seconds, 2), "predictions": [p.to_dict() for p in preds]})


def load_predictions(path: Path) -> list[Prediction] | None:
    data = read_json(path)
    return None if data is None else [Prediction.from_dict(p) for p in data["predictions"]]


def fold_status(cv_dir, i: int) -> dict:
    """What is done in fold ``i``: trained (adapter), predicted, base predicted."""
    d = fold_dir(cv_dir, i)
    run = read_json(run_path(d, "run")) or {}
    return {"trained": run.get("status") == "done" and bool(run.get("adapter")),
            "predicted": (d / "predictions.json").is_file(), "base_predicted": (d / "base_predictions.json").is_file(),
            "run_status": run.get("status")}


class Cancelled(Exception):
    pass


def execute_crossval(cv_dir, *, accelerator=None, show_bar: bool = True) -> dict:
    """Train and predict every fold not yet done, then compute ``result.json`` (main process)."""
    from tqdm.auto import tqdm

    from care_model.training.evaluation import predict_version
    from care_model.training.run import execute_run, make_accelerator

    cv_dir = Path(cv_dir)
    meta = load_crossval(cv_dir)
    config = RetrainConfig.from_dict(meta["config"])
    k = meta["k"]
    accelerator = accelerator or make_accelerator()
    main = accelerator.is_main_process
    progress = ProgressWriter(cv_dir, enabled=main)
    t0 = time.perf_counter()
    if main:
        clear_cancel(cv_dir)
        progress.emit("start", cv_id=meta["cv_id"], k=k, n_sessions=meta["n_sessions"], n_clients=meta["n_clients"],
                      sessions_without_client=meta["sessions_without_client"],
                      folds_done=sum(fold_status(cv_dir, i)["base_predicted"] and fold_status(cv_dir, i)["predicted"]
                                     for i in range(k)))
    snapshot = read_snapshot(cv_dir / "snapshot.jsonl")
    bar = tqdm(total=k, desc="cross-validation", unit="fold", disable=not (main and show_bar), file=sys.stderr)

    def check_cancel():
        if cancel_requested(cv_dir):
            raise Cancelled()

    try:
        for i, test in enumerate(meta["folds"]):
            d = fold_dir(cv_dir, i)
            st = fold_status(cv_dir, i)
            if not st["trained"]:
                check_cancel()
                progress.emit("fold", fold=i, stage="training", k=k, n_train=len(snapshot.labels) - len(test),
                              n_test=len(test))
                resume = st["run_status"] in ("cancelled", "failed", "running") or run_path(d, "checkpoints").is_dir()
                record = execute_run(d, resume=resume, accelerator=accelerator)
                accelerator.free_memory()
                gc.collect()
                if record.get("status") == "cancelled":
                    raise Cancelled()
            accelerator.wait_for_everyone()
            if main:
                run = read_json(run_path(d, "run"))
                sessions = [snapshot.sessions[s] for s in sorted(test)]
                for name, spec, path in fold_systems(config, run, d):
                    if path.is_file():
                        continue
                    check_cancel()
                    progress.emit("fold", fold=i, stage=f"predicting with the {name}", k=k, n_test=len(test))
                    preds, _vid, seconds = predict_version(spec, sessions, config, progress=lambda j, n, i=i, name=name:
                                                           progress.emit("fold", fold=i, k=k, stage=f"predicting with "
                                                                         f"the {name}: {j}/{n} sessions"))
                    _save_predictions(path, preds, seconds)
                progress.emit("fold_done", fold=i, k=k, elapsed_s=round(time.perf_counter() - t0, 1))
            bar.update(1)
            accelerator.wait_for_everyone()
        bar.close()
        if not main:
            return {"status": "done"}
        progress.emit("stage", message="computing the statistics")
        result = compute_result(cv_dir)
        result["timings"] = {"this_process_s": round(time.perf_counter() - t0, 1), **fold_timings(cv_dir, k)}
        write_json(cv_dir / "result.json", result)
        progress.emit("done", result=str(cv_dir / "result.json"), elapsed_s=round(time.perf_counter() - t0, 1))
        return result
    except Cancelled:
        bar.close()
        progress.emit("cancelled", message="cancelled; resume with --run-dir " + str(cv_dir))
        return {"status": "cancelled", "cv_dir": str(cv_dir)}
    except BaseException as err:
        bar.close()
        if main:
            progress.emit("error", message=str(err) if isinstance(err, CareError) else f"{type(err).__name__}: {err}")
        raise


def fold_systems(config: RetrainConfig, run: dict, d: Path) -> list[tuple]:
    """(name, model, predictions file) of what a fold predicts: its adapter and the base model, and
    with a DPO stage the SFT adapter alone (``predictions.json``, system ``crossval``) beside the
    SFT+DPO one (``dpo_predictions.json``, system ``crossval_dpo``)."""
    from care_model.inference.models import ModelSpec

    dpo = run.get("dpo") if config.dpo_stage() is not None else None
    sft = (dpo or {}).get("sft_adapter") or run["adapter"]
    out = [("fold adapter" + (" (SFT alone)" if dpo else ""), ModelSpec(base=config.base_model, adapter=sft),
            d / "predictions.json")]
    if dpo is not None:
        out.append(("fold adapter (SFT+DPO)", ModelSpec(base=config.base_model, adapter=run["adapter"]),
                    d / DPO_PREDICTIONS))
    return out + [("base model", ModelSpec(base=config.base_model), d / "base_predictions.json")]


DPO_PREDICTIONS = "dpo_predictions.json"


def fold_timings(cv_dir, k: int) -> dict:
    out = {"train_s": [], "predict_s": [], "base_predict_s": [], "dpo_s": [], "dpo_predict_s": []}
    for i in range(k):
        d = fold_dir(cv_dir, i)
        run = read_json(run_path(d, "run")) or {}
        out["train_s"].append((run.get("timings") or {}).get("train_s"))
        out["predict_s"].append((read_json(d / "predictions.json") or {}).get("seconds"))
        out["base_predict_s"].append((read_json(d / "base_predictions.json") or {}).get("seconds"))
        out["dpo_s"].append((run.get("dpo") or {}).get("elapsed_s"))
        out["dpo_predict_s"].append((read_json(d / DPO_PREDICTIONS) or {}).get("seconds"))
    return out


def compute_result(cv_dir) -> dict:
    """The run's statistics from its fold outputs (:mod:`care_model.stats.crossval_metrics`)."""
    from care_model.inference.embeddings import cosine_similarities
    from care_model.stats.crossval_metrics import constant_predictions, summarize, table_rows
    from care_model.training.evaluation import curated_as_labels

    cv_dir = Path(cv_dir)
    meta = load_crossval(cv_dir)
    config = RetrainConfig.from_dict(meta["config"])
    snapshot = read_snapshot(cv_dir / "snapshot.jsonl")
    with_dpo = config.dpo_stage() is not None
    preds = {"crossval": [], "base": []} | ({"crossval_dpo": []} if with_dpo else {})
    folds = []
    for i, test in enumerate(meta["folds"]):
        d = fold_dir(cv_dir, i)
        fold_preds = load_predictions(d / "predictions.json")
        base_preds = load_predictions(d / "base_predictions.json")
        dpo_preds = load_predictions(d / DPO_PREDICTIONS) if with_dpo else []
        if fold_preds is None or base_preds is None or dpo_preds is None:
            raise TrainingError(f"Fold {i} of {cv_dir} has no predictions yet.", "Resume the run: --run-dir DIR.")
        preds["crossval"] += fold_preds
        preds["base"] += base_preds
        if with_dpo:
            preds["crossval_dpo"] += dpo_preds
        run = read_json(run_path(d, "run")) or {}
        trained_on = read_snapshot(run_path(d, "snapshot"))
        for name, cpreds in constant_predictions(trained_on.sessions.values(),
                                                 [snapshot.sessions[s] for s in sorted(test)]).items():
            preds.setdefault(name, []).extend(cpreds)
        folds.append({"fold": i, "test_sessions": sorted(test), "n_train_sessions": len(trained_on.labels),
                      "adapter": run.get("adapter"), "train_data_hash": run.get("data_hash"),
            "train_loss": (run.get("metrics") or {}).get("train_loss"), "steps": run.get("steps"),
            **({"dpo": {k: (run.get("dpo") or {}).get(k) for k in ("n_pairs_available", "n_pairs_used", "steps",
                                                                  "losses", "margin_before", "margin_after",
                                                                  "pairs_preferred_after", "skipped")}}
               if with_dpo else {})})
    summary = summarize(snapshot.sessions, meta["folds"], preds, curated_as_labels(snapshot.labels),
                        n_boot=config.eval_n_boot, seed=meta["seed"], with_text=not config.eval_scores_only,
                        similarity=cosine_similarities)
    dpo_comparison = None
    if with_dpo:  # SFT+DPO against SFT alone, paired on the same held-out sessions (the pre-declared rule)
        from care_model.stats.compare import compare_versions

        dpo_comparison = compare_versions(snapshot.sessions, preds["crossval_dpo"], preds["crossval"],
                                          n_boot=config.eval_n_boot, seed=meta["seed"])
    return {"cv_id": meta["cv_id"], "k": meta["k"], "seed": meta["seed"], "data_hash": meta["data_hash"],
            "dpo_comparison": dpo_comparison,
            "n_sessions": meta["n_sessions"], "n_clients": meta["n_clients"],
            "sessions_without_client": meta["sessions_without_client"], "base_model": config.base_model,
            "scores_only": config.eval_scores_only, "split": meta["split"], "folds": folds,
            "rows": table_rows(summary), "summary": summary, "finished_at": now_iso(), "status": "done"}


# ----------------------------------------------------------------------------- phase 3
def finish_crossval(repo, cv_dir, *, actor: str = "system") -> dict:
    """Record the outcome in the store's ``crossval_runs`` (never as a model version)."""
    cv_dir = Path(cv_dir)
    meta = load_crossval(cv_dir)
    result = read_json(cv_dir / "result.json")
    events = read_events(cv_dir)
    last = next((e for e in reversed(events) if e.get("event") in ("done", "cancelled", "error")), {})
    doc = repo.collection(CROSSVAL_RUNS).get(meta["cv_id"]) or {"id": meta["cv_id"], "run_dir": str(cv_dir.resolve())}
    doc["status"] = "done" if result else {"cancelled": "cancelled"}.get(last.get("event"), "failed")
    doc["error"] = last.get("message") if doc["status"] == "failed" else None
    if result:
        doc["rows"] = [r for r in result["rows"] if r["score_field"] in ("score", "-")]
        if result.get("dpo_comparison"):
            doc["dpo_comparison"] = result["dpo_comparison"]
        doc["finished_at"] = result.get("finished_at")
    return repo.collection(CROSSVAL_RUNS).put(doc, actor=actor, action=f"finish:{doc['status']}")


def launch_subprocess(cv_dir, *, python: str | None = None, env: dict | None = None):
    """Start phase 2 of a prepared run in its own process (the app's path); output goes to ``train.log``."""
    import subprocess

    cv_dir = Path(cv_dir)
    cmd = [python or sys.executable, "-m", "care_model.jobs.crossval", "--run-dir", str(cv_dir)]
    root = Path(__file__).resolve().parents[2]
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    full_env.setdefault("CARE_TRAIN_NICE", "10")
    paths = [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env["PYTHONPATH"] = os.pathsep.join([str(root)] + paths)
    with open(cv_dir / "train.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
                                start_new_session=True, cwd=str(root))
    from care_model.training import procs

    write_json(cv_dir / "process.json", {**procs.identify(proc.pid), "cmd": cmd, "started_at": now_iso()})
    return proc
