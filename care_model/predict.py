"""Predict a session's 12 items into model suggestions, and the `predict` command.

:class:`Predictor` ties the parts together: the paper's prompt (:mod:`care_model.prompt`), the
fast shared-prefix engine (:mod:`care_model.engine`), the robust parser (:mod:`care_model.parse`)
and evidence linking (:mod:`care_model.evidence`). The model is loaded lazily, once per process
(:func:`care_model.models.get_model`), on the first prediction; constructing a Predictor is cheap
and its ``model_version`` is known without loading.

Every :class:`~care_model.records.Prediction` names the model version that made it and the hash of
its exact prompt; the option probabilities at the score position give ``probs``,
``expected_score`` and, in scores-only mode, the score itself. An answer that cannot be parsed is
stored with ``parse_status="failed"``, its raw text and the reason; it never stops a run.

CPU smoke (the embedded SmolLM2 on one sample session; ``python -m store import --store /tmp/s
--format jsonl data/sessions.jsonl`` first)::

    python -m care_model.predict --store /tmp/s --session sample-en-01 --scores-only
    python -m care_model.predict --store /tmp/s --session sample-en-01 --draft-for client

Real use (the embedded default, or a local Llama-3.1-8B-Instruct with a LoRA adapter on a GPU)::

    python -m care_model.predict --store care_store
    python -m care_model.predict --store care_store --model /models/Llama-3.1-8B-Instruct --adapter runs/r3/adapter
    python -m care_model.predict --samples          # regenerate data/sample_predictions.jsonl
    python -m care_model.predict --store care_store --backend vllm   # vLLM worker (`make setup-vllm` first)
    python -m care_model.predict --samples --draft-for client   # ... with drafts for the clients' scores
    python -m care_model.predict --store care_store --draft-for expert --session ID   # drafts for the expert labels
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .backends import BACKENDS, check_backend
from .backends.common import FREE_DECODING, LOW_OPTION_MASS, build_prompt, to_predictions  # noqa: F401 (re-export)
from .calibration import CALIBRATIONS, DEFAULT_CALIBRATION, check_calibration
from .errors import CareError
from .models import ModelSpec, get_model, model_version_id
from .predict_modes import calibrate_predictions, draft_into_store, draft_session
from .prompt import build_session_prompt
from .records import Prediction, Session
from .wai import load_form

Progress = Callable[[float, str], None]
ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SESSIONS = ROOT / "data" / "sessions.jsonl"
SAMPLE_PREDICTIONS = ROOT / "data" / "sample_predictions.jsonl"


@dataclass
class PredictConfig:
    """How predictions are made (defaults suit the CPU demo)."""

    max_new_tokens: int = field(default=96, metadata={"help": "Cap on the rationale's length in tokens."})
    max_prompt_tokens: int = field(default=8192, metadata={"help": (
        "Context budget for the prompt (the paper cuts at 8,192); the model's own limit applies if smaller. "
        "Longer transcripts keep their opening and most recent turns (see care_model.prompt).")})
    perspective: str = field(default="client", metadata={"help": "Answer as the 'client' (WAI-SR) or the 'counselor'."})
    fast: bool = field(default=True, metadata={"help": "Shared-prefix batched engine (False: 12 independent generations)."})
    calibration: str = field(default=DEFAULT_CALIBRATION, metadata={"help": (
        "Option probabilities: 'content-free' divides out the model's prior for each item (contextual "
        "calibration, care_model.calibration; the expected score and the queue's uncertainty use the "
        "calibrated distribution) or 'none'.")})
    decoding: str = field(default="grounded", metadata={"help": (
        "'grounded': score = argmax option, quotes constrained to verbatim spans of the item's most relevant "
        "turns (care_model.grounding); 'free': the model's unconstrained answer.")})
    candidate_turns: int = field(default=8, metadata={"help": "Grounded decoding: turns each item may quote (top-k)."})
    backend: str = field(default="engine", metadata={"help": (
        "'engine' (our shared-prefix engine, in process) or 'vllm' (vLLM in a worker process in its own "
        "venv: `make setup-vllm`; grounded decoding runs inside vLLM as a logits processor; see care_model.backends).")})
    tensor_parallel: int = field(default=1, metadata={"help": "vLLM backend: GPUs per model replica."})
    data_parallel: int = field(default=1, metadata={"help": "vLLM backend: model replicas (worker processes)."})

    def __post_init__(self):
        check_calibration(self.calibration)
        check_backend(self.backend)


class Predictor:
    """Makes model suggestions for sessions. Thread-safe; the model loads on first use."""

    def __init__(self, spec: ModelSpec | None = None, config: PredictConfig | None = None, *,
                 model_version: str | None = None):
        self.spec = spec or ModelSpec()
        self.config = config or PredictConfig()
        self._version = model_version
        self._engine = None
        self._vllm = None
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        if self._version is None:
            self._version = model_version_id(self.spec)
        return self._version

    @property
    def loaded(self) -> bool:
        return self._engine is not None or (self._vllm is not None and self._vllm.loaded)

    def vllm(self):
        """The vLLM backend (worker processes in the vLLM venv, care_model.backends.vllm_backend)."""
        with self._lock:
            if self._vllm is None:
                from .backends.vllm_backend import VllmBackend

                self._vllm = VllmBackend(self.spec, self.config, model_version=self.model_version)
            return self._vllm

    def close(self) -> None:
        """Stop the vLLM worker processes, if any (the engine needs no closing)."""
        if self._vllm is not None:
            self._vllm.close()

    def engine(self):
        with self._lock:
            if self._engine is None:
                from .engine import Engine

                self._engine = Engine(get_model(self.spec))
            return self._engine

    def decoder(self):
        """The configured backend's model side for grounded decoding (``tokenizer``,
        ``stop_token_ids``, ``option_token_ids(language)``): the engine, or the vLLM backend."""
        return self.vllm() if self.config.backend == "vllm" else self.engine()

    # ------------------------------------------------------------------ prompts
    def session_prompt(self, session: Session, items=None, *, builder=build_session_prompt, **extra):
        """The session's prompt for this model (``builder``: build_session_prompt, or
        care_model.drafting.build_draft_prompt with ``targets=``)."""
        if self.config.backend == "vllm":
            backend = self.vllm()
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
        if self.config.backend == "vllm":
            return self.vllm().run(prompt, scores_only=scores_only, max_new_tokens=max_new, rows=constraints)
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
        prompt = self.session_prompt(session, items)
        rows, ground_warnings, decoding = {}, [], "free"
        if not scores_only:
            rows, ground_warnings = grounding_rows(self.decoder(), session, prompt.suffixes, self.config)
            if rows and self.config.calibration == "content-free":
                calibrated_score_rule(self, session, rows)
            if self.config.backend == "vllm":  # free decoding in vLLM: then the quote check (labelled)
                decoding = FREE_DECODING
        outputs = self.run_prompt(prompt, scores_only=scores_only, language=session.language,
                                  progress=lambda f, m: report(0.02 + 0.96 * f, m), constraints=rows or None)
        preds = to_predictions(session, prompt, outputs, model_version=self.model_version, config=self.config,
                               scores_only=scores_only, decoding=decoding, rows=rows, extra_warnings=ground_warnings)
        if self.config.calibration == "content-free":
            calibrate_predictions(self, session, preds)
        report(1.0, "done")
        return preds

    def draft(self, session: Session, targets: dict, *, source: str = "client",
              progress: Progress | None = None) -> list[Prediction]:
        """Rationales written for given scores (CARE's drafting, section 4.2): ``targets`` is
        ``{item: score}``, ``source`` "client" (self-report) or "expert" (label). Returns one
        ``mode="draft"`` Prediction per target item with ``score == drafted_for_score == target``
        and ``draft_source``; the model's own suggestions are untouched (see care_model.predict_modes)."""
        return draft_session(self, session, targets, source=source, progress=progress)

    def predict_many(self, sessions: Iterable[Session], *, scores_only: bool = False):
        """(session, predictions) per session, as each finishes (the vLLM backend spreads the
        sessions over its data-parallel workers; the engine goes one by one)."""
        def one(session):
            return self.predict_session(session, scores_only=scores_only)

        if self.config.backend == "vllm":
            yield from self.vllm().spread(sessions, one)
            return
        for session in sessions:
            yield session, one(session)


def grounding_rows(model, session: Session, items: Iterable, config: PredictConfig) -> tuple[dict, list[str]]:
    """Grounded decoding's row states for ``items`` ({} with free decoding): each item may quote its
    ``config.candidate_turns`` most relevant client turns (:mod:`care_model.relevance`). ``model``:
    :meth:`Predictor.decoder` (the engine or the vLLM backend)."""
    if config.decoding == "free":
        return {}, []
    if config.decoding != "grounded":
        raise CareError(f"Unknown decoding {config.decoding!r}.", "Use 'grounded' or 'free'.")
    if int(config.candidate_turns) < 1:
        raise CareError(f"candidate_turns must be at least 1 (got {config.candidate_turns}).",
                        "Pass --candidate-turns 8 (or another positive number).")
    from .grounding import GroundingConfig, build_rows, vocabulary_for
    from .relevance import candidate_turns

    form = load_form(session.form)
    texts = {i: form.item_text(i, config.perspective, session.language) for i in items}
    cands, warnings = candidate_turns(session, texts, k=config.candidate_turns)
    vocab = vocabulary_for(model.tokenizer, model.stop_token_ids)
    rows = build_rows(vocab, session.turns, cands, model.option_token_ids(session.language),
                      language=session.language, config=GroundingConfig(k=config.candidate_turns))
    return rows, warnings


def calibrated_score_rule(predictor, session: Session, rows: dict) -> None:
    """With contextual calibration, a grounded row writes the argmax of the *calibrated* distribution."""
    from .calibration import CalibratedArgmax
    from .predict_modes import content_free_probs

    form = load_form(session.form)
    prior, points = content_free_probs(predictor, form, session.language), form.scale.points
    for item, row in rows.items():
        if item in prior:
            row.score_rule = CalibratedArgmax(prior[item], points)


# ---------------------------------------------------------------------- the store side
def pending_sessions(repo, model_version: str, session_ids: Iterable[str] | None = None, *,
                     scores_only: bool = False, force: bool = False) -> list[str]:
    """Sessions that still need predictions from ``model_version`` (resume: the rest are skipped).

    A session counts as done when every item of its form has a current prediction of that
    version in the wanted mode (a full prediction also serves a scores-only request).
    """
    ids = list(session_ids) if session_ids else repo.session_ids()
    if force:
        return ids
    todo = []
    for sid in ids:
        form = load_form(repo.get_session(sid).form)
        have = {p.item for p in repo.predictions(sid, model_version) if scores_only or p.mode == "full"}
        if not set(form.item_ids) <= have:
            todo.append(sid)
    return todo


def predict_into_store(repo, predictor: Predictor, session_ids: Iterable[str] | None = None, *,
                       scores_only: bool = False, force: bool = False, show_progress: bool = True) -> dict:
    """Predict pending sessions and append the suggestions to the store; returns counts."""
    from tqdm import tqdm

    todo = pending_sessions(repo, predictor.model_version, session_ids, scores_only=scores_only, force=force)
    counts = {"model_version": predictor.model_version, "sessions": 0, "predictions": 0, "parse_failures": 0,
              "skipped": (len(list(session_ids)) if session_ids else len(repo.session_ids())) - len(todo)}
    bar = tqdm(total=len(todo), desc="predicting", unit="session", disable=not show_progress, file=sys.stderr)
    for session, preds in predictor.predict_many((repo.get_session(sid) for sid in todo), scores_only=scores_only):
        repo.add_predictions(preds)
        bar.set_postfix_str(session.id)
        bar.update()
        counts["sessions"] += 1
        counts["predictions"] += len(preds)
        counts["parse_failures"] += sum(p.parse_status == "failed" for p in preds)
    return counts


def write_sample_predictions(out: Path = SAMPLE_PREDICTIONS, spec: ModelSpec | None = None,
                             show_progress: bool = True, *, config: PredictConfig | None = None,
                             draft_for: str | None = None) -> dict:
    """Regenerate the sample predictions: the sample sessions through the predict command's own
    path, in a temporary store, then every prediction written to ``out`` (one JSON per line).
    With ``draft_for`` ("client"), each item with a target also gets a drafted rationale
    (``mode="draft"``, a separate prediction)."""
    from store import Repository
    from store.formats import read_files

    predictor = Predictor(spec, config)
    with tempfile.TemporaryDirectory(prefix="care-samples-") as tmp, Repository(Path(tmp) / "store") as repo:
        repo.import_batch(read_files([SAMPLE_SESSIONS], "jsonl"))
        counts = predict_into_store(repo, predictor, show_progress=show_progress)
        if draft_for:
            counts["drafts"] = draft_into_store(repo, predictor, None, draft_for, show_progress=show_progress)["drafts"]
        lines = [json.dumps(p.to_dict(), ensure_ascii=False) for sid in repo.session_ids()
                 for p in repo.predictions(sid, predictor.model_version, history=True)]
    from store.storage import replace_file

    replace_file(Path(out), ("\n".join(lines) + "\n").encode("utf-8"))
    counts["written"] = len(lines)
    counts["out"] = str(out)
    return counts


def active_spec(repo) -> ModelSpec | None:
    """The spec of the store's active model version, or None when none was promoted."""
    from .versions import active_setting

    return _spec_or_none(active_setting(repo))


def _spec_or_none(doc: dict | None) -> ModelSpec | None:
    return ModelSpec(base=doc["base"], adapter=doc.get("adapter") or None) if doc and doc.get("base") else None


# ---------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m care_model.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="store folder to read sessions from and write predictions into")
    ap.add_argument("--session", action="append", default=None, help="only this session (repeatable)")
    ap.add_argument("--model", default=None, help="base model: local folder, 'smollm2' or hub id "
                    "(default: the store's active version, else the embedded SmolLM2)")
    ap.add_argument("--adapter", default=None, help="LoRA adapter folder")
    ap.add_argument("--scores-only", action="store_true", help="scores and probabilities only, no rationale")
    ap.add_argument("--max-new-tokens", type=int, default=PredictConfig.max_new_tokens)
    ap.add_argument("--decoding", choices=("grounded", "free"), default=PredictConfig.decoding,
                    help="grounded (default): score = the argmax option, quotes verbatim from the item's most "
                         "relevant client turns; free: the model's unconstrained answer")
    ap.add_argument("--candidate-turns", type=int, default=PredictConfig.candidate_turns,
                    help="grounded decoding: how many turns each item may quote (default %(default)s)")
    ap.add_argument("--perspective", choices=("client", "counselor"), default="client")
    ap.add_argument("--calibration", choices=CALIBRATIONS, default=DEFAULT_CALIBRATION,
                    help="option-probability calibration (default: the one the sample measurement favoured)")
    ap.add_argument("--draft-for", choices=("client", "expert"), default=None,
                    help="instead of predicting, draft a rationale for each item's target score: the client's "
                         "self-report or the current expert label (stored as mode 'draft' predictions)")
    ap.add_argument("--force", action="store_true", help="predict again even if this version already did")
    ap.add_argument("--backend", choices=BACKENDS, default="engine",
                    help="'engine' (in process, default) or 'vllm' (worker in .venv-vllm: `make setup-vllm`; "
                         "the same grounded decoding, as a vLLM logits processor)")
    ap.add_argument("--tensor-parallel", type=int, default=1, help="vLLM: GPUs per model replica (default 1)")
    ap.add_argument("--data-parallel", type=int, default=1, help="vLLM: model replicas, sessions spread over them")
    ap.add_argument("--samples", action="store_true", help=f"regenerate {SAMPLE_PREDICTIONS.relative_to(ROOT)}")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    return ap


def run(argv=None) -> dict:
    args = _parser().parse_args(argv)
    config = PredictConfig(max_new_tokens=args.max_new_tokens, perspective=args.perspective,
                           calibration=args.calibration, decoding=args.decoding, candidate_turns=args.candidate_turns,
                           backend=args.backend, tensor_parallel=args.tensor_parallel, data_parallel=args.data_parallel)
    if args.samples:
        return write_sample_predictions(config=config, draft_for=args.draft_for)
    if not args.store:
        raise CareError("No store given.", "Pass --store DIR (or --samples to regenerate the sample predictions).")
    from store import Repository

    with Repository(args.store, create=False) as repo:
        if args.model or args.adapter:
            spec = ModelSpec(base=args.model or "smollm2", adapter=args.adapter)
        else:
            spec = active_spec(repo) or ModelSpec()
        predictor = Predictor(spec, config)
        try:
            if args.draft_for:
                return draft_into_store(repo, predictor, args.session, args.draft_for)
            return predict_into_store(repo, predictor, args.session, scores_only=args.scores_only, force=args.force)
        finally:
            predictor.close()


def main(argv=None) -> int:
    try:
        counts = run(argv)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if "--json" in (argv if argv is not None else sys.argv[1:]):
        print(json.dumps(counts))
    else:
        print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
