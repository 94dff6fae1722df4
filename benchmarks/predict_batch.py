r"""A batch of sessions through one backend into a store, timed per session (progress, resume).

Runs the path of ``care predict`` (:func:`care_model.jobs.predict.predict_into_store`: pending
sessions only, so a second run resumes where the first stopped) for ``--backend engine`` or
``--backend vllm`` and prints one JSON object: the model load time (separately), the seconds per
session after loading, and the counts. Run the two backends at the same time, in the background and
niced, so that both see the same machine load and their ratio is fair::

    nice -n 5 .venv/bin/python -m benchmarks.predict_batch --backend engine --store /tmp/b-engine \
        --scores-only --json > engine.json &
    nice -n 5 .venv/bin/python -m benchmarks.predict_batch --backend vllm --store /tmp/b-vllm \
        --scores-only --json > vllm.json &

Then compare the two stores item by item (same score, same text)::

    .venv/bin/python -m benchmarks.predict_batch --backend vllm --store /tmp/b-vllm --compare /tmp/b-engine --json

CPU smoke (tiny random model, engine only, 2 sessions)::

    python -m benchmarks.predict_batch --backend engine --store /tmp/b-tiny --tiny --limit 2 --json

The store is created with the 23 sample sessions (data/sessions.jsonl) when it does not exist.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.predict_batch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("engine", "vllm"), default="engine")
    ap.add_argument("--store", required=True, help="store folder (made with the sample sessions if missing)")
    ap.add_argument("--scores-only", action="store_true")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--limit", type=int, default=0, help="only the first N sample sessions (0: all)")
    ap.add_argument("--tiny", action="store_true", help="tiny random model (smoke test)")
    ap.add_argument("--compare", default=None, help="another store predicted by the same model version (the other "
                    "backend): report how many items have the same score and the same text")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from care_model.inference.models import ModelSpec
    from care_model.inference.predictor import SAMPLE_SESSIONS, PredictConfig, Predictor
    from care_model.jobs.predict import pending_sessions, predict_into_store
    from store import Repository
    from store.formats import read_files

    load_start = [round(x, 2) for x in os.getloadavg()]
    store = Path(args.store)
    with Repository(store) as repo:
        if not repo.session_ids():
            repo.import_batch(read_files([SAMPLE_SESSIONS], "jsonl"))
        ids = sorted(repo.session_ids())[: args.limit or None]
        if args.tiny:
            from tests.tiny_model import build_tiny_model

            spec = ModelSpec(base=str(build_tiny_model(Path(tempfile.mkdtemp(prefix="care-tiny-")) / "tiny")))
        else:
            spec = ModelSpec()
        config = PredictConfig(max_new_tokens=args.max_new_tokens, backend=args.backend)
        predictor = Predictor(spec, config)
        todo = pending_sessions(repo, predictor.model_version, ids, scores_only=args.scores_only)
        t0 = time.perf_counter()
        load_s = 0.0
        if todo:  # load first, so that the per-session time is prediction only
            if args.backend == "vllm":
                predictor.vllm().start()
            else:
                predictor.engine()
            load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            counts = predict_into_store(repo, predictor, ids, scores_only=args.scores_only)
        finally:
            predictor.close()
        predict_s = time.perf_counter() - t1
        preds = [p for sid in ids for p in repo.predictions(sid, predictor.model_version)]
        stored = len(preds)
        quality = {"decoding": dict(collections.Counter(p.decoding for p in preds)),
                   "with_linked_quote": sum(bool(p.evidence) and not p.unsupported_quotes for p in preds),
                   "unsupported_quotes": sum(len(p.unsupported_quotes) for p in preds),
                   "truncated": sum(bool(p.truncated) for p in preds)}
        if args.compare:
            with Repository(Path(args.compare), create=False) as other:
                theirs = {(p.session_id, p.item): p for sid in ids
                          for p in other.predictions(sid, predictor.model_version)}
            pairs = [(p, theirs[(p.session_id, p.item)]) for p in preds if (p.session_id, p.item) in theirs]
            max_diff = max((abs(x - y) for a, b in pairs for x, y in zip(a.probs or [], b.probs or [])), default=0.0)
            quality["compared_with"] = {
                "store": str(args.compare), "items": len(pairs),
                "same_score": sum(a.score == b.score for a, b in pairs),
                "same_text": sum(a.raw_output == b.raw_output for a, b in pairs),
                "max_option_prob_diff": float(f"{max_diff:.3g}")}
    done = counts["sessions"]
    result = {"benchmark": "predict_batch", "backend": args.backend, "model_version": predictor.model_version,
              "mode": "scores_only" if args.scores_only else "full", "max_new_tokens": args.max_new_tokens,
              "sessions_asked": len(ids), "sessions_predicted": done, "skipped_resumed": counts["skipped"],
              "predictions": counts["predictions"], "parse_failures": counts["parse_failures"],
              "predictions_in_store": stored, "load_s": round(load_s, 1), "predict_s": round(predict_s, 1),
              "s_per_session": round(predict_s / done, 2) if done else None,
              "loadavg_start": load_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()], **quality}
    print(json.dumps(result, indent=1) if args.json else result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
