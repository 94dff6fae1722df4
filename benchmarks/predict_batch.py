r"""A batch of sessions through one backend into a store, timed per session (progress, resume).

Runs the path of ``care predict`` (:func:`care_model.jobs.predict.predict_into_store`: pending
sessions only, so a second run resumes where the first stopped) for ``--backend engine`` or
``--backend vllm`` and prints one JSON object: the model load time (separately), the seconds per
session after loading, sessions per minute, the threads and the counts. ``--session-batch B`` batches
B sessions per decode step in the engine (cross-session batching, care_model.inference.batch);
``--threads N|all`` sets the engine's torch threads and vLLM's (``CARE_VLLM_THREADS``) alike.

**The fair comparison** (``--fair``): the runs named (``engine``, ``engine-batched``, ``vllm``), each in a
process of its own on a fresh store, one after the other (never two at once), in an order rotated by
``--rotate``, all on the same ``--threads``; then the stores are compared item by item with the first
run's (same score, same text) and the throughputs set side by side::

    nice -n 5 .venv/bin/python -m benchmarks.predict_batch --fair engine,engine-batched,vllm --threads all \
        --session-batch 4 --store /tmp/fair --json > fair.json

One run alone (its store is made with the 23 sample sessions when it does not exist)::

    .venv/bin/python -m benchmarks.predict_batch --backend engine --store /tmp/b-engine --session-batch 4 --json
    .venv/bin/python -m benchmarks.predict_batch --backend vllm --store /tmp/b-vllm --compare /tmp/b-engine --json

CPU smoke (tiny random model, engine only, 2 sessions)::

    python -m benchmarks.predict_batch --fair engine,engine-batched --store /tmp/b-tiny --tiny --limit 3 --json
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
    ap.add_argument("--session-batch", type=int, default=1, help="engine: sessions per decode batch (default 1)")
    ap.add_argument("--threads", default=None, help="CPU threads of the engine and vLLM alike (a number or 'all'; "
                    "default: the engine's cores-1 and vLLM's own choice)")
    ap.add_argument("--fair", default=None, help="comma list of runs (engine, engine-batched, vllm): each alone, one "
                    "after the other, on fresh stores under --store, compared with the first")
    ap.add_argument("--dtype", default="auto", help="engine: the weights' dtype (auto: float32 on CPU; bfloat16 uses "
                    "the CPU's bf16 units where it has them, e.g. AVX512-BF16; the scores may differ from float32's)")
    ap.add_argument("--rotate", type=int, default=0, help="--fair: start the order at this run (rotation)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.fair:
        return fair(args)
    if args.threads:  # before the engine or the vLLM worker starts
        from care_model.inference.engine import resolve_threads

        threads = resolve_threads(args.threads)
        os.environ["CARE_TORCH_THREADS"] = os.environ["CARE_VLLM_THREADS"] = str(threads)

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

            spec = ModelSpec(base=str(build_tiny_model(Path(tempfile.mkdtemp(prefix="care-tiny-")) / "tiny")),
                             dtype=args.dtype)
        else:
            spec = ModelSpec(dtype=args.dtype)
        config = PredictConfig(max_new_tokens=args.max_new_tokens, backend=args.backend,
                               session_batch=args.session_batch if args.backend == "engine" else 1)
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
              "sessions_per_minute": round(60 * done / predict_s, 3) if done else None,
              "session_batch": config.session_batch, "threads": _threads(predictor, args.backend),
              "dtype": args.dtype if args.backend == "engine" else "vLLM's (float32 on CPU)",
              "loadavg_start": load_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()], **quality}
    print(json.dumps(result, indent=1) if args.json else result)
    return result


def _threads(predictor, backend: str):
    if backend == "vllm":
        return os.environ.get("CARE_VLLM_THREADS") or "vLLM's default"
    return predictor.engine().num_threads


RUNS = {"engine": ["--backend", "engine", "--session-batch", "1"], "vllm": ["--backend", "vllm"],
        "engine-batched": ["--backend", "engine"]}  # engine-batched takes --session-batch as given


def fair(args) -> dict:
    """The runs of ``--fair``, each alone in a process of its own, in rotated order; then compared."""
    import subprocess

    names = [n.strip() for n in args.fair.split(",") if n.strip()]
    if not names or set(names) - set(RUNS):
        raise SystemExit(f"--fair takes some of {', '.join(RUNS)}")
    k = args.rotate % len(names)
    order = names[k:] + names[:k]
    common = ["--max-new-tokens", str(args.max_new_tokens), "--session-batch", str(args.session_batch), "--json"]
    common += ["--scores-only"] * args.scores_only + ["--tiny"] * args.tiny + ["--limit", str(args.limit)]
    common += ["--threads", args.threads] if args.threads else []
    common += ["--dtype", args.dtype]
    root = Path(args.store)
    results = {}
    for name in order:
        store = root / name
        cmd = [sys.executable, "-m", "benchmarks.predict_batch", "--store", str(store), *common, *RUNS[name]]
        if name != names[0] and (root / names[0]).exists():
            cmd += ["--compare", str(root / names[0])]
        print(f"[predict_batch] {name}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
        results[name] = json.loads(subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True).stdout)
    if names[0] != order[0]:  # runs before the first one in the rotation: compare them now
        for name in order[:order.index(names[0])]:
            cmd = [sys.executable, "-m", "benchmarks.predict_batch", "--store", str(root / name), *common,
                   *RUNS[name], "--compare", str(root / names[0])]
            results[name]["compared_with"] = json.loads(subprocess.run(
                cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True).stdout).get("compared_with")
    base = results[names[0]]["s_per_session"]
    summary = {"benchmark": "predict_batch_fair", "order": order, "threads": args.threads or "defaults",
               "dtype": args.dtype,
               "session_batch": args.session_batch, "mode": "scores_only" if args.scores_only else "full",
               "sessions_per_minute": {n: r["sessions_per_minute"] for n, r in results.items()},
               f"speedup_vs_{names[0]}": {n: round(base / r["s_per_session"], 3) for n, r in results.items()
                                         if r["s_per_session"]},
               "runs": results}
    print(json.dumps(summary, indent=1) if args.json else summary)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
