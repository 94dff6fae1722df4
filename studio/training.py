"""Retraining from the app: start, follow, cancel and finish runs; promote and roll back versions.

:class:`TrainingManager` is the app's side of :mod:`care_model.training.run`. The app owns the store,
so it takes the curated snapshot itself (:func:`care_model.training.run.prepare_run`) and then
starts ``care retrain --run-dir DIR`` as a **separate process**
(:func:`care_model.training.run.launch_subprocess`): training never runs in a request handler or a
thread of the app, and the training process never opens the store. :meth:`TrainingManager.poll`
(the tab's timer) reads the run's ``progress.jsonl`` and, once the process has exited,
registers the candidate (:func:`care_model.training.run.finish_run`) -- exactly once.

Everything a page needs is in the store and the run folder, not in the page or in this object:
``training_runs`` records the run (status, pid, run folder), so a page reload -- or an app
restart while the trainer keeps running -- reattaches to it. The trainer is recognised by its
PID *and* its start time and boot (``process.json``, :mod:`care_model.training.procs`): after a reboot, or
once its PID belongs to another process, the run is marked failed (resumable) and nothing is
signalled.

Retraining is enabled once ``min_new_sessions`` sessions have been curated (a submitted label
saved) since the last successful run's snapshot; admins set the number (``settings`` document
``retraining``). Every action checks the admin role on the server.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from care_model.training import procs
from care_model.training import versions as V
from care_model.text.snapshot import learned_from, new_curated_sessions
from care_model.core.errors import ConfigError, TrainingError, ValidationError
from care_model.core.records import now_iso
from care_model.training.run import RUNS, finish_run, launch_subprocess, new_run_id, prepare_run
from care_model.training.config import resolve_config
from care_model.training.runs import read_json, read_progress, request_cancel, run_path

ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = ROOT / "recipes"
SETTINGS_DOC = "retraining"
DEFAULT_MIN_NEW = 10
DEFAULT_RECIPE = "cpu-smoke.yaml"
LIVE = ("prepared", "running")


def parse_overrides(text: str) -> dict:
    """``key: value`` lines (YAML) to a dict; unknown keys fail later, in resolve_config."""
    import yaml

    text = (text or "").strip()
    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"The overrides are not valid YAML: {err}", "Write one 'key: value' per line.") from None
    if not isinstance(data, dict):
        raise ConfigError("The overrides must be 'key: value' lines.", "For example: max_steps: 20")
    return data


def log_tail(run_dir, lines: int = 40) -> str:
    """The end of ``train.log`` with tqdm's carriage returns resolved (last state of each line)."""
    path = run_path(run_dir, "log")
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 64_000))
        text = fh.read().decode("utf-8", errors="replace")
    out = [ln.rsplit("\r", 1)[-1] for ln in text.replace("\r\n", "\n").split("\n")]
    return "\n".join([ln for ln in out if ln.strip()][-lines:])



def record_resumed(repo, collection: str, procs: dict, doc: dict, proc, actor: str) -> dict:
    """Keep ``proc`` as the run's process and record the run as running again (audited "resume");
    shared by the retraining and cross-validation managers."""
    procs[doc["id"]] = proc
    doc.update({"status": "running", "pid": proc.pid, "cancel_requested": None, "error": None, "resumed_at": now_iso()})
    return repo.collection(collection).put(doc, actor=actor, action="resume")


def run_process_running(proc, run_dir) -> bool:
    """Whether a run's process still runs: the child this app started, else the recorded process identity
    (PID, start time and boot id in ``process.json``), so a reused PID never counts as the run."""
    if proc is not None:
        return proc.poll() is None
    return procs.state(read_json(Path(run_dir) / "process.json")) == "running"

class TrainingManager:
    def __init__(self, repo, *, recipes_dir: Path = RECIPES_DIR, python: str | None = None, env: dict | None = None):
        self.repo = repo
        self.recipes_dir = Path(recipes_dir)
        self.python = python or sys.executable
        self.env = dict(env or {})
        self._procs: dict[str, object] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ settings and readiness
    def settings(self) -> dict:
        doc = self.repo.collection("settings").get(SETTINGS_DOC) or {}
        return {"min_new_sessions": int(doc.get("min_new_sessions", DEFAULT_MIN_NEW)),
                "recipe": doc.get("recipe", DEFAULT_RECIPE)}

    def set_settings(self, access, *, min_new_sessions: int | None = None, recipe: str | None = None) -> dict:
        access.require("admin", action="change the retraining settings")
        cur = self.repo.collection("settings").get(SETTINGS_DOC) or {"id": SETTINGS_DOC}
        if min_new_sessions is not None:
            if int(min_new_sessions) < 0:
                raise ValidationError("The number of new sessions cannot be negative.", "Use 0 or more.")
            cur["min_new_sessions"] = int(min_new_sessions)
        if recipe is not None:
            self.recipe_path(recipe)
            cur["recipe"] = recipe
        self.repo.collection("settings").put(cur, actor=access.username, action="retraining_settings")
        return self.settings()

    def recipes(self) -> list[str]:
        return sorted(p.name for p in self.recipes_dir.glob("*.yaml") if not p.name.startswith("accelerate"))

    def recipe_path(self, name: str) -> Path:
        path = self.recipes_dir / Path(name).name
        if not path.is_file():
            raise ConfigError(f"No recipe {name!r}.", f"Use one of {', '.join(self.recipes()) or '(none found)'}.")
        return path

    def runs(self, limit: int = 20) -> list[dict]:
        docs = self.repo.collection(RUNS).all()
        return sorted(docs, key=lambda d: d.get("created_at", ""), reverse=True)[:limit]

    def readiness(self) -> dict:
        done = [d for d in self.runs(limit=1000) if d.get("status") in ("registered", "done")]
        since = max((d.get("snapshot", {}).get("created_at") or d.get("created_at", "") for d in done), default=None)
        new = new_curated_sessions(self.repo, since)
        need = self.settings()["min_new_sessions"]
        return {"new_sessions": len(new), "min_new_sessions": need, "since": since, "ready": len(new) >= need}

    def unused_labels(self, recipe: str | None = None, overrides: dict | str | None = None) -> dict:
        """Curated items a run with this recipe would not learn, by score source (``{"expert": 12}``),
        and the recipe's ``score_sources``: what the sentence before retraining says."""
        from care_model.text.curation import curate_item, submitted_by_item

        if isinstance(overrides, str):
            overrides = parse_overrides(overrides)
        config = resolve_config(self.recipe_path(recipe or self.settings()["recipe"]), overrides or {})
        unused: dict[str, int] = {}
        for labs in submitted_by_item(self.repo.labels(status="submitted")).values():
            cur = curate_item(labs)
            if cur is not None and cur.score_source not in config.score_sources:
                unused[cur.score_source] = unused.get(cur.score_source, 0) + 1
        return {"unused": unused, "score_sources": list(config.score_sources)}

    # ------------------------------------------------------------------ the current run
    def current(self) -> dict | None:
        live = [d for d in self.runs(limit=1000) if d.get("status") in LIVE]
        return live[0] if live else None

    def _is_running(self, doc: dict) -> bool:
        return run_process_running(self._procs.get(doc["id"]), doc["run_dir"])

    def poll(self) -> dict | None:
        """Finish the current run if its process has exited (registering its candidate); returns it."""
        with self._lock:
            doc = self.current()
            if doc is None or self._is_running(doc):
                return doc
            return self._finish(doc)

    def _finish(self, doc: dict) -> dict:
        run_dir = Path(doc["run_dir"])
        record = read_json(run_path(run_dir, "run")) or {}
        proc = self._procs.pop(doc["id"], None)
        code = proc.poll() if proc is not None else None
        lost = None
        if proc is None:  # not started by this app instance: judge the recorded process
            rec = read_json(run_dir / "process.json") or {}
            why = {"reused": "its PID now belongs to another process (the machine restarted, or the trainer died)",
                   "unknown": "its record has no start time, so the process cannot be told from a stranger"}
            state = procs.state(rec)
            if state in why:
                lost = (f"The training process recorded for this run (PID {rec.get('pid')}) is not running: "
                        f"{why[state]}. Resume the run from its last checkpoint, or start a new one.")
        if record.get("status") == "done":
            finish_run(self.repo, run_dir, actor=doc.get("started_by", "system"))
        else:
            status = "cancelled" if (record.get("status") == "cancelled" or doc.get("cancel_requested")) else "failed"
            doc = self.repo.collection(RUNS).require(doc["id"])
            doc["status"] = status
            doc["error"] = record.get("error") or (None if status == "cancelled" else lost or
                                                   f"The training process exited (code {code}) without finishing; "
                                                   f"see the log.")
            doc["finished_at"] = now_iso()
            self.repo.collection(RUNS).put(doc, actor="system", action=f"finish:{status}")
        return self.repo.collection(RUNS).require(doc["id"])

    # ------------------------------------------------------------------ actions
    def start(self, access, recipe: str | None = None, overrides: dict | str | None = None) -> dict:
        """Snapshot the curated set, then start the trainer process. Admins only; one run at a time."""
        access.require("admin", action="start a retraining run")
        with self._lock:
            if self.poll() is not None:
                raise TrainingError("A retraining run is already in progress.", "Wait for it to finish, or cancel it.")
            ready = self.readiness()
            if not ready["ready"]:
                raise TrainingError(f"Only {ready['new_sessions']} newly curated session(s) since the last run; "
                                    f"retraining needs {ready['min_new_sessions']}.",
                                    "Curate more sessions, or lower the threshold in the retraining settings.")
            if isinstance(overrides, str):
                overrides = parse_overrides(overrides)
            config = resolve_config(self.recipe_path(recipe or self.settings()["recipe"]), overrides or {})
            run_id = new_run_id()
            run_dir = prepare_run(self.repo, config, run_id=run_id, actor=access.username)
            proc = launch_subprocess(run_dir, python=self.python, env={"HF_HUB_OFFLINE": "1", **self.env})
            self._procs[run_id] = proc
            doc = self.repo.collection(RUNS).require(run_id)
            doc.update({"status": "running", "pid": proc.pid, "recipe": recipe or self.settings()["recipe"],
                        "overrides": overrides or {}, "started_at": now_iso(),
                        "learned_from": learned_from(doc.get("snapshot"))})
            return self.repo.collection(RUNS).put(doc, actor=access.username, action="start")

    def resume(self, access, run_id: str | None = None) -> dict:
        """Continue a cancelled or failed run from its last checkpoint (same snapshot, same config)."""
        from care_model.training.runs import last_checkpoint

        access.require("admin", action="resume a retraining run")
        with self._lock:
            if self.poll() is not None:
                raise TrainingError("A retraining run is already in progress.", "Wait for it to finish, or cancel it.")
            doc = self.repo.collection(RUNS).require(run_id) if run_id else (self.runs(limit=1) or [None])[0]
            if doc is None or doc.get("status") not in ("cancelled", "failed"):
                raise TrainingError("There is no cancelled or failed run to resume.", "Start a new run instead.")
            if last_checkpoint(doc["run_dir"]) is None:
                raise TrainingError(f"Run {doc['id']} stopped before its first checkpoint.", "Start a new run instead.")
            proc = launch_subprocess(doc["run_dir"], resume=True, python=self.python, env={"HF_HUB_OFFLINE": "1",
                                                                                           **self.env})
            return record_resumed(self.repo, RUNS, self._procs, doc, proc, access.username)

    def cancel(self, access) -> dict:
        """Ask the trainer to stop: it saves a checkpoint and exits (before training starts: stopped at once)."""
        access.require("admin", action="cancel a retraining run")
        with self._lock:
            doc = self.current()
            if doc is None:
                raise TrainingError("No retraining run is in progress.", "Nothing to cancel.")
            run_dir = Path(doc["run_dir"])
            request_cancel(run_dir, access.username)
            if read_progress(run_dir).status != "running":  # still loading: no loop checks the file yet
                procs.signal_group(read_json(run_dir / "process.json"), signal.SIGTERM)
            doc["cancel_requested"] = {"by": access.username, "at": now_iso()}
            return self.repo.collection(RUNS).put(doc, actor=access.username, action="cancel")

    def promote(self, access, version_id: str, reason: str = "") -> dict:
        return V.promote(self.repo, version_id, actor=access.username, reason=reason)

    def rollback(self, access, version_id: str | None = None, reason: str = "") -> dict:
        return V.rollback(self.repo, version_id or None, actor=access.username, reason=reason)

    def reject(self, access, version_id: str, reason: str = "") -> dict:
        return V.reject(self.repo, version_id, actor=access.username, reason=reason)

    # ------------------------------------------------------------------ one view for the page
    def status(self) -> dict:
        """Current run with its progress and log, readiness, versions and the comparison to show."""
        doc = self.poll()
        last = doc or (self.runs(limit=1) or [None])[0]
        out = {"run": last, "running": doc is not None, "readiness": self.readiness(), "settings": self.settings(),
               "active": V.active_version_id(self.repo), "versions": V.list_versions(self.repo), "progress": None,
               "log": ""}
        if last is not None and Path(last["run_dir"]).exists():
            p = read_progress(last["run_dir"])
            out["progress"] = {"status": p.status, "step": p.step, "total_steps": p.total_steps, "loss": p.loss,
                               "lr": p.lr, "elapsed_s": p.elapsed_s, "eta_s": p.eta_s, "losses": p.losses,
                               "validation_losses": p.validation_losses, "message": p.message}
            out["log"] = log_tail(last["run_dir"])
        return out

    def close(self) -> None:
        """The app is closing: running trainers keep going (a restarted app reattaches to them)."""
        self._procs.clear()
