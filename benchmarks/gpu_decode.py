"""The decode-step and cross-session parts of ``benchmarks.gpu_inference`` (issue 23).

* :func:`decode_modes` -- the same 12-item session with the dynamic decode loop (shapes change every
  step, Python launches every kernel) and the static loop (one CUDA graph per batch on a GPU,
  care_model.inference.static_decode): seconds, decode-step milliseconds, the fraction of the GPU's
  memory bandwidth each step uses, and whether both give the same tokens.
* :func:`cross_session` -- B sessions with prefixes of their own, one session at a time against
  :meth:`Engine.run_sessions` (decode steps carrying 12 x B rows): sessions per minute, the batched
  decode step's milliseconds and bandwidth fraction, tokens compared.

Bytes per decode step = every weight once + the K/V that step reads (each session's prefix once, each
row's own suffix and answer so far).
"""
from __future__ import annotations

import time


def _step_bytes(weight_bytes, kv_per_token, prefix_tokens: int, rows: int, own_tokens: float) -> float:
    return weight_bytes + kv_per_token * (prefix_tokens + rows * own_tokens)


def decode_modes(engine, prefix, suffixes, N: int, timed, *, weight_bytes, kv_per_token, peak, rounds: int = 2):
    """Dynamic vs static decode loop on one session (medians of ``rounds``, order alternating)."""
    import statistics

    keep = engine.static_decode
    times, stats, outs = {"dynamic": [], "static": []}, {}, {}
    for r in range(rounds):
        for mode in (("dynamic", "static") if r % 2 == 0 else ("static", "dynamic")):
            engine.static_decode = mode == "static"
            outs[mode], t = timed(engine.run_session, prefix, suffixes, max_new_tokens=N)
            times[mode].append(t)
            stats[mode] = dict(engine.last_stats)
    engine.static_decode = keep
    res = {}
    own = max(len(s) for s in suffixes.values()) + N / 2
    for mode, st in stats.items():
        step_s = st["decode_s"] / max(1, st["decode_steps"])
        nbytes = _step_bytes(weight_bytes, kv_per_token, st["prefix_tokens"], len(suffixes), own)
        res[mode] = {"s": round(statistics.median(times[mode]), 4), "decode_step_ms": round(step_s * 1e3, 3),
                     "decode_steps": st["decode_steps"], "graphs": st.get("graphs", "none (dynamic loop)"),
                     "hbm_fraction": round(nbytes / step_s / peak, 3) if peak else None}
    res["static_speedup"] = round(res["dynamic"]["s"] / res["static"]["s"], 3)
    res["same_tokens"] = f"{sum(outs['dynamic'][i].token_ids == outs['static'][i].token_ids for i in suffixes)}" \
                         f"/{len(suffixes)}"
    return res


def cross_session(engine, make_session, B: int, N: int, timed, *, weight_bytes, kv_per_token, peak) -> dict:
    """B sessions one at a time, then as one cross-session batch (and again in the other order)."""
    from care_model.inference.batch import SessionJob

    sessions = [make_session(seed) for seed in range(1, B + 1)]
    jobs = [SessionJob(p, s) for p, s in sessions]
    t_one = t_batch = 0.0
    for r in range(2):
        for mode in (("one", "batch") if r == 0 else ("batch", "one")):
            if mode == "one":
                one, t = timed(lambda: [engine.run_session(p, s, max_new_tokens=N) for p, s in sessions])
                t_one += t
            else:
                batch, t = timed(lambda: dict(engine.run_sessions(jobs, max_new_tokens=N, max_sessions=B,
                                                                  token_budget=1 << 30)))
                t_batch += t
                st = dict(engine.last_stats)
    step_s = st["decode_s"] / max(1, st["decode_steps"])
    own = max(len(x) for _, s in sessions for x in s.values()) + N / 2
    nbytes = _step_bytes(weight_bytes, kv_per_token, st["prefix_tokens"], st["items"], own)
    same = sum(one[j][i].token_ids == batch[j][i].token_ids for j in range(B) for i in one[j])
    return {"sessions": B, "rows_per_step": st["items"],
            "one_at_a_time_sessions_per_min": round(60 * 2 * B / t_one, 2),
            "batched_sessions_per_min": round(60 * 2 * B / t_batch, 2),
            "throughput_gain": round(t_one / t_batch, 3),
            "batched_decode_step_ms": round(step_s * 1e3, 3), "batched_graphs": st.get("graphs"),
            "batched_phases_s": {k: round(st[k], 4) for k in ("prefill_s", "suffix_s", "decode_s")},
            "batched_hbm_fraction": round(nbytes / step_s / peak, 3) if peak else None,
            "same_tokens": f"{same}/{sum(len(o) for o in one)}", "at": time.strftime("%H:%M:%S")}
