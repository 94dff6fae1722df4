"""``care predict``: predict a session's 12 items into model suggestions, and the `predict` command.

CPU smoke (the embedded SmolLM2 on one sample session; ``care store import --store /tmp/s
--format jsonl data/sessions.jsonl`` first)::

    care predict --store /tmp/s --session sample-en-01 --scores-only
    care predict --store /tmp/s --session sample-en-01 --draft-for client

Real use (the embedded default, or a local Llama-3.1-8B-Instruct with a LoRA adapter on a GPU)::

    care predict --store care_store
    care predict --store care_store --model /models/Llama-3.1-8B-Instruct --adapter runs/r3/adapter
    care predict --samples          # regenerate data/sample_predictions.jsonl
    care predict --store care_store --backend vllm   # vLLM worker (`make setup-vllm` first)
    care predict --store care_store --backend openai --base-url http://gpu-01:8000/v1 \\
        --served-model meta-llama/Llama-3.1-8B-Instruct --model /models/Llama-3.1-8B-Instruct  # a served model
    care predict --samples --draft-for client   # ... with drafts for the clients' scores
    care predict --store care_store --draft-for expert --session ID   # drafts for experts' labels


What it does: :mod:`care_model.inference.predictor`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from care_model.core.errors import CareError
from care_model.core.wai import load_form
from care_model.inference.backends.flags import add_backend_args, backend_settings
from care_model.inference.models import ModelSpec
from care_model.inference.modes import draft_into_store
from care_model.inference.predictor import ROOT, SAMPLE_PREDICTIONS, SAMPLE_SESSIONS, PredictConfig, Predictor
from care_model.text.calibration import SETTINGS, VERSION


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
    from store.files import replace_file

    replace_file(Path(out), ("\n".join(lines) + "\n").encode("utf-8"))
    counts["written"] = len(lines)
    counts["out"] = str(out)
    return counts


def active_spec(repo) -> ModelSpec | None:
    """The spec of the store's active model version, or None when none was promoted."""
    from care_model.training.versions import active_setting

    return _spec_or_none(active_setting(repo))


def _spec_or_none(doc: dict | None) -> ModelSpec | None:
    return ModelSpec(base=doc["base"], adapter=doc.get("adapter") or None) if doc and doc.get("base") else None


# ---------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="store folder to read sessions from and write predictions into")
    ap.add_argument("--session", action="append", default=None, help="only this session (repeatable)")
    ap.add_argument("--model", default=None, help="base model: local folder, 'smollm2' or hub id "
                    "(default: the store's active version, else the embedded SmolLM2)")
    ap.add_argument("--adapter", default=None, help="LoRA adapter folder")
    ap.add_argument("--scores-only", action="store_true", help="scores and probabilities only, no rationale")
    ap.add_argument("--max-new-tokens", type=int, default=PredictConfig.max_new_tokens)
    ap.add_argument("--decoding", choices=("grounded", "free"), default=None,
                    help="grounded (default; with --backend openai only with --server-grounding): score = the argmax "
                         "option, quotes verbatim from the item's most relevant client turns; free: the model's "
                         "unconstrained answer")
    ap.add_argument("--candidate-turns", type=int, default=PredictConfig.candidate_turns,
                    help="grounded decoding: how many turns each item may quote (default %(default)s)")
    ap.add_argument("--perspective", choices=("client", "counselor"), default="client")
    ap.add_argument("--calibration", choices=SETTINGS, default=VERSION,
                    help="option-probability calibration: 'version' (default) is the model version's own choice "
                         "recorded in the store (care versions choose-calibration; none when it has none); "
                         "'none' or 'content-free' override it (content-free stores both distributions)")
    ap.add_argument("--draft-for", choices=("client", "expert"), default=None,
                    help="instead of predicting, draft a rationale for each item's target score: the client's "
                         "self-report or the current expert label (stored as mode 'draft' predictions)")
    ap.add_argument("--force", action="store_true", help="predict again even if this version already did")
    add_backend_args(ap)  # --backend engine|vllm|openai and the served model's flags (--base-url ...)
    ap.add_argument("--tensor-parallel", type=int, default=1, help="vLLM: GPUs per model replica (default 1)")
    ap.add_argument("--data-parallel", type=int, default=1, help="vLLM: model replicas, sessions spread over them")
    ap.add_argument("--session-batch", type=int, default=PredictConfig.session_batch,
                    help="engine: sessions whose decode steps run together (cross-session batching; same tokens; "
                         "default %(default)s = one at a time)")
    ap.add_argument("--threads", default=None,
                    help="engine on CPU: torch threads, a number or 'all' (default: one core fewer than the machine "
                         "has, for a shared machine; 'all' when nobody else uses it)")
    ap.add_argument("--samples", action="store_true", help=f"regenerate {SAMPLE_PREDICTIONS.relative_to(ROOT)}")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    return ap


def run(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.threads is not None:  # read by the Engine when it loads (care_model.inference.engine.resolve_threads)
        import os

        os.environ["CARE_TORCH_THREADS"] = str(args.threads)
    config = PredictConfig(max_new_tokens=args.max_new_tokens, perspective=args.perspective,
                           calibration=args.calibration, candidate_turns=args.candidate_turns,
                           tensor_parallel=args.tensor_parallel, data_parallel=args.data_parallel,
                           session_batch=args.session_batch, **backend_settings(args, decoding=args.decoding))
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
        from care_model.inference.models import model_version_id
        from care_model.training.calibration_choice import version_calibration

        predictor = Predictor(spec, config, version_calibration=version_calibration(repo, model_version_id(spec)))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
