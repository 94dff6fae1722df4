"""The decode loop of :mod:`care_model.inference.batch` with static shapes, replayed as a CUDA graph on a GPU.

The dynamic loop (:func:`care_model.inference.batch.run_batch`) drops finished rows from the batch and
attends over the slots written so far (``[:S + t + 1]``), so every step has new shapes and every
layer's kernels are launched from Python: on a GPU a 12-row step of an 8B model measured 33-50 ms,
launch-bound, where reading the weights takes about 3.3 ms. Here instead:

* the batch keeps all its rows to the end (a finished row's token is ignored), the per-row K/V buffers
  are written at a slot held in a tensor (``index_copy_``), and every step attends over all slots with
  a mask updated in place, so **every step has the same shapes and the same tensors**;
* on CUDA the step is captured once per batch as a **CUDA graph** (after two eager warm-up steps on a
  side stream) and replayed each step: one launch instead of hundreds; if capture fails the same
  static step runs eagerly and ``engine.last_stats["graphs"]`` says why;
* on the CPU the static step runs eagerly (``Engine(static_decode=True)``; the tests check it gives
  the dynamic loop's tokens).

The masked slots add ``exp(-inf) = 0`` to each softmax, so the tokens are the dynamic loop's.
"""
from __future__ import annotations


class StaticStep:
    """One decode step over fixed tensors: ``ids``/``pos`` [B, 1], ``slot`` [1] and ``bias`` [B, cap] are the
    inputs (set in place), ``out`` the logits [B, V]."""

    def __init__(self, engine, groups, bufs_k, bufs_v, bias_all, S: int):
        torch = engine.torch
        self.engine, self.groups, self.bufs_k, self.bufs_v = engine, groups, bufs_k, bufs_v
        B, dev = bufs_k[0].shape[0], engine.device
        self.ids = torch.zeros(B, 1, dtype=torch.long, device=dev)
        self.pos = torch.zeros(B, 1, dtype=torch.long, device=dev)
        self.slot = torch.tensor([S], dtype=torch.long, device=dev)
        self.bias = bias_all.clone()
        self.bias[:, S:] = float("-inf")                  # answer slots open one by one
        self.bias5 = self.bias[:, None, None, None, :]
        self.graph = None
        self.out = None

    def forward(self):
        engine = self.engine
        core = engine.core
        x = core.embed_tokens(self.ids)
        cos, sin = core.rotary_emb(x, self.pos)
        for i, layer in enumerate(core.layers):
            attn = layer.self_attn
            q, k, v = engine._qkv(attn, layer.input_layernorm(x), cos, sin)
            self.bufs_k[i].index_copy_(2, self.slot, k)
            self.bufs_v[i].index_copy_(2, self.slot, v)
            o = engine._attend(attn, q, i, self.groups, self.bufs_k[i], self.bufs_v[i], self.bias5)
            x = x + engine._lin(attn.o_proj, o)
            x = engine._mlp_block(layer, x)
        logits = engine._lin(engine.lm_head, core.norm(x[:, -1:, :]))[:, -1, :]
        return logits if logits.dtype == engine.torch.float64 else logits.float()

    def set(self, next_tok, next_pos, slot: int):
        self.ids.copy_(next_tok[:, None])
        self.pos.copy_(next_pos[:, None])
        self.slot.fill_(slot)
        self.bias[:, slot] = 0.0

    def capture(self) -> str:
        """Capture the step as a CUDA graph (the inputs of the first step must be set). Returns a status."""
        torch = self.engine.torch
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):       # warm-up: lazy initialisation, the fused-attention check, cuBLAS
                    self.forward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.out = self.forward()
            self.graph = graph
            return "cuda-graph"
        except Exception as err:  # noqa: BLE001 - any capture failure: run the same step eagerly
            self.graph = None
            return f"eager (capture failed: {type(err).__name__}: {str(err)[:120]})"

    def run(self):
        if self.graph is None:
            return self.forward()
        self.graph.replay()
        return self.out


def decode_static(engine, *, logits, pick, rows, groups, bufs_k, bufs_v, bias_all, next_pos, S: int, steps: int,
                  max_new_tokens: int, stop, report) -> tuple[list, list, int, str]:
    """The greedy loop over a :class:`StaticStep`: ``(generated, finished, decode steps, graphs status)``."""
    torch = engine.torch
    B = bufs_k[0].shape[0]
    generated: list[list[int]] = [[] for _ in range(B)]
    finished = [False] * B
    live = list(range(B))
    step = StaticStep(engine, groups, bufs_k, bufs_v, bias_all, S)
    status = "eager"
    next_tok = pick(logits, rows)
    n_steps = 0
    for t in range(steps + 1):
        toks = next_tok.tolist()
        is_stop = torch.isin(next_tok, stop).tolist()
        keep = []
        for b in live:
            generated[b].append(toks[b])
            if rows and rows[b] is not None:
                rows[b].advance(toks[b])
            if is_stop[b]:
                finished[b] = True
            elif len(generated[b]) < max_new_tokens:
                keep.append(b)
        live = keep
        alive = set(live)
        if not live or t == steps:
            break
        step.set(next_tok, next_pos, S + t)
        if t == 0 and engine.device.type == "cuda":
            status = step.capture()
        logits = step.run()
        # finished rows still compute (static shapes); their choice is never used
        next_tok = pick(logits, [r if b in alive else None for b, r in enumerate(rows)] if rows else None)
        next_pos = next_pos + 1
        n_steps += 1
        report(0.4 + 0.6 * (t + 1) / max(1, steps), f"decoding {t + 1}/{steps}")
    return generated, finished, n_steps, status
