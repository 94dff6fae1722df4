"""Inference benchmark: 12-item session prediction, naive vs shared-prefix batched (care_model.inference.engine).

For each of N sample sessions (from data/sessions.jsonl, the ones whose prompt is closest to
1,500 tokens), all in one run and interleaved per session so CPU noise hits every method alike:

  (a) naive        12 independent ``model.generate`` calls (greedy, rationale up to 64 new tokens)
  (b) fast         Engine.run_session: prefix once, 12 suffixes batched, batched greedy decoding
  (c) naive scores 12 independent full prefills, last-position logits (scores only)
  (d) fast scores  Engine.run_session(scores_only=True)
  (e) floor        one prefill of the shared prefix alone ((d) and (e) alternate twice, averaged)

and prints one JSON object (``--json``) with seconds per session, speedups, the floor, whether
the chosen scores (argmax of the option probabilities) and texts agree between fast and naive,
the largest option-probability difference, tokens per session and the targets (2 CPU cores):
speedup >= 2.5, scores_only_speedup >= 6, scores_only_s_per_session <= 1.5 x prefill_floor_s,
scores_match true.

CPU smoke test (tiny random model, ~1 minute)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.inference --json --tiny

The real measurement (SmolLM2-135M-Instruct, float32: roughly 10-15 minutes on an idle 2-core
machine, 38 minutes measured while other jobs shared the cores; run it in the background)::

    HF_HUB_OFFLINE=1 nohup .venv/bin/python -m benchmarks.inference --json > bench-inference.json &
    HF_HUB_OFFLINE=1 nohup .venv/bin/python -m benchmarks.inference --json --backends engine,vllm > bench-vllm.json &

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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "sessions.jsonl"
METHODS = ("scores_and_floor", "fast", "grounded", "naive_scores", "naive", "grounded_naive", "hf_prefix_cache")


def _log(msg: str) -> None:
    print(f"[bench-inference {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _load_sessions(path: Path):
    from care_model.core.records import Session

    sessions = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                sessions.append(Session.from_dict(json.loads(line)))
    return sessions


def _synthetic_sessions(count_tokens, render, target: int, n: int):
    """Fallback when data/sessions.jsonl is missing: sessions grown to about ``target`` prompt tokens."""
    from care_model.text.prompt import build_session_prompt
    from care_model.core.records import Session, Turn
    from tests.tiny_model import _EN

    out = []
    for s in range(n):
        turns: list[Turn] = []
        i = 0
        while True:
            text = " ".join(_EN[(i * 5 + s + k) % len(_EN)] for k in range(3))
            turns.append(Turn(i, ("counselor", "client")[i % 2], text))
            i += 1
            if i % 4 == 0:
                sp = build_session_prompt(Session(f"synthetic-{s}", turns), render_chat=render)
                if count_tokens(sp.prefix + max(sp.suffixes.values(), key=len)) >= target:
                    break
        out.append(Session(f"synthetic-{s}", turns))
    return out


def hf_prefix_cache(loaded, engine, prefix: list[int], suffixes: dict, max_new_tokens: int) -> dict:
    """The peer a user would pick: one prefilled ``DynamicCache`` of the shared prefix, copied for each
    item, then Hugging Face ``generate`` (greedy) on prefix + suffix. Returns {item: generated ids}."""
    import copy

    import torch
    from transformers import DynamicCache, GenerationConfig

    model = loaded.model
    gen_cfg = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                               eos_token_id=list(engine.stop_token_ids), pad_token_id=engine.pad_token_id,
                               temperature=None, top_p=None, top_k=None)
    out = {}
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([prefix], device=engine.device), past_key_values=cache, use_cache=True)
        for item, suffix in suffixes.items():
            ids = torch.tensor([list(prefix) + list(suffix)], device=engine.device)
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen_cfg,
                                 past_key_values=copy.deepcopy(cache))
            out[item] = seq[0, ids.shape[1]:].tolist()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random Llama (smoke test) instead of SmolLM2")
    ap.add_argument("--sessions", type=int, default=3, help="number of sample sessions (default 3)")
    ap.add_argument("--target-tokens", type=int, default=1500, help="pick sessions whose prompt is closest to this")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="rationale cap (default 64)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="sessions JSONL (Session.to_dict lines)")
    ap.add_argument("--base", default=None, help="another base model folder instead of SmolLM2")
    ap.add_argument("--dtype", default="auto", help="model dtype (default auto = float32 on CPU)")
    ap.add_argument("--backends", default="engine", help="'engine' or 'engine,vllm': vLLM measured in the same run "
                    "(scores only, and grounded when the engine's grounded run is measured; cold prefix cache; "
                    "needs `make setup-vllm`; see benchmarks/inference_vllm.py)")
    ap.add_argument("--candidate-turns", type=int, default=8, help="grounded decoding: turns each item may quote")
    ap.add_argument("--naive-items", type=int, default=0,
                    help="grounded naive path on the first N items only (0: all 12); its time is then per N items")
    ap.add_argument("--skip", default="", help=f"comma-separated methods not to run (of: {', '.join(METHODS)}); "
                    "their figures are null")
    args = ap.parse_args(argv)
    skip = {m.strip() for m in args.skip.split(",") if m.strip()}
    if skip - set(METHODS) or set(METHODS) <= skip:
        ap.error(f"--skip takes some of {', '.join(METHODS)}")

    t_start = time.perf_counter()
    import torch

    from care_model.inference.engine import Engine
    from care_model.text.evidence import TranscriptIndex, find_quotes
    from care_model.inference.models import ModelSpec, load_model
    from care_model.text.parse import parse_answer
    from care_model.inference.modes import grounding_rows
    from care_model.inference.predictor import PredictConfig
    from care_model.text.prompt import build_session_prompt

    config = PredictConfig(max_new_tokens=args.max_new_tokens, candidate_turns=args.candidate_turns)

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
    engine = Engine(loaded)
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
    if "vllm" in args.backends.split(","):
        from .inference_vllm import VllmBench

        _log("loading the model in vLLM")
        vllm = VllmBench(base, args.dtype)
        vllm.warm_up(chosen[0][3])
    # warm-up (first-call allocations, lazy imports, the grounding vocabulary and MiniLM) on a short input
    warm_prefix, warm_suffix = engine.encode_prompt(chosen[0][3])
    engine.run_session(warm_prefix[:64], {1: warm_suffix[1]}, max_new_tokens=2)
    engine.run_session_naive(warm_prefix[:64], {1: warm_suffix[1]}, max_new_tokens=2)
    grounding_rows(engine, chosen[0][2], [1], config)

    N = args.max_new_tokens
    keys = ("naive", "fast", "grounded", "grounded_naive", "hf_prefix_cache", "naive_scores", "fast_scores", "floor")
    totals = {k: 0.0 for k in keys}
    per_session = []
    agree = {k: [0, 0] for k in ("scores", "scores_only", "text", "parsed", "grounded", "hf")}  # [agree, compared]
    grounded_quoted = grounded_unsupported = grounded_argmax = grounded_items = 0
    max_prob_diff = 0.0
    fast_stats = []
    load_before = os.getloadavg()
    for n_session, (_, sid, session, sp) in enumerate(chosen):
        prefix, suffixes = engine.encode_prompt(sp)
        row = {"id": sid, "language": session.language, "turns": len(session.turns),
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
                out = engine.run_session(prefix, suffixes, scores_only=True, language=session.language)
                t_sos.append(time.perf_counter() - t)
                own.append(engine.last_stats["total_s"] / engine.last_stats["prefill_s"])
            res["floor"] = (None, sum(floors) / 2)
            res["fast_scores"] = (out, sum(t_sos) / 2)
            row["scores_only_over_own_prefill"] = round(sum(own) / 2, 3)

        def fast():
            timed("fast", engine.run_session, prefix, suffixes, max_new_tokens=N, language=session.language)
            fast_stats.append(dict(engine.last_stats))

        def grounded():  # timed with its candidate-turn ranking (MiniLM) and row set-up
            t = time.perf_counter()
            rows, _ = grounding_rows(engine, session, suffixes, config)
            out = engine.run_session(prefix, suffixes, max_new_tokens=N, language=session.language, constraints=rows)
            res["grounded"] = (out, time.perf_counter() - t)

        def grounded_naive():  # the first --naive-items items (all by default): 12 full prefills are slow
            some = {i: suffixes[i] for i in list(suffixes)[:args.naive_items or None]}
            rows, _ = grounding_rows(engine, session, some, config)
            timed("grounded_naive", engine.run_session_naive, prefix, some, max_new_tokens=N,
                  language=session.language, constraints=rows)

        methods = {
            "scores_and_floor": scores_and_floor, "fast": fast, "grounded": grounded,
            "naive_scores": lambda: timed("naive_scores", engine.run_session_naive, prefix, suffixes,
                                          scores_only=True, language=session.language),
            "naive": lambda: timed("naive", engine.run_session_naive, prefix, suffixes, max_new_tokens=N,
                                   language=session.language),
            "grounded_naive": grounded_naive,
            "hf_prefix_cache": lambda: timed("hf_prefix_cache", hf_prefix_cache, loaded, engine, prefix, suffixes, N),
        }
        order = [m for m in methods if m not in skip]
        order = order[n_session % len(order):] + order[:n_session % len(order)]  # rotate per session
        row["order"] = order
        for name in order:
            methods[name]()
        for key in keys:
            if key in res:
                totals[key] += res[key][1]
        out = {k: res[k][0] for k in keys if k in res}
        index = TranscriptIndex(session.turns)
        for item in suffixes:
            for name, a, b, same in (
                    ("scores", "fast", "naive", lambda x, y: x.argmax_score == y.argmax_score),
                    ("scores_only", "fast_scores", "naive_scores", lambda x, y: x.argmax_score == y.argmax_score),
                    ("text", "fast", "naive", lambda x, y: x.token_ids == y.token_ids),
                    ("parsed", "fast", "naive", lambda x, y: parse_answer(x.text).score == parse_answer(y.text).score),
                    ("grounded", "grounded", "grounded_naive", lambda x, y: x.token_ids == y.token_ids),
                    ("hf", "fast", "hf_prefix_cache", lambda x, y: x.token_ids == y)):
                if a in out and b in out and item in out[a] and item in out[b]:
                    agree[name][0] += bool(same(out[a][item], out[b][item]))
                    agree[name][1] += 1
                    if name in ("scores", "scores_only", "grounded"):
                        max_prob_diff = max(max_prob_diff, max(abs(x - y) for x, y in zip(
                            out[a][item].option_probs, out[b][item].option_probs)))
            if "grounded" in out:
                g = out["grounded"][item]
                parsed = parse_answer(g.text, language=session.language)
                ev = index.link(parsed.rationale or "")
                grounded_quoted += parsed.ok and bool(find_quotes(parsed.rationale)) and not ev.unsupported
                grounded_unsupported += len(ev.unsupported)
                grounded_argmax += parsed.score == g.argmax_score
                grounded_items += 1
        if vllm is not None and "fast_scores" in res:
            row["vllm"] = vllm.measure(
                sid, sp, res["fast_scores"][0], res["fast_scores"][1], engine_grounded=res.get("grounded"),
                make_rows=lambda: grounding_rows(vllm.backend, session, suffixes, config)[0], max_new_tokens=N,
                transcript_index=index, engine_free=res.get("fast"))
        t = {k: res[k][1] for k in keys if k in res}
        names = {"naive": "naive_s", "fast": "fast_s", "grounded": "grounded_s", "grounded_naive": "grounded_naive_s",
                 "hf_prefix_cache": "hf_prefix_cache_s", "naive_scores": "scores_only_naive_s",
                 "fast_scores": "scores_only_s", "floor": "prefill_floor_s"}
        row.update({names[k]: round(v, 3) for k, v in t.items()})
        row.update({f"generated_tokens_{k}": sum(len(o.token_ids) for o in out[k].values())
                    for k in ("fast", "naive", "grounded") if k in out})
        if fast_stats:
            row["fast_phases_s"] = {k: round(fast_stats[-1][k], 3) for k in ("prefill_s", "suffix_s", "decode_s")}
        row.update({f"example_{k}": out[k][1].text[:160] for k in ("fast", "grounded") if k in out})
        per_session.append(row)
        _log(f"session {sid}: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))
    load_after = os.getloadavg()

    n = len(chosen)
    per = {k: totals[k] / n if k in res else None for k in keys}

    def ratio(a, b, digits=2):
        return round(per[a] / per[b], digits) if per[a] is not None and per[b] is not None else None

    def agreed(name):
        k, total = agree[name]
        return f"{k}/{total}" if total else None

    result = {
        "benchmark": "inference",
        "model": "tiny-random-llama" if args.tiny else loaded.version_id,
        "model_version": loaded.version_id,
        "dtype": loaded.dtype,
        "device": loaded.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "sessions_source": source,
        "sessions": n,
        "items_per_session": len(chosen[0][3].suffixes),
        "max_new_tokens": N,
        "skipped_methods": sorted(skip),
        **{f"{k}_s_per_session" if k not in ("fast_scores", "naive_scores", "floor") else
           {"fast_scores": "scores_only_s_per_session", "naive_scores": "scores_only_naive_s_per_session",
            "floor": "prefill_floor_s"}[k]: (round(v, 3) if v is not None else None) for k, v in per.items()},
        "speedup": ratio("naive", "fast"),
        "scores_only_speedup": ratio("naive_scores", "fast_scores"),
        "scores_only_over_floor": ratio("fast_scores", "floor", 3),
        "grounded_over_free": ratio("grounded", "fast", 3),
        "speedup_vs_hf_prefix_cache": ratio("hf_prefix_cache", "fast"),
        "grounded_naive_over_grounded": ratio("grounded_naive", "grounded") if not args.naive_items else None,
        "grounded_naive_items": args.naive_items or len(chosen[0][3].suffixes),
        "grounded_match": agree["grounded"][0] == agree["grounded"][1] if agree["grounded"][1] else None,
        "grounded_text_match": agreed("grounded"),
        "grounded_items_with_quote": f"{grounded_quoted}/{grounded_items}" if grounded_items else None,
        "grounded_unsupported_quotes": grounded_unsupported if grounded_items else None,
        "grounded_score_is_argmax": f"{grounded_argmax}/{grounded_items}" if grounded_items else None,
        "hf_prefix_cache_text_match": agreed("hf"),
        # the same ratio inside each scores-only call (its own prefill vs its total): least noise-prone
        "scores_only_over_own_prefill": round(sum(r["scores_only_over_own_prefill"] for r in per_session) / n, 3)
        if "scores_and_floor" not in skip else None,
        "scores_match": agree["scores"][0] == agree["scores"][1] if agree["scores"][1] else None,
        "scores_agree": agreed("scores"),
        "scores_only_match": agree["scores_only"][0] == agree["scores_only"][1] if agree["scores_only"][1] else None,
        "text_match": agreed("text"),
        "parsed_score_match": agreed("parsed"),
        "max_option_prob_diff": float(f"{max_prob_diff:.3g}"),
        "prompt_tokens_per_session": round(sum(r["prefix_tokens"] + r["suffix_tokens"] for r in per_session) / n, 1),
        "prefix_tokens_per_session": round(sum(r["prefix_tokens"] for r in per_session) / n, 1),
        "generated_tokens_per_session": {k: round(sum(r.get(f"generated_tokens_{k}", 0) for r in per_session) / n, 1)
                                         for k in ("fast", "naive", "grounded")},
        "load_s": round(load_s, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "method_order": "rotated per session (see per_session[].order)",
        "per_session": per_session,
    }

    def at_most(key, bound):
        return None if result[key] is None else result[key] <= bound

    def at_least(key, bound):
        return None if result[key] is None else result[key] >= bound

    result["targets"] = {
        "speedup>=2.5": at_least("speedup", 2.5),
        "scores_only_speedup>=6": at_least("scores_only_speedup", 6),
        "scores_only<=1.5x_floor": at_most("scores_only_over_floor", 1.5),
        "scores_match": result["scores_match"],
        "grounded_over_free<=1.15": at_most("grounded_over_free", 1.15),
        "speedup_vs_hf_prefix_cache>=2.5": at_least("speedup_vs_hf_prefix_cache", 2.5),
        "grounded_fast_equals_naive": result["grounded_match"],
    }
    if vllm is not None:
        result["vllm"] = vllm.summary()
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
