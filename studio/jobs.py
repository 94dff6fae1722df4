"""Predict jobs: one background worker thread, a queue, per-job progress the UI polls.

Inference is CPU-bound and long (a SmolLM2 session takes 10-60 s on 2 cores), so it never runs
in a request handler. :meth:`PredictJobs.submit` queues a job and returns at once; the single
worker thread (started on the first submit, never at import) runs jobs one after another with
the injected predictor and appends the predictions with ``repo.add_predictions`` (predictions are
append-only; labels are never touched). Handlers stay responsive because they only read the job
table, and torch releases the GIL while it computes.

Job records live in memory (a restart forgets finished jobs; the predictions are in the store).
A job's ``error`` is shown to the user; logs get the job id and the error type only, never text
of a transcript.

Two kinds of job share the worker: ``"predict"`` (:meth:`PredictJobs.submit`, the model's
suggestions) and ``"draft"`` (:meth:`PredictJobs.submit_draft`: a rationale written for a given
score, :meth:`care_model.inference.predictor.Predictor.draft`; stored as a ``mode="draft"`` prediction, and
the job's ``result`` holds the rationale and evidence the review card fills in -- no label is
written). :meth:`PredictJobs.latest` follows predict jobs unless asked for drafts.
"""
from __future__ import annotations

import copy
import logging
import queue
import threading
import time
import uuid
from dataclasses import replace

from care_model.core.errors import CareError
from care_model.core.records import now_iso

log = logging.getLogger("care.jobs")
ACTIVE = ("queued", "running")


class PredictJobs:
    def __init__(self, repo, predictor, *, keep: int = 500):
        self.repo = repo
        self.predictor = predictor
        self._jobs: dict[str, dict] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._keep = keep

    # ----- public ------------------------------------------------------------------------
    @property
    def model_version(self) -> str | None:
        return getattr(self.predictor, "model_version", None)

    def submit(self, session_id: str, *, actor: str, items=None, scores_only: bool = False) -> dict:
        """Queue a prediction of one session; an identical job still waiting or running is reused."""
        items = sorted({int(i) for i in items}) if items else None
        return self._enqueue(session_id, actor, items=items, scores_only=bool(scores_only))

    def submit_draft(self, session_id: str, *, actor: str, item: int, score: int, source: str = "expert") -> dict:
        """Queue a draft of one item's rationale for ``score`` (``source``: "expert" or "client");
        the same draft still waiting or running is reused."""
        from care_model.text.drafting import check_targets
        from care_model.core.records import DRAFT_SOURCES
        from care_model.core.wai import load_form

        if source not in DRAFT_SOURCES:
            raise CareError(f"Unknown draft source {source!r}.", f"Use one of {', '.join(DRAFT_SOURCES)}.")
        if score in (None, ""):
            raise CareError("No score to draft a rationale for.", "Choose a score on the card first.")
        self._ready(session_id)
        targets = check_targets({item: score}, load_form(self.repo.get_session(session_id).form))
        return self._enqueue(session_id, actor, kind="draft", items=sorted(targets), source=source,
                             targets={str(i): v for i, v in targets.items()})  # JSON-ready: str keys

    def _ready(self, session_id: str) -> None:
        if self.predictor is None:
            raise CareError("No model is loaded in this app.", "Start the app with --model (the default is SmolLM2).")
        if self._closed:
            raise CareError("The app is shutting down.", "Try again after it restarts.")
        self.repo.get_session(session_id)  # NotFoundError before anything is queued

    def _enqueue(self, session_id: str, actor: str, *, kind: str = "predict", items=None, scores_only=False,
                 targets=None, source=None) -> dict:
        self._ready(session_id)
        with self._lock:
            for jid in reversed(self._order):
                j = self._jobs[jid]
                if (j["session_id"] == session_id and j["state"] in ACTIVE and j["kind"] == kind and j["items"] == items
                        and j["scores_only"] == scores_only and j["targets"] == targets and j["source"] == source):
                    return copy.deepcopy(j)
            job = {"id": uuid.uuid4().hex[:12], "kind": kind, "session_id": session_id, "items": items,
                   "scores_only": bool(scores_only), "targets": targets, "source": source,
                   "state": "queued", "progress": 0.0, "message": "waiting for the worker", "actor": actor,
                   "model_version": self.model_version, "created_at": now_iso(), "started_at": None,
                   "finished_at": None, "predictions": 0, "error": None, "result": None}
            self._jobs[job["id"]] = job
            self._order.append(job["id"])
            self._trim()
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name="care-predict-worker", daemon=True)
                self._thread.start()
        self._queue.put(job["id"])
        return copy.deepcopy(job)

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job else None

    def jobs(self, session_id: str | None = None, *, active_only: bool = False, kind: str | None = None) -> list[dict]:
        """Jobs newest first, optionally of one session, one kind or only those waiting or running."""
        with self._lock:
            out = [copy.deepcopy(self._jobs[j]) for j in reversed(self._order)
                   if (session_id is None or self._jobs[j]["session_id"] == session_id)
                   and (kind is None or self._jobs[j]["kind"] == kind)
                   and (not active_only or self._jobs[j]["state"] in ACTIVE)]
        return out

    def latest(self, session_id: str, kind: str = "predict") -> dict | None:
        found = self.jobs(session_id, kind=kind)
        return found[0] if found else None

    def wait(self, job_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job["state"] not in ACTIVE:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still {self.get(job_id)['state']} after {timeout} s")

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; the running one finishes in the background (daemon thread)."""
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # ----- worker ------------------------------------------------------------------------
    def _trim(self) -> None:
        while len(self._order) > self._keep:
            old = next((j for j in self._order if self._jobs[j]["state"] not in ACTIVE), None)
            if old is None:
                return
            self._order.remove(old)
            del self._jobs[old]

    def _update(self, job_id: str, **changes) -> None:
        with self._lock:
            self._jobs[job_id].update(changes)

    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._run(job_id)

    def _run(self, job_id: str) -> None:
        job = self.get(job_id)
        self._update(job_id, state="running", started_at=now_iso(), message="loading the session")

        def progress(fraction: float, message: str = "") -> None:
            self._update(job_id, progress=max(0.0, min(1.0, float(fraction))), message=str(message)[:120])

        try:
            session = self.repo.get_session(job["session_id"])
            if job["kind"] == "draft":
                targets = {int(i): v for i, v in job["targets"].items()}
                preds = self.predictor.draft(session, targets, source=job["source"], progress=progress)
            else:
                preds = self.predictor.predict_session(session, scores_only=job["scores_only"], items=job["items"],
                                                       progress=progress)
            preds = [p if not p.id or self.repo.get_prediction(p.session_id, p.id) is None
                     else replace(p, id=uuid.uuid4().hex) for p in preds]
            n = self.repo.add_predictions(preds)
            version = preds[0].model_version if preds else self.model_version
            result = [{"item": p.item, "score": p.drafted_for_score, "source": p.draft_source, "prediction_id": p.id,
                       "rationale": p.rationale, "evidence": list(p.evidence), "parse_status": p.parse_status,
                       "parse_error": p.parse_error, "unsupported_quotes": list(p.unsupported_quotes)}
                      for p in preds] if job["kind"] == "draft" else None
            self._update(job_id, state="done", progress=1.0, message="done", predictions=n, model_version=version,
                         finished_at=now_iso(), result=result)
        except Exception as err:  # noqa: BLE001 - a failed job must not kill the worker
            text = str(err) if isinstance(err, CareError) else f"{type(err).__name__} (see the server log)"
            log.warning("%s job %s failed: %s", job["kind"], job_id, type(err).__name__)
            self._update(job_id, state="failed", error=text, message="failed", finished_at=now_iso())
