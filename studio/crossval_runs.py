"""Cross-validation runs from the app: start, follow, cancel, resume and record them (the training manager's way).

The app owns the store, so it freezes the curated set and the folds itself
(:func:`care_model.training.crossval.prepare_crossval`) and starts ``care crossval --run-dir
DIR`` as a separate process (:func:`care_model.training.crossval.launch_subprocess`), which never opens the
store. :meth:`CrossvalManager.poll` (the tab's timer) reads the run's ``progress.jsonl`` and the
current fold's training progress and, once the process has exited, records the result in
``crossval_runs`` (:func:`care_model.training.crossval.finish_crossval`). Fold adapters are never model
versions. Only one run at a time; retraining and cross-validation can run side by side (each is its
own process at low CPU priority). Every action checks the admin role on the server.
"""
from __future__ import annotations

import threading
from pathlib import Path

from care_model.training.crossval import (CROSSVAL_RUNS, finish_crossval, fold_dir, launch_subprocess, new_crossval_id,
    prepare_crossval)
from care_model.core.errors import TrainingError
from care_model.core.records import now_iso
from care_model.training.config import resolve_config
from care_model.training.runs import read_events, read_progress, request_cancel

from .training import log_tail, parse_overrides, record_resumed, run_process_running

LIVE = ("prepared", "running")


def crossval_progress(run_dir) -> dict:
    """Where a run is: folds done of K, the current fold's stage and training step, a fraction."""
    events = read_events(run_dir)
    out = {"status": "pending", "k": 0, "folds_done": 0, "fold": None, "stage": "", "step": 0, "total_steps": 0,
           "loss": None, "fraction": 0.0, "message": "", "elapsed_s": None}
    done = set()
    for ev in events:
        kind = ev.get("event")
        if kind == "start":
            out.update(status="running", k=int(ev.get("k", 0)), message="")
        elif kind == "fold":
            out.update(fold=int(ev["fold"]), stage=str(ev.get("stage", "")))
        elif kind == "fold_done":
            done.add(int(ev["fold"]))
            out["elapsed_s"] = ev.get("elapsed_s")
        elif kind == "stage":
            out["message"] = str(ev.get("message", ""))
        elif kind in ("done", "cancelled", "error"):
            out["status"] = kind
            out["message"] = str(ev.get("message", "")) if kind != "done" else "done"
            out["elapsed_s"] = ev.get("elapsed_s", out["elapsed_s"])
    out["folds_done"] = len(done)
    within = 0.0
    if out["fold"] is not None and out["fold"] not in done and out["status"] == "running":
        p = read_progress(fold_dir(run_dir, out["fold"]))
        out.update(step=p.step, total_steps=p.total_steps, loss=p.loss)
        if out["stage"] == "training":
            within = 0.7 * p.fraction
        elif out["stage"].startswith("predicting"):
            within = 0.7 + (0.15 if "base model" in out["stage"] else 0.0)
    k = out["k"] or 1
    out["fraction"] = 1.0 if out["status"] == "done" else min(1.0, (len(done) + within) / k)
    return out


class CrossvalManager:
    def __init__(self, repo, *, python: str | None = None, env: dict | None = None):
        import sys

        self.repo = repo
        self.python = python or sys.executable
        self.env = dict(env or {})
        self._procs: dict[str, object] = {}
        self._lock = threading.RLock()

    def runs(self, limit: int = 50) -> list[dict]:
        docs = self.repo.collection(CROSSVAL_RUNS).all()
        return sorted(docs, key=lambda d: d.get("created_at", ""), reverse=True)[:limit]

    def current(self) -> dict | None:
        return next((d for d in self.runs(limit=1000) if d.get("status") in LIVE), None)

    def _is_running(self, doc: dict) -> bool:
        return run_process_running(self._procs.get(doc["id"]), doc["run_dir"])

    def poll(self) -> dict | None:
        """Record the current run's outcome once its process has exited; returns the run if still live."""
        with self._lock:
            doc = self.current()
            if doc is None or self._is_running(doc):
                return doc
            self._procs.pop(doc["id"], None)
            finish_crossval(self.repo, doc["run_dir"], actor=doc.get("started_by", "system"))
            return None

    def start(self, access, recipe_path, folds: int = 5, overrides: dict | str | None = None) -> dict:
        access.require("admin", action="start a cross-validation run")
        with self._lock:
            if self.poll() is not None:
                raise TrainingError("A cross-validation run is already in progress.", "Wait for it, or cancel it.")
            if isinstance(overrides, str):
                overrides = parse_overrides(overrides)
            config = resolve_config(recipe_path, overrides or {})
            cv_id = new_crossval_id()
            cv_dir = prepare_crossval(self.repo, config, int(folds), cv_id=cv_id, actor=access.username)
            proc = launch_subprocess(cv_dir, python=self.python, env={"HF_HUB_OFFLINE": "1", **self.env})
            self._procs[cv_id] = proc
            doc = self.repo.collection(CROSSVAL_RUNS).require(cv_id)
            doc.update({"status": "running", "pid": proc.pid, "recipe": Path(recipe_path).name, "started_at": now_iso(),
                        "overrides": overrides or {}})
            return self.repo.collection(CROSSVAL_RUNS).put(doc, actor=access.username, action="start")

    def resume(self, access, cv_id: str | None = None) -> dict:
        """Continue a cancelled or failed run (the last one, or ``cv_id``): finished folds are kept,
        the interrupted fold resumes from its checkpoint, the rest run as planned (same snapshot,
        same folds, same recipe)."""
        access.require("admin", action="resume a cross-validation run")
        with self._lock:
            if self.poll() is not None:
                raise TrainingError("A cross-validation run is already in progress.", "Wait for it, or cancel it.")
            if cv_id:
                doc = self.repo.collection(CROSSVAL_RUNS).get(cv_id)
                if doc is None:
                    raise TrainingError(f"No cross-validation run {cv_id!r}.", "Pick a run id from the list of runs.")
            else:
                doc = (self.runs(limit=1) or [None])[0]
            if doc is None or doc.get("status") not in ("cancelled", "failed"):
                what = f"Run {doc['id']} is {doc.get('status')}" if doc else "There is no cross-validation run"
                raise TrainingError(f"{what}: only a cancelled or failed run can be resumed.",
                                    "Start a new cross-validation run instead.")
            if not (Path(doc["run_dir"]) / "config.json").is_file():
                raise TrainingError(f"The folder of run {doc['id']} is gone ({doc['run_dir']}).",
                                    "Start a new cross-validation run instead.")
            proc = launch_subprocess(doc["run_dir"], python=self.python, env={"HF_HUB_OFFLINE": "1", **self.env})
            return record_resumed(self.repo, CROSSVAL_RUNS, self._procs, doc, proc, access.username)

    def cancel(self, access) -> dict:
        access.require("admin", action="cancel a cross-validation run")
        with self._lock:
            doc = self.current()
            if doc is None:
                raise TrainingError("No cross-validation run is in progress.", "Nothing to cancel.")
            request_cancel(doc["run_dir"], access.username)
            p = crossval_progress(doc["run_dir"])
            if p["fold"] is not None:          # the fold's trainer checks its own folder every step
                request_cancel(fold_dir(doc["run_dir"], p["fold"]), access.username)
            doc["cancel_requested"] = {"by": access.username, "at": now_iso()}
            return self.repo.collection(CROSSVAL_RUNS).put(doc, actor=access.username, action="cancel")

    def status(self) -> dict:
        live = self.poll()
        last = live or (self.runs(limit=1) or [None])[0]
        out = {"run": last, "running": live is not None, "progress": None, "log": ""}
        if last is not None and Path(last["run_dir"]).exists():
            out["progress"] = crossval_progress(last["run_dir"])
            out["log"] = log_tail(last["run_dir"], lines=12)
        return out

    def close(self) -> None:
        self._procs.clear()
