"""Several sessions in one batch of :class:`care_model.inference.engine.Engine` (cross-session batching).

:meth:`Engine.run_session` is this module's :func:`run_batch` with one session. With several
(:class:`SessionJob`, each its own prefix, items and grounded rows), every session's prefix is
prefilled once and its item suffixes run as one packed block (both per session: prefill is
compute-bound, batching it gains nothing), then **the decode steps carry the rows of all sessions
together** (12 x B rows): the linear layers, the norms and the language-model head run once per
step for every row of every session, and the attention is cascade attention *per prefix* -- the
rows of each session attend to their own session's shared prefix in one pass (:class:`PrefixGroups`,
:meth:`care_model.inference.attention.PrefixAttention._attend`), and every row to its own suffix and
answer keys in per-row buffers, left-padded so all rows of the batch end together (pads masked).

A session's rows see exactly the keys they would see alone (the pads add ``exp(-inf) = 0``), so the
greedy tokens equal those of one session at a time (``tests/inference/test_cross_session.py``,
CPU float32).

:func:`plan_batches` cuts a list of sessions into batches under a **token budget**: the K/V the
batch holds (each prefix once, plus per row its suffix and ``max_new_tokens`` answer slots) and a
cap on the number of sessions.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from care_model.core.errors import ModelError
from care_model.inference.attention import PrefixGroups
from care_model.inference.item_output import ItemOutput, Progress

DEFAULT_TOKEN_BUDGET = 32768
DEFAULT_MAX_SESSIONS = 8


@dataclass
class SessionJob:
    """One session's token ids for a batch: the shared prefix, ``{item: suffix ids}``, optional grounded
    rows ``{item: GroundedRow}`` and the session's language (for the option tokens)."""

    prefix_ids: Sequence[int]
    suffix_ids: Mapping[int, Sequence[int]]
    constraints: Mapping | None = None
    language: str = "en"
    stats: dict = field(default_factory=dict)


def job_tokens(job: SessionJob, max_new_tokens: int, scores_only: bool = False) -> int:
    """K/V slots a session takes in a batch: its prefix once, and per row its suffix plus the answer."""
    answer = 0 if scores_only else int(max_new_tokens)
    return len(job.prefix_ids) + sum(len(s) + answer for s in job.suffix_ids.values())


def plan_batches(jobs: Sequence[SessionJob], *, max_new_tokens: int, scores_only: bool = False,
                 token_budget: int = DEFAULT_TOKEN_BUDGET, max_sessions: int = DEFAULT_MAX_SESSIONS) -> list[list[int]]:
    """Indices of ``jobs`` cut, in order, into batches of at most ``max_sessions`` sessions whose
    :func:`job_tokens` sum stays within ``token_budget`` (a session larger than the budget runs alone)."""
    if token_budget < 1 or max_sessions < 1:
        raise ModelError("The cross-session batch needs a positive token budget and session cap.",
                         "Pass token_budget >= 1 and max_sessions >= 1 (max_sessions=1: one session at a time).")
    batches: list[list[int]] = []
    used = 0
    for i, job in enumerate(jobs):
        need = job_tokens(job, max_new_tokens, scores_only)
        if batches and len(batches[-1]) < max_sessions and used + need <= token_budget:
            batches[-1].append(i)
            used += need
        else:
            batches.append([i])
            used = need
    return batches


def pick_tokens(logits, rows):
    """Greedy choice per row [B, V] -> [B], under each row's grounded constraint where it has one
    (``rows``: a GroundedRow or None per row; None: plain argmax). The allowed sets become one [B, V] mask
    with a few batched scatters instead of several kernels per row; the same tokens as
    :func:`care_model.inference.constrained.choose_tokens` (the same values compete in each row)."""
    if rows is None or all(r is None for r in rows):
        return logits.argmax(-1)
    import torch

    from care_model.inference.constrained import _free_mask

    B, V = logits.shape
    dev = logits.device
    banned = torch.zeros(B, V, dtype=torch.bool, device=dev)
    only_rows, only_ids, ban_ids, free_rows = [], [], [], []
    for b, row in enumerate(rows):
        if row is None:
            continue
        kind, ids = row.allowed()
        if kind == "only":
            only_rows.append(b)
            only_ids.extend((b, i) for i in ids)
        else:
            if kind == "free":
                free_rows.append((b, row.vocab))
            ban_ids.extend((b, i) for i in ids)
    if only_rows:
        banned[torch.tensor(only_rows, device=dev)] = True
    for b, vocab in free_rows:
        banned[b] |= _free_mask(vocab, logits[b])
    if only_ids:
        idx = torch.tensor(only_ids, dtype=torch.long, device=dev)
        banned[idx[:, 0], idx[:, 1]] = False
    if ban_ids:
        idx = torch.tensor(ban_ids, dtype=torch.long, device=dev)
        banned[idx[:, 0], idx[:, 1]] = True
    return logits.masked_fill(banned, float("-inf")).argmax(-1)


def run_batch(engine, jobs: Sequence[SessionJob], *, max_new_tokens: int = 64, scores_only: bool = False,
              progress: Progress | None = None) -> list[dict[int, ItemOutput]]:
    """The sessions of ``jobs`` as one batch (see the module docstring): ``[{item: ItemOutput}]`` in job order.
    Each job's ``stats`` gets its own prefill/suffix times; ``engine.last_stats`` holds the batch's."""
    torch = engine.torch
    engine._require_fast()
    prepared = [engine._prepare(j.prefix_ids, j.suffix_ids) for j in jobs]
    for items, prefix_ids, suffixes, _ in prepared:
        longest = len(prefix_ids) + max(len(s) for s in suffixes) + (0 if scores_only else int(max_new_tokens))
        if engine.sliding_window and longest > engine.sliding_window:
            raise ModelError(f"The prompt ({longest} tokens with the answer) exceeds the model's sliding attention "
                             f"window ({engine.sliding_window}), which the fast path does not implement.",
                             "Use Engine.run_session_naive for this session, or a model without sliding windows.")
    option_ids = [engine.option_token_ids(j.language) for j in jobs]
    report = progress or (lambda f, m: None)
    stats = {"mode": "scores_only" if scores_only else "full", "path": "fast", "sessions": len(jobs),
             "packed_linear": engine._lin.enabled,
             "items": sum(len(p[0]) for p in prepared), "prefix_tokens": sum(len(p[1]) for p in prepared),
             "folded_into_prefix": sum(p[3] for p in prepared),
             "suffix_tokens": sum(len(s) for p in prepared for s in p[2])}
    if len(jobs) == 1:
        stats["items"] = len(prepared[0][0])
    dev, dtype = engine.device, engine.dtype
    with engine._lock, torch.inference_mode():
        t0 = time.perf_counter()
        counts = [len(p[0]) for p in prepared]
        B = sum(counts)
        lens = [len(s) for p in prepared for s in p[2]]
        S = max(lens)
        steps = 0 if scores_only else max(0, int(max_new_tokens) - 1)
        acc = torch.promote_types(dtype, torch.float32)
        neg = torch.tensor(float("-inf"), dtype=acc, device=dev)
        zero = torch.tensor(0.0, dtype=acc, device=dev)
        bufs_k = bufs_v = None
        if not scores_only:
            # Per-row K/V of suffix + answer, left-padded so all rows end at slot S; zeroed so the
            # (masked) pad slots hold no NaN garbage.
            kv = getattr(engine.config, "num_key_value_heads", None) or engine.config.num_attention_heads
            d, cap = engine.head_dim, S + steps
            bufs_k = [torch.zeros(B, kv, cap, d, dtype=dtype, device=dev) for _ in engine.core.layers]
            bufs_v = [torch.zeros(B, kv, cap, d, dtype=dtype, device=dev) for _ in engine.core.layers]
        prefixes, logits_parts, lo = [], [], 0
        prefill_s = suffix_s = 0.0
        for j, (job, (items, prefix_ids, suffixes, _)) in enumerate(zip(jobs, prepared)):
            t = time.perf_counter()
            prefix = engine._prefill(prefix_ids)
            engine._sync()
            t1 = time.perf_counter()
            hi = lo + len(items)
            view_k = [b[lo:hi] for b in bufs_k] if bufs_k is not None else None
            view_v = [b[lo:hi] for b in bufs_v] if bufs_v is not None else None
            logits_parts.append(engine._suffix_block(suffixes, prefix, view_k, view_v, S, neg, zero))
            engine._sync()
            t2 = time.perf_counter()
            job.stats.update(prefill_s=t1 - t, suffix_s=t2 - t1, prefix_tokens=len(prefix_ids), items=len(items))
            prefill_s += t1 - t
            suffix_s += t2 - t1
            prefixes.append(prefix)
            lo = hi
            if j == 0:
                report((0.3 if not scores_only else 0.6) / len(jobs), "prefix computed")
        stats.update(prefill_s=prefill_s, suffix_s=suffix_s)
        report(0.4 if not scores_only else 1.0, "items scored")
        logits = logits_parts[0] if len(logits_parts) == 1 else torch.cat(logits_parts)
        session_of = [j for j, c in enumerate(counts) for _ in range(c)]
        opts = [option_ids[j] for j in session_of]
        scores = [engine._score(logits[b], opts[b]) for b in range(B)]
        if scores_only:
            stats.update(decode_s=0.0, decode_steps=0, generated_tokens=0, total_s=time.perf_counter() - t0)
            engine.last_stats = stats
            return _outputs(engine, prepared, scores, None, None)

        stop = torch.tensor(engine.stop_token_ids, device=dev)
        pads = torch.tensor([S - n for n in lens], device=dev)
        key_ok = torch.arange(S + steps, device=dev)[None, :] >= pads[:, None]  # [B, cap] real keys
        generated: list[list[int]] = [[] for _ in range(B)]
        finished = [False] * B
        active = torch.arange(B, device=dev)          # original row of each batch row
        rows = None
        if any(j.constraints for j in jobs):
            rows = [(jobs[j].constraints or {}).get(item) for j, p in enumerate(prepared) for item in p[0]]
            for b, row in enumerate(rows):
                if row is not None:
                    row.start(scores[b][2], scores[b][0])
        stats["decoding"] = "grounded" if rows else "free"
        if getattr(engine, "static_decode", False):
            from care_model.inference.static_decode import decode_static

            t2 = time.perf_counter()
            generated, finished, n_steps, stats["graphs"] = decode_static(
                engine, logits=logits, pick=pick_tokens, rows=rows, groups=PrefixGroups(prefixes, counts),
                bufs_k=bufs_k, bufs_v=bufs_v, bias_all=torch.where(key_ok, zero, neg), S=S, steps=steps,
                next_pos=torch.tensor([len(prepared[j][1]) for j in session_of], device=dev)
                + torch.tensor(lens, device=dev), max_new_tokens=max_new_tokens, stop=stop, report=report)
            return _finish(engine, stats, prepared, scores, generated, finished, n_steps, t0, t2)
        next_tok = pick_tokens(logits, rows)
        next_pos = torch.tensor([len(prepared[j][1]) for j in session_of], device=dev) + torch.tensor(lens, device=dev)
        bias_all = torch.where(key_ok, zero, neg)      # [B, cap]
        groups = PrefixGroups(prefixes, counts)
        t2 = time.perf_counter()
        n_steps = 0
        for t in range(steps + 1):
            toks = next_tok.tolist()
            is_stop = torch.isin(next_tok, stop).tolist()
            keep = []
            for j, row in enumerate(active.tolist()):
                generated[row].append(toks[j])
                if rows and rows[row] is not None:
                    rows[row].advance(toks[j])
                if is_stop[j]:
                    finished[row] = True
                elif len(generated[row]) < max_new_tokens:
                    keep.append(j)
            if not keep or t == steps:
                break
            if len(keep) < active.numel():  # drop finished rows from the batch (row order is kept)
                sel = torch.tensor(keep, device=dev)
                bufs_k = [bk.index_select(0, sel) for bk in bufs_k]
                bufs_v = [bv.index_select(0, sel) for bv in bufs_v]
                active, next_tok, next_pos, bias_all = (active[sel], next_tok[sel], next_pos[sel],
                                                        bias_all.index_select(0, sel))
                kept = active.tolist()
                groups = PrefixGroups(prefixes, [sum(session_of[r] == j for r in kept) for j in range(len(jobs))])
            end = S + t + 1
            logits = engine._step(next_tok[:, None], next_pos[:, None], groups, bufs_k, bufs_v, S + t,
                                  bias_all[:, None, None, None, :end])
            next_tok = pick_tokens(logits, [rows[r] for r in active.tolist()] if rows else None)
            next_pos = next_pos + 1
            n_steps += 1
            report(0.4 + 0.6 * (t + 1) / max(1, steps), f"decoding {t + 1}/{steps}")
        return _finish(engine, stats, prepared, scores, generated, finished, n_steps, t0, t2)


def _finish(engine, stats, prepared, scores, generated, finished, n_steps, t0, t2):
    engine._sync()
    stats["decode_s"] = time.perf_counter() - t2
    stats["decode_steps"] = n_steps
    stats["generated_tokens"] = sum(len(g) for g in generated)
    stats["total_s"] = time.perf_counter() - t0
    engine.last_stats = stats
    return _outputs(engine, prepared, scores, generated, finished)


def _outputs(engine, prepared, scores, generated, finished) -> list[dict[int, ItemOutput]]:
    out, b = [], 0
    for items, _, _, _ in prepared:
        one: dict[int, ItemOutput] = {}
        for item in items:
            probs, exp_, arg, mass = scores[b]
            if generated is None:
                one[item] = ItemOutput("", [], probs, exp_, arg, mass, False)
            else:
                one[item] = ItemOutput(engine._decode_text(generated[b]), generated[b], probs, exp_, arg, mass,
                                       finished[b])
            b += 1
        out.append(one)
    return out
