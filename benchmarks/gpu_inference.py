"""GPU benchmark: one 6,000-token session, 12 items, Llama-3.1-8B architecture, naive vs fast.

Builds the Llama-3.1-8B architecture (hidden 4096, 32 layers, 32 heads, 8 key/value heads,
intermediate 14336, vocab 128256, rope_theta 500000 with llama3 rope scaling) with random
bfloat16 weights initialised directly on the GPU (nothing is downloaded; the numbers depend on
the shapes, not on the weights), then scores one session of random token ids both ways:

  scores only : naive = 12 independent full prefills; fast = Engine.run_session(scores_only=True)
  rationales  : naive = 12 independent model.generate calls (64 new tokens each, no early stop);
                fast  = Engine.run_session(max_new_tokens=64)
  floor       : one prefill of the shared prefix alone

It prints one JSON object: seconds, tokens/s, and the fraction of HBM bandwidth used while
decoding (bytes moved per decode step = all weights + the K/V read that step, divided by the
step time and by the GPU's peak bandwidth from a table keyed on the device name: H100 SXM
3.35 TB/s, H200 4.8 TB/s, ...). About 2-3 minutes on one H100 (~17 GB of weights)::

    .venv/bin/python -m benchmarks.gpu_inference --json

CPU smoke test of the same code path (a small Llama, float32, ~30 s)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.gpu_inference --json --small
    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.gpu_inference --json --small --decoding grounded

Also (issue 23): the decode loop dynamic vs static (a CUDA graph per batch on a GPU) and a
cross-session batch of ``--cross-sessions`` random sessions against one session at a time
(benchmarks/gpu_decode.py); ``targets_issue23`` checks free decoding <= 1.0 s for 12 items, a decode
step at >= 40% of the memory bandwidth and grounded within 1.2x free.

``--decoding grounded`` also times grounded decoding (care_model.text.grounding) on the same random
session, fast and naive: the decoded random prompt is cut into 8 "client turns" that every item
may quote; ``grounded_over_free`` and ``grounded_text_match`` (fast == naive) are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Peak memory bandwidth in bytes/s, matched in order against torch.cuda.get_device_name().
PEAK_BANDWIDTH = [
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),   # SXM5 (HBM3)
    ("GH200", 4.0e12),
    ("B200", 8.0e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),  # 40GB
    ("L40S", 0.864e12),
    ("A10G", 0.6e12),
    ("L4", 0.3e12),
]


def peak_bandwidth(name: str) -> float | None:
    for key, value in PEAK_BANDWIDTH:
        if key.lower() in name.lower():
            return value
    return None


def _log(msg: str) -> None:
    print(f"[bench-gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class CodePointTokenizer:
    """A stand-in tokenizer: one token per character (id = code point). Enough for the engine's option
    tokens ("1".."5", full-width digits), stop ids and decoding; prompts here are random ids anyway."""

    def __init__(self, vocab_size: int, eos_id: int = 1, pad_id: int = 0):
        self.vocab_size = vocab_size
        self.eos_token_id = eos_id
        self.pad_token_id = pad_id
        self.eos_token = "<eos>"
        self.all_special_tokens = ["<eos>", "<pad>"]
        self.chat_template = "{{ messages }}"

    def __len__(self):
        return self.vocab_size

    def get_vocab(self):
        return {"<eos>": self.eos_token_id, "<pad>": self.pad_token_id}

    def convert_ids_to_tokens(self, ids):
        return [self.decode([i]) for i in ids]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % self.vocab_size for c in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) if (32 <= i < 0x110000 or i == 10) and not 0xD800 <= i < 0xE000 else "?" for i in ids
                       if not (skip_special_tokens and i in (self.eos_token_id, self.pad_token_id)))


def llama31_8b_config(small: bool):
    from transformers import LlamaConfig

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    if small:
        return LlamaConfig(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
                           num_key_value_heads=2, vocab_size=128256, max_position_embeddings=131072,
                           rms_norm_eps=1e-5, rope_parameters=rope, tie_word_embeddings=False,
                           bos_token_id=128000, eos_token_id=1, pad_token_id=0)
    return LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                       rope_parameters=rope, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=1,
                       pad_token_id=0)


def build_model(config, device: str, dtype):
    """Random weights created on the device in the target dtype (no CPU copy, no download)."""
    import torch
    from transformers import LlamaForCausalLM

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)  # weights initialised on the device: fast on a GPU
    finally:
        torch.set_default_dtype(old)
    if next(model.parameters()).device.type != torch.device(device).type:  # the context was not honoured
        model.to(device=device, dtype=dtype)
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 0
    return model.eval()


def grounded_run(engine, tok, prefix, suffixes, max_new_tokens, timed, t_fast) -> dict:
    """Grounded decoding on the random session: the decoded prompt cut into 8 'client turns', every item
    allowed to quote all of them; fast and naive paths, timed, tokens compared."""
    from care_model.text.grounding import GroundingConfig, build_rows
    from care_model.text.grounding_vocab import Vocabulary, token_pieces
    from care_model.core.records import Turn

    text = tok.decode(prefix[:4000], skip_special_tokens=True)
    size = max(1, len(text) // 8)
    turns = [Turn(i, "client", text[i * size:(i + 1) * size]) for i in range(8)]
    t0 = time.perf_counter()
    vocab = Vocabulary(token_pieces(tok), engine.stop_token_ids)
    vocab_s = time.perf_counter() - t0
    options = engine.option_token_ids("en")

    def rows():
        return build_rows(vocab, turns, {i: [t.index for t in turns] for i in suffixes}, options,
                          config=GroundingConfig(max_quote_tokens=12, max_free_tokens=8))

    fast, t_g = timed(engine.run_session, prefix, suffixes, max_new_tokens=max_new_tokens, constraints=rows())
    steps = engine.last_stats.get("decode_steps")
    naive, t_gn = timed(engine.run_session_naive, prefix, suffixes, max_new_tokens=max_new_tokens, constraints=rows())
    _log(f"grounded: fast {t_g:.2f}s naive {t_gn:.2f}s (vocabulary {vocab_s:.2f}s, once per tokenizer)")
    same = sum(fast[i].token_ids == naive[i].token_ids for i in suffixes)
    return {"grounded_vocabulary_s": round(vocab_s, 3), "grounded_fast_s": round(t_g, 3),
            "grounded_naive_s": round(t_gn, 3), "grounded_over_free": round(t_g / t_fast, 3),
            "grounded_speedup": round(t_gn / t_g, 2), "grounded_decode_steps": steps,
            "grounded_text_match": f"{same}/{len(suffixes)}", "grounded_example": fast[1].text[:80]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_inference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--small", action="store_true", help="small Llama on CPU/float32: a smoke test of the code path")
    ap.add_argument("--prompt-tokens", type=int, default=None,
                    help="session prompt length (default 6000; 600 with --small)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="rationale length (default 64; 8 with --small, "
                    "40 with --small --decoding grounded)")
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both methods, order alternating (median reported)")
    ap.add_argument("--suffix-tokens", type=int, default=24, help="mean item suffix length")
    ap.add_argument("--cross-sessions", type=int, default=None,
                    help="sessions of the cross-session batch (default 4; 3 with --small; 0: skip)")
    ap.add_argument("--decoding", choices=("free", "grounded"), default="free",
                    help="grounded: also time grounded decoding (fast and naive), quoting the random prompt's text "
                         "cut into 8 'client turns'")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]

    import torch

    from care_model.inference.engine import Engine
    from care_model.inference.models import LoadedModel

    cuda = torch.cuda.is_available() and not args.small
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    P_total = args.prompt_tokens or (600 if args.small else 6000)
    N = args.max_new_tokens or (64 if not args.small else 40 if args.decoding == "grounded" else 8)
    config = llama31_8b_config(args.small)
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    if cuda:
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    _log(f"built {n_params / 1e9:.2f}B params on {device} in {build_s:.1f}s")

    tok = CodePointTokenizer(config.vocab_size)
    loaded = LoadedModel(model=model, tokenizer=tok, device=device, dtype=str(dtype).split(".")[-1],
                         version_info={"id": "llama-3.1-8b-architecture-random", "base": "random"})
    engine = Engine(loaded, stop_token_ids=[1])

    gen = torch.Generator().manual_seed(0)
    lens = [max(4, args.suffix_tokens + (i % 5) * 3 - 6) for i in range(args.items)]
    P = P_total - max(lens)
    prefix = torch.randint(1000, config.vocab_size, (P,), generator=gen).tolist()
    suffixes = {i + 1: torch.randint(1000, config.vocab_size, (n,), generator=gen).tolist() for i, n in enumerate(lens)}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed(fn, *a, **k):
        sync()
        t = time.perf_counter()
        out = fn(*a, **k)
        sync()
        return out, time.perf_counter() - t

    # warm-up: kernels, allocator, cuBLAS handles
    engine.run_session(prefix[:256], {1: suffixes[1], 2: suffixes[2]}, max_new_tokens=3)
    engine.run_session_naive(prefix[:256], {1: suffixes[1]}, max_new_tokens=3)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    floor = engine.prefill_only(prefix)
    _log(f"prefill floor {floor:.3f}s for {P} tokens")
    # Rounds with the order of the two methods alternating (fast first, then naive first, ...); the
    # median of each method's times is reported.
    times = {"fast_so": [], "fast": [], "naive_so": [], "naive": []}
    for r in range(args.rounds):
        for method in (("fast", "naive") if r % 2 == 0 else ("naive", "fast")):
            run = engine.run_session if method == "fast" else engine.run_session_naive
            out_so, t_so = timed(run, prefix, suffixes, scores_only=True)
            out, t = timed(run, prefix, suffixes, max_new_tokens=N)
            times[f"{method}_so"].append(t_so)
            times[method].append(t)
            if method == "fast":
                fast_so, fast, fast_stats = out_so, out, dict(engine.last_stats)
            else:
                naive_so, naive = out_so, out
            _log(f"round {r + 1} {method}: scores {t_so:.2f}s, with rationales {t:.2f}s")
    t_fast_so, t_fast, t_naive_so, t_naive = (statistics.median(times[k])
                                              for k in ("fast_so", "fast", "naive_so", "naive"))

    kv_heads, layers = config.num_key_value_heads, config.num_hidden_layers
    head_dim = config.hidden_size // config.num_attention_heads
    elem = torch.tensor([], dtype=dtype).element_size()
    kv_bytes_per_token = 2 * layers * kv_heads * head_dim * elem
    steps = max(1, fast_stats.get("decode_steps", 0))
    fast_step_s = fast_stats["decode_s"] / steps
    mean_suffix = sum(lens) / len(lens)
    # per fast decode step: all weights once, the shared prefix K/V once, each row's own K/V
    fast_kv = kv_bytes_per_token * (fast_stats["prefix_tokens"]
                                    + args.items * (max(lens) - fast_stats["folded_into_prefix"] + N / 2))
    fast_step_bytes = weight_bytes + fast_kv
    naive_decode_s = max(1e-9, t_naive - t_naive_so)  # 12 x (N-1) decode steps (+ generate overhead)
    naive_step_s = naive_decode_s / (args.items * max(1, N - 1))
    naive_step_bytes = weight_bytes + kv_bytes_per_token * (P + mean_suffix + N / 2)
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_bandwidth(name) if cuda else None

    grounded = grounded_run(engine, tok, prefix, suffixes, N, timed, t_fast) if args.decoding == "grounded" else {}
    from benchmarks.gpu_decode import cross_session, decode_modes

    sizes = {"weight_bytes": weight_bytes, "kv_per_token": kv_bytes_per_token, "peak": peak}
    modes = decode_modes(engine, prefix, suffixes, N, timed, **sizes)
    _log(f"decode loops: {modes}")

    def make_session(seed):
        g = torch.Generator().manual_seed(seed)
        return (torch.randint(1000, config.vocab_size, (P - 16 * seed,), generator=g).tolist(),
                {i: torch.randint(1000, config.vocab_size, (len(x),), generator=g).tolist()
                 for i, x in suffixes.items()})
    B = args.cross_sessions if args.cross_sessions is not None else (3 if args.small else 4)
    cross = cross_session(engine, make_session, B, N, timed, **sizes) if B > 0 else None
    _log(f"cross-session: {cross}")

    items = list(suffixes)
    max_prob_diff = max(abs(a - b) for i in items for a, b in zip(fast[i].option_probs, naive[i].option_probs))
    result = {
        "benchmark": "gpu_inference",
        "device": name,
        "small": bool(args.small),
        "dtype": str(dtype).split(".")[-1],
        "params": n_params,
        "weight_bytes": weight_bytes,
        "build_s": round(build_s, 2),
        "prompt_tokens": P + max(lens),
        "prefix_tokens": P,
        "suffix_tokens": lens,
        "items": args.items,
        "max_new_tokens": N,
        "prefill_floor_s": round(floor, 4),
        "prefill_tokens_per_s": round(P / floor, 1),
        "rounds": args.rounds,
        "order": "alternating by round (fast first in odd rounds); medians",
        "scores_only_naive_s": round(t_naive_so, 4),
        "scores_only_fast_s": round(t_fast_so, 4),
        "scores_only_speedup": round(t_naive_so / t_fast_so, 2),
        "scores_only_over_floor": round(t_fast_so / floor, 3),
        "naive_s": round(t_naive, 3),
        "fast_s": round(t_fast, 3),
        "speedup": round(t_naive / t_fast, 2),
        "fast_phases_s": {k: round(fast_stats[k], 4) for k in ("prefill_s", "suffix_s", "decode_s")},
        "fast_decode_steps": fast_stats["decode_steps"],
        "fast_decode_step_ms": round(fast_step_s * 1e3, 3),
        "fast_decode_tokens_per_s": round(
            fast_stats["generated_tokens"] / max(1e-9, fast_stats["decode_s"] + fast_stats["suffix_s"]), 1),
        "naive_decode_step_ms_est": round(naive_step_s * 1e3, 3),
        "naive_decode_tokens_per_s_est": round(args.items * N / naive_decode_s, 1),
        "fast_bytes_per_decode_step": int(fast_step_bytes),
        "naive_bytes_per_decode_step": int(naive_step_bytes),
        "peak_bandwidth_bytes_per_s": peak,
        "fast_decode_hbm_fraction": round(fast_step_bytes / fast_step_s / peak, 3) if peak else None,
        "naive_decode_hbm_fraction": round(naive_step_bytes / naive_step_s / peak, 3) if peak else None,
        "scores_match": all(fast[i].argmax_score == naive[i].argmax_score for i in items),
        "scores_only_match": all(fast_so[i].argmax_score == naive_so[i].argmax_score for i in items),
        "text_match": f"{sum(fast[i].token_ids == naive[i].token_ids for i in items)}/{len(items)}",
        "max_option_prob_diff": float(f"{max_prob_diff:.3g}"),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
        "torch": torch.__version__,
        "decoding": args.decoding,
        "static_decode": engine.static_decode,
        "fast_graphs": fast_stats.get("graphs", "none (dynamic loop)"),
        "decode_loops": modes,
        "cross_session": cross,
        **grounded,
    }
    g_over = result.get("grounded_over_free")
    result["targets_issue23"] = {
        "free_12_items_le_1.0s": (t_fast <= 1.0) if cuda else None,
        "decode_step_hbm_fraction_ge_0.4": (max(modes["static"]["hbm_fraction"] or 0,
                                                modes["dynamic"]["hbm_fraction"] or 0) >= 0.4) if peak else None,
        "grounded_within_1.2x_free": (g_over <= 1.2) if g_over is not None else None,
        "cross_session_gain": cross and cross["throughput_gain"]}
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["load_average_before"], result["load_average_after"] = load_before, [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return result


if __name__ == "__main__":
    main()
