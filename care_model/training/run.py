"""Retraining: curated labels -> LoRA re-fine-tune -> evaluation against the active version -> candidate.

The three phases and who runs them (only one process may open a store):

1. :func:`prepare_run` (the store's owner: this CLI, or the app): freeze the curated set into
   ``<run_dir>/snapshot.jsonl`` with its content hash, split it by client, note the version the
   candidate will be compared with, write the resolved config.
2. :func:`execute_run` (any process, also under ``accelerate launch``; never opens the store):
   train (:mod:`care_model.training.loop`), save ``adapter/``, with ``dpo_steps`` continue it with the
   DPO stage on the preference pairs phase 1 froze (:mod:`care_model.training.dpo`; ``adapter-dpo/``
   is then the candidate, ``run.json`` says so under ``dpo``), evaluate candidate vs baseline on the
   validation sessions (:mod:`care_model.training.evaluation`), write ``run.json``.
3. :func:`finish_run` (the store's owner): register the candidate version (:mod:`care_model.training.versions`).

``care retrain --store DIR`` does all three, opening the store only for 1 and 3
(in the main process). ``care retrain --run-dir DIR`` runs phase 2 of a run the
app prepared (:func:`launch_subprocess`); the app's job watcher does phase 3. ``--resume``
continues a cancelled or interrupted run from its last checkpoint, with its saved config and
snapshot. Cancel: ``touch <run_dir>/CANCEL``, SIGTERM or Ctrl-C (a checkpoint is saved, the
exit status is 0 and ``run.json`` says ``cancelled``).


The command line: ``care retrain`` (:mod:`care_model.jobs.retrain`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from care_model.core.errors import CareError, TrainingError
from care_model.core.records import now_iso
from care_model.text.snapshot import read_snapshot, split_by_client, take_snapshot, write_snapshot
from care_model.training import procs
from care_model.training.config import RetrainConfig
from care_model.training.runs import ProgressWriter, clear_cancel, read_json, run_path, write_json

RUNS = "training_runs"


def make_accelerator():
    """``Accelerator()``; without a GPU it is told so (``cpu=True``), so that ranks started by
    ``torchrun`` join over gloo (MULTI_CPU) instead of each running alone."""
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def code_commit() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True,
                                    text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": dirty}


# ----------------------------------------------------------------------------- phase 1
def prepare_run(repo, config: RetrainConfig, *, run_dir: Path | str | None = None, run_id: str | None = None,
                actor: str = "system") -> Path:
    """Snapshot the curated set and write the run folder (config, snapshot, split, baseline)."""
    from care_model.training.versions import baseline_of

    run_id = run_id or new_run_id()
    run_dir = Path(run_dir) if run_dir else Path(repo.root) / "runs" / run_id
    if run_path(run_dir, "config").exists():
        raise TrainingError(f"The run folder {run_dir} already holds a run.",
                            "Pick a new --run-id, or continue that run with --resume.")
    snapshot = take_snapshot(repo, score_sources=config.score_sources, rationales=config.rationales,
                             rationale_provenance=config.rationale_provenance)
    split = split_by_client(snapshot, config.validation_fraction, config.seed)
    baseline = baseline_of(repo, config.base_model)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_snapshot(snapshot, run_path(run_dir, "snapshot"))
    write_json(run_path(run_dir, "split"), split.to_dict())
    write_json(run_path(run_dir, "baseline"), {"version_id": baseline["id"], "base": baseline["base"],
                                               "adapter": baseline.get("adapter"), "status": baseline["status"]})
    dpo_pairs = None
    if config.dpo_stage() is not None:  # the DPO stage's preference pairs: training sessions only
        from care_model.training.dpo import write_pairs

        dpo_pairs = write_pairs(repo, snapshot, split.train, config, run_dir)
    write_json(run_path(run_dir, "config"), {"run_id": run_id, "config": config.to_dict(), "data_hash": snapshot.hash,
                                             "prepared_at": now_iso(), "prepared_by": actor,
                                             **({"dpo_pairs": dpo_pairs} if dpo_pairs else {})})
    repo.collection(RUNS).put({"id": run_id, "status": "prepared", "run_dir": str(run_dir.resolve()),
                               "data_hash": snapshot.hash, "snapshot": snapshot.header(), "config": config.to_dict(),
                               "baseline": baseline["id"], "started_by": actor}, actor=actor, action="prepare")
    return run_dir


def load_run_config(run_dir: Path | str) -> tuple[str, RetrainConfig, str]:
    """(run id, config, data hash) of a prepared run."""
    data = read_json(run_path(run_dir, "config"))
    if not data:
        raise TrainingError(f"{run_dir} is not a prepared run (no config.json).",
                            "Prepare it with care retrain --store DIR ..., or start it from the "
                            "app.")
    return data["run_id"], RetrainConfig.from_dict(data["config"], where=f"{run_dir}/config.json"), data["data_hash"]


# ----------------------------------------------------------------------------- phase 2
def execute_run(run_dir: Path | str, *, resume: bool = False, accelerator=None) -> dict:
    """Train, save the adapter, evaluate and write ``run.json`` (see the module docstring).

    Returns the run record (``run.json`` content) in the main process, ``{"status": ...}`` elsewhere.
    """
    from accelerate.utils import set_seed

    run_dir = Path(run_dir)
    run_id, config, data_hash = load_run_config(run_dir)
    accelerator = accelerator or make_accelerator()
    main = accelerator.is_main_process
    progress = ProgressWriter(run_dir, enabled=main)
    t_start = time.perf_counter()
    if main:
        clear_cancel(run_dir)
    accelerator.wait_for_everyone()
    try:
        set_seed(config.seed)
        snapshot = read_snapshot(run_path(run_dir, "snapshot"))
        if snapshot.hash != data_hash:
            raise TrainingError(f"The snapshot of {run_dir} has hash {snapshot.hash}, the run was prepared with "
                                f"{data_hash}.",
                                "Do not replace snapshot files; prepare a new run.")
        split = split_by_client(snapshot, config.validation_fraction, config.seed)
        progress.emit("stage", message="loading model")
        from care_model.training.data import build_datasets
        from care_model.training.loop import load_for_training, train

        tokenizer, model = load_for_training(config, accelerator)
        progress.emit("stage", message="tokenizing")
        held_out = split.validation[:config.eval_max_sessions or None]  # validation loss and evaluation use these
        datasets = build_datasets(snapshot, replace(split, validation=held_out), tokenizer, config, model.config)
        result = train(run_dir, config, datasets, tokenizer, model, accelerator, resume=resume, run_id=run_id,
                       data_hash=data_hash)
        result.data_warnings = list(getattr(datasets, "warnings", []))
        dpo = None
        if result.status == "done" and config.dpo_stage() is not None:
            dpo = _dpo_stage(run_dir, config, snapshot, result, tokenizer, progress, accelerator)
        if not main:
            return {"status": result.status, "step": result.step}
        record = _run_record(run_dir, run_id, config, data_hash, snapshot, split, result)
        if dpo is not None:
            record["dpo"] = dpo
            record["metrics"]["dpo"] = {k: dpo.get(k) for k in ("margin_before", "margin_after", "n_pairs_used")}
        if result.status == "cancelled":
            record["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
            write_json(run_path(run_dir, "run"), record)
            return record
        if config.evaluate and split.validation:
            t_eval = time.perf_counter()
            record["evaluation"] = _evaluate(run_dir, config, snapshot, split, result, progress)
            record["timings"]["eval_s"] = round(time.perf_counter() - t_eval, 2)
            record["metrics"]["evaluation"] = {name: v["headline"] for name,
                                               v in record["evaluation"]["versions"].items()}
            progress.emit("evaluation", metrics=record["metrics"])
        record["status"] = "done"
        record["finished_at"] = now_iso()
        record["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
        write_json(run_path(run_dir, "run"), record)
        progress.emit("done", adapter=record["adapter"], version_id=record["version_id"],
                      run_json=str(run_path(run_dir, "run")), elapsed_s=record["timings"]["total_s"])
        return record
    except BaseException as err:
        if main:
            message = str(err) if isinstance(err, CareError) else f"{type(err).__name__}: {err}"
            progress.emit("error", message=message)
            prior = read_json(run_path(run_dir, "run"), {}) or {}
            write_json(run_path(run_dir, "run"), {**prior, "run_id": run_id, "run_dir": str(run_dir.resolve()),
                                                  "status": "failed", "error": message, "finished_at": now_iso()})
        raise


def _dpo_stage(run_dir, config, snapshot, result, tokenizer, progress, accelerator) -> dict | None:
    """The DPO stage after SFT (:mod:`care_model.training.dpo`): continues ``result.model`` and
    makes its adapter the candidate; the SFT adapter stays in ``adapter/`` (``dpo.sft_adapter``)."""
    from care_model.training.dpo import read_pairs, run_dpo_stage

    if accelerator.num_processes > 1:
        run_dpo_stage(run_dir, config, None, tokenizer, [], {}, world_size=accelerator.num_processes)  # refuses
    _header, pairs = read_pairs(run_dir)
    out = run_dpo_stage(run_dir, config, result.model, tokenizer, pairs, snapshot.sessions, progress=progress.emit)
    info = {**out.to_dict(), "sft_adapter": str(Path(result.adapter_dir).resolve()), "pairs_header": _header}
    if out.cancelled:
        result.status = "cancelled"
    elif out.adapter_dir:
        result.adapter_dir = out.adapter_dir
    return info


def _run_record(run_dir, run_id, config, data_hash, snapshot, split, result) -> dict:
    import accelerate
    import peft
    import torch
    import transformers

    from care_model.inference.models import ModelSpec, model_version_id

    adapter = str(Path(result.adapter_dir).resolve()) if result.adapter_dir else None
    return {
        "run_id": run_id, "run_dir": str(run_dir.resolve()), "status": result.status, "config": config.to_dict(),
        "data_hash": data_hash, "snapshot": snapshot.header(), "split": split.to_dict(),
        "baseline": read_json(run_path(run_dir, "baseline")), "adapter": adapter,
        "version_id": model_version_id(ModelSpec(base=config.base_model, adapter=adapter)) if adapter else None,
        "checkpoint": result.checkpoint, "steps": result.step, "total_steps": result.total_steps,
        "world_size": result.world_size, "n_train_rows": result.n_train, "n_validation_rows": result.n_validation,
        "data_warnings": result.data_warnings[:50],
        "metrics": {"train_loss": result.train_loss, "validation_loss_before": result.validation_loss_before,
                    "validation_loss_after": result.validation_loss_after},
        "timings": {"train_s": round(result.elapsed_s, 2), "steps_per_s": round(result.steps_per_s, 4),
                    "tokens": result.tokens},
        "code_commit": code_commit(),
        "libraries": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                      "accelerate": accelerate.__version__},
    }


def _evaluate(run_dir, config, snapshot, split, result, progress) -> dict:
    """Candidate (the trained adapter) vs baseline (the version active when the run was prepared)."""
    import gc

    from care_model.inference.models import ModelSpec
    from care_model.training.evaluation import evaluate_candidate

    result.model = None  # free the training copy: evaluation loads the saved adapter, as inference will
    gc.collect()
    baseline = read_json(run_path(run_dir, "baseline")) or {}
    sessions = {sid: snapshot.sessions[sid] for sid in split.validation[:config.eval_max_sessions or None]}
    curated = {sid: snapshot.labels[sid] for sid in sessions}
    cand = ModelSpec(base=config.base_model, adapter=result.adapter_dir)
    base = ModelSpec(base=baseline["base"], adapter=baseline.get("adapter")) if baseline.get("base") else None

    def report(name, i, n):
        progress.emit("stage", message=f"evaluating {name}: {i}/{n} sessions")

    training = [snapshot.sessions[sid] for sid in split.train if sid in snapshot.sessions]
    out = evaluate_candidate(cand, base, sessions, curated, config, progress=report, training=training or None)
    with open(run_dir / "eval_predictions.jsonl", "w", encoding="utf-8") as fh:
        for name, preds in out.pop("predictions").items():
            for p in preds:
                fh.write(json.dumps({"role": name, **p}, ensure_ascii=False) + "\n")
    out["predictions_file"] = str((run_dir / "eval_predictions.jsonl").resolve())
    return out


# ----------------------------------------------------------------------------- phase 3
def finish_run(repo, run_dir: Path | str, *, actor: str = "system") -> dict | None:
    """Record the run's outcome in the store; register the candidate when it finished."""
    from care_model.training.calibration_choice import record_from_evaluation
    from care_model.training.versions import register_candidate

    run_dir = Path(run_dir)
    record = read_json(run_path(run_dir, "run")) or {}
    run_id = record.get("run_id") or load_run_config(run_dir)[0]
    runs = repo.collection(RUNS)
    doc = runs.get(run_id) or {"id": run_id, "run_dir": str(run_dir.resolve())}
    doc["status"] = record.get("status", "failed")
    doc["metrics"] = record.get("metrics")
    doc["error"] = record.get("error")
    version = None
    if doc["status"] == "done":
        version = register_candidate(repo, record, actor=actor)
        record_from_evaluation(repo, version, actor=actor)  # its own calibration choice, in it only
        doc["status"], doc["version_id"] = "registered", version["id"]
    runs.put(doc, actor=actor, action=f"finish:{doc['status']}")
    return version


def launch_subprocess(run_dir: Path | str, *, resume: bool = False, python: str | None = None,
                      env: dict | None = None) -> subprocess.Popen:
    """Start phase 2 of a prepared run in its own process (the app's path); output goes to ``train.log``."""
    run_dir = Path(run_dir)
    cmd = [python or sys.executable, "-m", "care_model.jobs.retrain", "--run-dir",
           str(run_dir)] + (["--resume"] if resume else [])
    log = open(run_path(run_dir, "log"), "ab")
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    # the app's experts come first: the trainer runs at a lower CPU priority (0 = same as the app)
    full_env.setdefault("CARE_TRAIN_NICE", "10")
    root = Path(__file__).resolve().parents[2]
    paths = [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    full_env["PYTHONPATH"] = os.pathsep.join([str(root)] + paths)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
                            start_new_session=True, cwd=str(root))
    log.close()
    # the PID with its start time and boot: a later reader never mistakes another process for it
    write_json(run_dir / "process.json", {**procs.identify(proc.pid), "cmd": cmd, "started_at": now_iso()})
    return proc


def lower_priority() -> None:
    """``CARE_TRAIN_NICE=N`` (the app sets 10): be nicer to the CPU so the app stays responsive."""
    try:
        n = int(os.environ.get("CARE_TRAIN_NICE") or 0)
    except ValueError:
        n = 0
    if n > 0 and hasattr(os, "nice"):
        os.nice(n)
