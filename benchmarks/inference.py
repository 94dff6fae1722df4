"""Inference benchmark: 12-item session prediction, the engine beside its peers on the same CPU threads.

For each of N sample sessions (from data/sessions.jsonl, the ones whose prompt is closest to
1,500 tokens), all in one run, the methods one after another (never two at once) in an order
rotated per session, so CPU noise hits every method alike:

  naive          12 independent ``model.generate`` calls (greedy, rationale up to 64 new tokens)
  fast           Engine.run_session: prefix once, 12 suffixes batched, batched greedy decoding
  grounded       the same under grounded decoding (timed with its candidate-turn ranking)
  naive_scores   12 independent full prefills, last-position logits (scores only)
  scores_and_floor  Engine.run_session(scores_only=True) and one prefill of the prefix alone, alternated twice
  grounded_naive grounded decoding through 12 ``generate`` calls with a logits processor
  hf_sequential  the Hugging Face peer: one prefix cache, copied per item, 12 ``generate`` calls
  hf_batched / hf_batched_scores / hf_batched_grounded  the batched Hugging Face peer: the prefix cache
                 expanded to the 12 items and ONE ``generate`` call (benchmarks/hf_peer.py)
  vllm           vLLM (``--backends engine,vllm``): scores only, free and grounded, each from a cold
                 prefix cache (benchmarks/inference_vllm.py)

**Threads.** ``--threads`` sets the engine's torch threads and vLLM's (``CARE_VLLM_THREADS``) from one
value; the default ``all,1`` measures every core of the machine, then 1 thread each, each setting in
a process of its own, one after the other; every row records its threads. The "HF peer" of a mode is
the faster of its Hugging Face methods; ``peers`` gives the engine's speed-up against vLLM and
against the HF peer for scores only, free and grounded decoding (> 1: the engine is faster).

CPU smoke test (tiny random model, ~1 minute)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.inference --json --tiny --threads 1

The fair run against vLLM (SmolLM2, ``make setup-vllm`` first; about 15 minutes on an idle 2-core machine)::

    HF_HUB_OFFLINE=1 nohup .venv/bin/python -m benchmarks.inference --json --sessions 2 --backends engine,vllm \
        --skip naive,naive_scores,grounded_naive > bench-fair.json &

Measured 2026-11-25 on the shared 2-core CPU (1 torch thread, load average 2-9, SmolLM2 float32,
sample-en-05/06/20, ~1,500 prefix tokens, ~290 generated tokens per session): naive 260.6 s per
session, fast 34.5 s (7.6x); scores only 233.4 s naive vs 24.4 s fast (9.6x); prefill floor
18.9 s (scores only = 1.29x floor); chosen scores 36/36 and greedy texts 36/36 identical.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.bench_sessions import load_sessions as _load_sessions, synthetic_sessions as _synthetic_sessions

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "sessions.jsonl"
METHODS = ("scores_and_floor", "fast", "grounded", "naive_scores", "naive", "grounded_naive", "hf_sequential",
           "hf_batched", "hf_batched_scores", "hf_batched_grounded", "vllm")
# the Hugging Face methods of each mode (the faster is "the HF peer") and what each compares with
HF_PEERS = {"scores_only": ("hf_batched_scores", "naive_scores"), "free": ("hf_sequential", "hf_batched", "naive"),
            "grounded": ("hf_batched_grounded", "grounded_naive")}
ENGINE_KEY = {"scores_only": "fast_scores", "free": "fast", "grounded": "grounded"}
VLLM_KEY = {"scores_only": "vllm_scores", "free": "vllm_free", "grounded": "vllm_grounded"}


def _log(msg: str) -> None:
    print(f"[bench-inference {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _parser():
    ap = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random Llama (smoke test) instead of SmolLM2")
    ap.add_argument("--sessions", type=int, default=3, help="number of sample sessions (default 3)")
    ap.add_argument("--target-tokens", type=int, default=1500, help="pick sessions whose prompt is closest to this")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="rationale cap (default 64)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="sessions JSONL (Session.to_dict lines)")
    ap.add_argument("--base", default=None, help="another base model folder instead of SmolLM2")
    ap.add_argument("--dtype", default="auto", help="model dtype (default auto = float32 on CPU)")
    ap.add_argument("--backends", default="engine", help="'engine' or 'engine,vllm': vLLM measured in the same run, "
                    "one method of the rotation (cold prefix cache; needs `make setup-vllm`)")
    ap.add_argument("--threads", default="all,1", help="CPU threads of the engine AND vLLM, one value or a comma list "
                    "run one after the other ('all' = every core; default %(default)s)")
    ap.add_argument("--candidate-turns", type=int, default=8, help="grounded decoding: turns each item may quote")
    ap.add_argument("--naive-items", type=int, default=0,
                    help="grounded naive path on the first N items only (0: all 12); its time is then per N items")
    ap.add_argument("--skip", default="", help=f"comma-separated methods not to run (of: {', '.join(METHODS)}); "
                    "their figures are null")
    return ap


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    settings = [t.strip() for t in args.threads.split(",") if t.strip()]
    if len(settings) <= 1:
        return measure(args)
    # one process per thread setting, one after the other (torch's and vLLM's threads are per process)
    import subprocess

    rest = [a for i, a in enumerate(argv) if a != "--threads" and (i == 0 or argv[i - 1] != "--threads")
            and not a.startswith("--threads=") and a != "--json"]
    rows = []
    for t in settings:
        _log(f"threads {t}: a process of its own")
        out = subprocess.run([sys.executable, "-m", "benchmarks.inference", *rest, "--threads", t, "--json"],
                             cwd=REPO, stdout=subprocess.PIPE, text=True, check=True).stdout
        rows.append(json.loads(out))
    result = {"benchmark": "inference", "thread_settings": settings, "rows": rows,
              "peers_by_threads": {str(r["threads"]): r["peers"] for r in rows}}
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else result)
    return result


def measure(args) -> dict:
    skip = {m.strip() for m in args.skip.split(",") if m.strip()}
    if skip - set(METHODS) or set(METHODS) <= skip:
        raise SystemExit(f"--skip takes some of {', '.join(METHODS)}")
    if "vllm" not in args.backends.split(","):
        skip.add("vllm")

    t_start = time.perf_counter()
    import torch

    from benchmarks.hf_peer import hf_batched, hf_sequential
    from care_model.inference.engine import Engine, resolve_threads
    from care_model.text.evidence import TranscriptIndex, find_quotes
    from care_model.inference.models import ModelSpec, load_model
    from care_model.text.parse import parse_answer
    from care_model.inference.modes import grounding_rows
    from care_model.inference.predictor import PredictConfig
    from care_model.text.prompt import build_session_prompt

    config = PredictConfig(max_new_tokens=args.max_new_tokens, candidate_turns=args.candidate_turns)
    threads = resolve_threads(args.threads.strip() or None)

    tmp = None
    if args.tiny:
        from tests.tiny_model import build_tiny_model

        tmp = tempfile.TemporaryDirectory(prefix="care-bench-tiny-")
        base = str(build_tiny_model(Path(tmp.name) / "tiny-llama", seed=0))
    else:
        base = args.base or "smollm2"
    t0 = time.perf_counter()
    loaded = load_model(ModelSpec(base=base, dtype=args.dtype))
    load_s = time.perf_counter() - t0
    engine = Engine(loaded, num_threads=threads)
    tok = loaded.tokenizer
    render = lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)  # noqa: E731
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731

    data = Path(args.data)
    if data.is_file():
        pool = _load_sessions(data)
        source = str(data.relative_to(REPO)) if data.is_relative_to(REPO) else str(data)
    else:
        _log(f"{data} not found: using synthetic sessions")
        pool = _synthetic_sessions(count, render, args.target_tokens, args.sessions)
        source = "synthetic"
    sized = []
    for s in pool:
        sp = build_session_prompt(s, render_chat=render)
        n_tokens = count(sp.prefix + max(sp.suffixes.values(), key=len))
        sized.append((abs(n_tokens - args.target_tokens), s.id, s, sp))
    sized.sort(key=lambda x: (x[0], x[1]))
    chosen = sized[: args.sessions]
    if not chosen:
        raise SystemExit(f"no sessions in {data}")

    vllm = None
    if "vllm" not in skip:
        from .inference_vllm import VllmBench

        _log(f"loading the model in vLLM ({threads} threads)")
        vllm = VllmBench(base, args.dtype, threads=threads)
        vllm.warm_up(chosen[0][3])
    # warm-up (first-call allocations, lazy imports, the grounding vocabulary and MiniLM) on a short input
    warm_prefix, warm_suffix = engine.encode_prompt(chosen[0][3])
    engine.run_session(warm_prefix[:64], {1: warm_suffix[1]}, max_new_tokens=2)
    engine.run_session_naive(warm_prefix[:64], {1: warm_suffix[1]}, max_new_tokens=2)
    grounding_rows(engine, chosen[0][2], [1], config)
    if not {"hf_batched", "hf_sequential"} <= skip:
        hf_batched(loaded, engine, warm_prefix[:64], {1: warm_suffix[1], 2: warm_suffix[2]}, 2)

    N = args.max_new_tokens
    totals: dict[str, float] = {}
    per_session = []
    # [agree, compared] per comparison: (name, engine output, other output, what must agree)
    pairs = [("scores", "fast", "naive", "score"), ("scores_only", "fast_scores", "naive_scores", "score"),
             ("text", "fast", "naive", "tokens"), ("grounded", "grounded", "grounded_naive", "tokens"),
             ("hf_sequential", "fast", "hf_sequential", "tokens"), ("hf_batched", "fast", "hf_batched", "tokens"),
             ("hf_batched_scores", "fast_scores", "hf_batched_scores", "score"),
             ("hf_batched_grounded", "grounded", "hf_batched_grounded", "tokens"),
             ("vllm_scores", "fast_scores", "vllm_scores", "score"), ("vllm_free", "fast", "vllm_free", "tokens"),
             ("vllm_grounded", "grounded", "vllm_grounded", "tokens")]
    agree = {name: [0, 0] for name, *_ in pairs}
    prob_diff = {name: 0.0 for name, *_ in pairs}
    grounded_quoted = grounded_unsupported = grounded_argmax = grounded_items = 0
    fast_stats = []
    load_before = os.getloadavg()
    for n_session, (_, sid, session, sp) in enumerate(chosen):
        prefix, suffixes = engine.encode_prompt(sp)
        lang = session.language
        row = {"id": sid, "language": lang, "turns": len(session.turns),
               "prefix_tokens": len(prefix), "suffix_tokens": sum(len(s) for s in suffixes.values()),
               "prompt_tokens_longest_item": len(prefix) + max(len(s) for s in suffixes.values())}
        _log(f"session {sid}: {row['prefix_tokens']} prefix tokens, 12 suffixes {row['suffix_tokens']} tokens")
        res: dict = {}

        def timed(key, fn, *a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            res[key] = (out, time.perf_counter() - t)

        def scores_and_floor():
            # floor and fast scores-only alternate twice and are averaged: both are short, and CPU noise
            # on a shared machine otherwise decides their ratio
            floors, t_sos, own = [], [], []
            for _rep in range(2):
                floors.append(engine.prefill_only(prefix))
                t = time.perf_counter()
                out = engine.run_session(prefix, suffixes, scores_only=True, language=lang)
                t_sos.append(time.perf_counter() - t)
                own.append(engine.last_stats["total_s"] / engine.last_stats["prefill_s"])
            res["floor"] = (None, sum(floors) / 2)
            res["fast_scores"] = (out, sum(t_sos) / 2)
            row["scores_only_over_own_prefill"] = round(sum(own) / 2, 3)

        def fast():
            timed("fast", engine.run_session, prefix, suffixes, max_new_tokens=N, language=lang)
            fast_stats.append(dict(engine.last_stats))

        def with_rows(key, fn, items=None, **k):  # grounded: timed with its candidate-turn ranking and row set-up
            t = time.perf_counter()
            some = {i: suffixes[i] for i in (items or suffixes)}
            rows, _ = grounding_rows(engine, session, some, config)
            res[key] = (fn(prefix, some, max_new_tokens=N, language=lang, constraints=rows, **k),
                        time.perf_counter() - t)

        def hf(key, fn, **k):
            timed(key, fn, loaded, engine, prefix, suffixes, N, language=lang, **k)

        def run_vllm():
            rows = lambda: grounding_rows(vllm.backend, session, suffixes, config)[0]  # noqa: E731
            res.update(vllm.run_modes(sp, max_new_tokens=N, make_rows=rows))

        methods = {
            "scores_and_floor": scores_and_floor, "fast": fast,
            "grounded": lambda: with_rows("grounded", engine.run_session),
            "naive_scores": lambda: timed("naive_scores", engine.run_session_naive, prefix, suffixes,
                                          scores_only=True, language=lang),
            "naive": lambda: timed("naive", engine.run_session_naive, prefix, suffixes, max_new_tokens=N,
                                   language=lang),
            "grounded_naive": lambda: with_rows("grounded_naive", engine.run_session_naive,
                                                list(suffixes)[:args.naive_items or None]),
            "hf_sequential": lambda: hf("hf_sequential", hf_sequential),
            "hf_batched": lambda: hf("hf_batched", hf_batched),
            "hf_batched_scores": lambda: hf("hf_batched_scores", hf_batched, scores_only=True),
            "hf_batched_grounded": lambda: with_rows(
                "hf_batched_grounded",
                lambda p, s, max_new_tokens, **k: hf_batched(loaded, engine, p, s, max_new_tokens, **k)),
            "vllm": run_vllm,
        }
        order = [m for m in methods if m not in skip]
        order = order[n_session % len(order):] + order[:n_session % len(order)]  # rotate per session
        row["order"] = order
        for name in order:
            methods[name]()
        for key, (_, secs) in res.items():
            totals[key] = totals.get(key, 0.0) + secs
        out = {k: v[0] for k, v in res.items()}
        index = TranscriptIndex(session.turns)
        for name, a, b, what in pairs:
            if a not in out or b not in out:
                continue
            for item in out[b]:
                x, y = out[a][item], out[b][item]
                score = what == "score"
                agree[name][0] += (x.argmax_score == y.argmax_score) if score else (x.token_ids == y.token_ids)
                agree[name][1] += 1
                if score:
                    diff = max(abs(p - q) for p, q in zip(x.option_probs, y.option_probs))
                    prob_diff[name] = max(prob_diff[name], diff)
        for g in out.get("grounded", {}).values():
            parsed = parse_answer(g.text, language=lang)
            ev = index.link(parsed.rationale or "")
            grounded_quoted += parsed.ok and bool(find_quotes(parsed.rationale)) and not ev.unsupported
            grounded_unsupported += len(ev.unsupported)
            grounded_argmax += parsed.score == g.argmax_score
            grounded_items += 1
        row.update({f"{k}_s": round(v[1], 3) for k, v in res.items()})
        row.update({f"generated_tokens_{k}": sum(len(o.token_ids) for o in out[k].values())
                    for k in ("fast", "grounded", "vllm_free", "vllm_grounded") if k in out})
        if fast_stats:
            row["fast_phases_s"] = {k: round(fast_stats[-1][k], 3) for k in ("prefill_s", "suffix_s", "decode_s")}
        row.update({f"example_{k}": out[k][1].text[:160] for k in ("fast", "grounded") if k in out})
        per_session.append(row)
        _log(f"session {sid}: " + ", ".join(f"{k} {v[1]:.1f}s" for k, v in res.items()))
    load_after = os.getloadavg()

    n = len(chosen)
    per = {k: v / n for k, v in totals.items()}

    def ratio(a, b, digits=2):
        return round(per[a] / per[b], digits) if a in per and b in per else None

    def agreed(name):
        k, total = agree[name]
        return f"{k}/{total}" if total else None

    peers = {"threads": threads}
    for mode, key in ENGINE_KEY.items():
        hf_times = {m: per[m] for m in HF_PEERS[mode] if m in per
                    and not (m == "grounded_naive" and args.naive_items)}
        best = min(hf_times, key=hf_times.get) if hf_times else None
        peers[mode] = {
            "engine_s": round(per[key], 3) if key in per else None,
            "vllm_s": round(per[VLLM_KEY[mode]], 3) if VLLM_KEY[mode] in per else None,
            "hf_peer": best, "hf_peer_s": round(hf_times[best], 3) if best else None,
            "hf_methods_s": {m: round(v, 3) for m, v in hf_times.items()},
            "engine_speedup_vs_vllm": ratio(VLLM_KEY[mode], key),
            "engine_speedup_vs_hf": ratio(best, key) if best else None,
            "same_as_vllm": agreed(VLLM_KEY[mode]), "same_as_hf_peer": agreed(best) if best in agree else None}
    result = {
        "benchmark": "inference",
        "model": "tiny-random-llama" if args.tiny else loaded.version_id,
        "model_version": loaded.version_id, "dtype": loaded.dtype, "device": loaded.device,
        "threads": threads, "torch_threads": torch.get_num_threads(),
        "vllm_threads": vllm.threads if vllm is not None else None,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "sessions_source": source, "sessions": n, "items_per_session": len(chosen[0][3].suffixes),
        "max_new_tokens": N, "skipped_methods": sorted(skip),
        "s_per_session": {k: round(v, 3) for k, v in per.items()},
        "peers": peers,
        "speedup": ratio("naive", "fast"),
        "scores_only_speedup": ratio("naive_scores", "fast_scores"),
        "scores_only_over_floor": ratio("fast_scores", "floor", 3),
        "grounded_over_free": ratio("grounded", "fast", 3),
        "grounded_naive_items": args.naive_items or len(chosen[0][3].suffixes),
        "agreement": {name: agreed(name) for name in agree if agree[name][1]},
        "max_option_prob_diff": {name: float(f"{v:.3g}") for name, v in prob_diff.items() if agree[name][1]},
        "grounded_items_with_quote": f"{grounded_quoted}/{grounded_items}" if grounded_items else None,
        "grounded_unsupported_quotes": grounded_unsupported if grounded_items else None,
        "grounded_score_is_argmax": f"{grounded_argmax}/{grounded_items}" if grounded_items else None,
        # the same ratio inside each scores-only call (its own prefill vs its total): least noise-prone
        "scores_only_over_own_prefill": round(sum(r["scores_only_over_own_prefill"] for r in per_session) / n, 3)
        if "scores_and_floor" not in skip else None,
        "prefix_tokens_per_session": round(sum(r["prefix_tokens"] for r in per_session) / n, 1),
        "load_s": round(load_s, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "method_order": "one at a time, rotated per session (see per_session[].order)",
        "per_session": per_session,
    }
    same = lambda name: agree[name][0] == agree[name][1] if agree[name][1] else None  # noqa: E731
    at_least = lambda v, bound: None if v is None else v >= bound  # noqa: E731
    result["targets"] = {
        "speedup>=2.5": at_least(result["speedup"], 2.5),
        "scores_only<=1.5x_floor": None if result["scores_only_over_floor"] is None
        else result["scores_only_over_floor"] <= 1.5,
        "scores_match": same("scores"), "grounded_fast_equals_naive": same("grounded"),
        **{f"engine_at_least_as_fast_as_vllm_{m}": at_least(peers[m]["engine_speedup_vs_vllm"], 1.0) for m in peers
           if m != "threads"},
    }
    if vllm is not None:
        result["vllm"] = vllm.close()
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        for k, v in result.items():
            if k != "per_session":
                print(f"{k}: {v}")
    return result


if __name__ == "__main__":
    main()
