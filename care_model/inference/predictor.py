"""Predict a session's 12 items into model suggestions, and the `predict` command.

:class:`Predictor` ties the parts together: the paper's prompt (:mod:`care_model.text.prompt`), the
fast shared-prefix engine (:mod:`care_model.inference.engine`), the robust parser (:mod:`care_model.text.parse`)
and evidence linking (:mod:`care_model.text.evidence`). The model is loaded lazily, once per process
(:func:`care_model.inference.models.get_model`), on the first prediction; constructing a Predictor is cheap
and its ``model_version`` is known without loading.

Every :class:`~care_model.core.records.Prediction` names the model version that made it and the hash of
its exact prompt; the option probabilities at the score position give ``probs``,
``expected_score`` and, in scores-only mode, the score itself. An answer that cannot be parsed is
stored with ``parse_status="failed"``, its raw text and the reason; it never stops a run.

The command line: ``care predict`` (:mod:`care_model.jobs.predict`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from care_model.core.records import Prediction, Session
from care_model.inference.backends import check_backend
from care_model.inference.backends.common import FREE_DECODING, build_prompt, to_predictions
from care_model.inference.models import ModelSpec, get_model, model_version_id
from care_model.inference.modes import calibrate_predictions, calibrated_score_rule, draft_session, grounding_rows
from care_model.text.calibration import CALIBRATIONS, VERSION, check_calibration
from care_model.text.prompt import build_session_prompt

Progress = Callable[[float, str], None]
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SESSIONS = ROOT / "data" / "sessions.jsonl"
SAMPLE_PREDICTIONS = ROOT / "data" / "sample_predictions.jsonl"


@dataclass
class PredictConfig:
    """How predictions are made (defaults suit the CPU demo)."""

    max_new_tokens: int = field(default=96, metadata={"help": "Cap on the rationale's length in tokens."})
    max_prompt_tokens: int = field(default=8192, metadata={"help": (
        "Context budget for the prompt (the paper cuts at 8,192); the model's own limit applies if smaller. "
        "Longer transcripts keep their opening and most recent turns (see care_model.text.prompt).")})
    perspective: str = field(default="client", metadata={"help": "Answer as the 'client' (WAI-SR) or the 'counselor'."})
    fast: bool = field(default=True,
                       metadata={"help": "Shared-prefix batched engine (False: 12 independent generations)."})
    calibration: str = field(default=VERSION, metadata={"help": (
        "Option probabilities: 'version' (default) applies the model version's own recorded choice "
        "(care_model.training.calibration_choice; 'none' when it has none), 'content-free' divides out the "
        "model's prior for each item (contextual calibration, care_model.text.calibration; the expected score "
        "and the queue's uncertainty use the calibrated distribution), 'none' keeps the raw probabilities.")})
    decoding: str = field(default="grounded", metadata={"help": (
        "'grounded': score = argmax option, quotes constrained to verbatim spans of the item's most relevant "
        "turns (care_model.text.grounding); 'free': the model's unconstrained answer.")})
    candidate_turns: int = field(default=8, metadata={"help": "Grounded decoding: turns each item may quote (top-k)."})
    backend: str = field(default="engine", metadata={"help": (
        "'engine' (our shared-prefix engine, in process), 'vllm' (vLLM in a worker process in its own "
        "venv: `make setup-vllm`; grounded decoding runs inside vLLM as a logits processor) or 'openai' (a "
        "model served on another machine; see care_model.inference.backends).")})
    tensor_parallel: int = field(default=1, metadata={"help": "vLLM backend: GPUs per model replica."})
    data_parallel: int = field(default=1, metadata={"help": "vLLM backend: model replicas (worker processes)."})
    session_batch: int = field(default=1, metadata={"help": (
        "Engine backend, several sessions: how many sessions share each decode step (cross-session batching, "
        "care_model.inference.batch; 1: one session at a time). Same tokens either way.")})
    token_budget: int = field(default=32768, metadata={"help": (
        "Cross-session batching: K/V slots a batch may hold (each prefix once, per item its suffix and answer).")})
    base_url: str = field(default="", metadata={"help": "openai backend: the server's root, e.g. http://host:8000/v1."})
    served_model: str = field(default="", metadata={"help": "openai backend: the model's name on the server."})
    api_key_env: str = field(default="", metadata={"help": "openai backend: the environment variable with the key."})
    max_concurrency: int = field(default=16, metadata={"help": "openai backend: requests in flight at most."})
    top_logprobs: int = field(default=20, metadata={"help": "openai backend: log-probabilities per position."})

    def __post_init__(self):
        check_calibration(self.calibration)
        check_backend(self.backend)
        if int(self.session_batch) < 1 or int(self.token_budget) < 1:
            from care_model.core.errors import CareError

            raise CareError(f"session_batch ({self.session_batch}) and token_budget ({self.token_budget}) must be "
                            "at least 1.", "Pass --session-batch 1 for one session at a time.")
        if self.backend == "openai" and not (str(self.base_url).strip() and str(self.served_model).strip()):
            from care_model.core.errors import ConfigError

            raise ConfigError("The openai backend needs the server's URL and the served model's name.",
                              "Pass --base-url http://HOST:PORT/v1 --served-model NAME.")


class Predictor:
    """Makes model suggestions for sessions. Thread-safe; the model loads on first use."""

    def __init__(self, spec: ModelSpec | None = None, config: PredictConfig | None = None, *,
                 model_version: str | None = None, version_calibration: str = "none"):
        self.spec = spec or ModelSpec()
        self.config = config or PredictConfig()
        self._version = model_version
        # the version's recorded choice, read by a caller that has the store (none when it has none)
        self.version_calibration = check_calibration(version_calibration or "none", CALIBRATIONS)
        self._engine = None
        self._vllm = None
        self._remote = None
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        if self._version is None:
            self._version = model_version_id(self.spec)
        return self._version

    @property
    def calibration(self) -> str:
        """The calibration applied: the config's forced setting, else this version's recorded choice."""
        return self.version_calibration if self.config.calibration == VERSION else self.config.calibration

    @property
    def loaded(self) -> bool:
        return (self._engine is not None or (self._vllm is not None and self._vllm.loaded)
                or (self._remote is not None and self._remote.loaded))

    @property
    def remote(self) -> bool:
        """Whether predictions come from another process (a vLLM worker or a server): free decoding is then
        labelled free+quote-check."""
        return self.config.backend in ("vllm", "openai")

    def openai(self):
        """The OpenAI-compatible server backend (care_model.inference.backends.openai_backend)."""
        with self._lock:
            if self._remote is None:
                from care_model.inference.backends.openai_backend import OpenAIBackend

                self._remote = OpenAIBackend(self.spec, self.config, model_version=self.model_version)
            return self._remote

    def _backend(self):
        """The vLLM or the server backend (None: the engine)."""
        return {"vllm": self.vllm, "openai": self.openai}.get(self.config.backend, lambda: None)()

    def vllm(self):
        """The vLLM backend (worker processes in the vLLM venv, care_model.inference.backends.vllm_backend)."""
        with self._lock:
            if self._vllm is None:
                from care_model.inference.backends.vllm_backend import VllmBackend

                self._vllm = VllmBackend(self.spec, self.config, model_version=self.model_version)
            return self._vllm

    def close(self) -> None:
        """Stop the vLLM worker processes, if any (the engine needs no closing)."""
        if self._vllm is not None:
            self._vllm.close()
        if self._remote is not None:
            self._remote.close()

    def engine(self):
        with self._lock:
            if self._engine is None:
                from care_model.inference.engine import Engine

                self._engine = Engine(get_model(self.spec))
            return self._engine

    def decoder(self):
        """The configured backend's model side for grounded decoding (``tokenizer``,
        ``stop_token_ids``, ``option_token_ids(language)``): the engine, or the vLLM backend."""
        return self._backend() or self.engine()

    # ------------------------------------------------------------------ prompts
    def session_prompt(self, session: Session, items=None, *, builder=build_session_prompt, **extra):
        """The session's prompt for this model (``builder``: build_session_prompt, or
        care_model.text.drafting.build_draft_prompt with ``targets=``)."""
        backend = self._backend()
        if backend is not None:
            tok, model_max = backend.tokenizer, backend.model_max
        else:
            engine = self.engine()
            tok, model_max = engine.tokenizer, getattr(engine.model.config, "max_position_embeddings", None)
        return build_prompt(tok, session, self.config, model_max=model_max, items=items, builder=builder, **extra)

    def run_prompt(self, prompt, *, scores_only: bool = False, max_new_tokens: int | None = None,
                   language: str = "en", progress: Progress | None = None, constraints=None) -> dict:
        """Raw outputs ``{item: ItemOutput}`` for a session prompt, from the configured backend
        (``constraints``: grounded decoding's rows, ``{item: GroundedRow}``)."""
        max_new = self.config.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        backend = self._backend()
        if backend is not None:
            return backend.run(prompt, scores_only=scores_only, max_new_tokens=max_new, rows=constraints)
        engine = self.engine()
        prefix_ids, suffix_ids = engine.encode_prompt(prompt)
        run = engine.run_session if (self.config.fast and engine.fast_supported) else engine.run_session_naive
        return run(prefix_ids, suffix_ids, max_new_tokens=max_new, scores_only=scores_only, progress=progress,
                   language=language, constraints=constraints)

    # ------------------------------------------------------------------ prediction
    def predict_session(self, session: Session, *, scores_only: bool = False, items: Iterable | None = None,
                        progress: Progress | None = None) -> list[Prediction]:
        """The suggestions for ``items`` (default all 12) of ``session``, in item order."""
        report = progress or (lambda f, m: None)
        report(0.0, "loading the model" if not self.loaded else "building prompts")
        plan = self._plan(session, items, scores_only)
        outputs = self.run_prompt(plan["prompt"], scores_only=scores_only, language=session.language,
                                  progress=lambda f, m: report(0.02 + 0.96 * f, m), constraints=plan["rows"] or None)
        preds = self._finish(session, plan, outputs, scores_only)
        report(1.0, "done")
        return preds

    def _plan(self, session: Session, items, scores_only: bool) -> dict:
        """What a session's run needs before the model runs: its prompt and grounded rows."""
        prompt = self.session_prompt(session, items)
        rows, ground_warnings, decoding = {}, [], "free"
        if not scores_only:
            rows, ground_warnings = grounding_rows(self.decoder(), session, prompt.suffixes, self.config)
            if rows and self.calibration == "content-free":
                calibrated_score_rule(self, session, rows)
            if self.remote:  # free decoding in vLLM or on a server: then the quote check (labelled)
                decoding = FREE_DECODING
        return {"prompt": prompt, "rows": rows, "warnings": ground_warnings, "decoding": decoding}

    def _finish(self, session: Session, plan: dict, outputs: dict, scores_only: bool) -> list[Prediction]:
        preds = to_predictions(session, plan["prompt"], outputs, model_version=self.model_version, config=self.config,
                               scores_only=scores_only, decoding=plan["decoding"], rows=plan["rows"],
                               extra_warnings=plan["warnings"])
        if self.calibration == "content-free":
            calibrate_predictions(self, session, preds)
        return preds

    def predict_batch(self, sessions: list[Session], *, scores_only: bool = False) -> list[list[Prediction]]:
        """The suggestions of several sessions with their decode steps batched together in the engine
        (cross-session batching, :meth:`care_model.inference.engine.Engine.run_sessions`, up to
        ``config.session_batch`` sessions and ``config.token_budget`` K/V slots a batch): the same
        tokens as :meth:`predict_session` one by one, with the decode step's fixed cost shared."""
        from care_model.inference.batch import SessionJob

        if self.config.backend != "engine" or not (self.config.fast and self.engine().fast_supported):
            return [self.predict_session(s, scores_only=scores_only) for s in sessions]
        engine = self.engine()
        plans = [self._plan(s, None, scores_only) for s in sessions]
        jobs = [SessionJob(*engine.encode_prompt(p["prompt"]), constraints=p["rows"] or None, language=s.language)
                for s, p in zip(sessions, plans)]
        outs = dict(engine.run_sessions(jobs, max_new_tokens=self.config.max_new_tokens, scores_only=scores_only,
                                        token_budget=self.config.token_budget,
                                        max_sessions=max(1, self.config.session_batch)))
        return [self._finish(s, p, outs[i], scores_only) for i, (s, p) in enumerate(zip(sessions, plans))]

    def draft(self, session: Session, targets: dict, *, source: str = "client",
              progress: Progress | None = None) -> list[Prediction]:
        """Rationales written for given scores (CARE's drafting, section 4.2): ``targets`` is
        ``{item: score}``, ``source`` "client" (self-report) or "expert" (label). Returns one
        ``mode="draft"`` Prediction per target item with ``score == drafted_for_score == target``
        and ``draft_source``; the model's own suggestions are untouched (see care_model.inference.modes)."""
        return draft_session(self, session, targets, source=source, progress=progress)

    def predict_many(self, sessions: Iterable[Session], *, scores_only: bool = False):
        """(session, predictions) per session, as each finishes (the vLLM backend spreads the
        sessions over its data-parallel workers; the engine goes one by one, or ``config.session_batch``
        sessions at a time through :meth:`predict_batch`)."""
        def one(session):
            return self.predict_session(session, scores_only=scores_only)

        backend = self._backend()
        if backend is not None:
            yield from backend.spread(sessions, one)
            return
        if self.config.session_batch <= 1:
            for session in sessions:
                yield session, one(session)
            return
        group: list[Session] = []
        for session in [*sessions, None]:
            if session is not None:
                group.append(session)
            if group and (session is None or len(group) >= self.config.session_batch):
                yield from zip(group, self.predict_batch(group, scores_only=scores_only))
                group = []
