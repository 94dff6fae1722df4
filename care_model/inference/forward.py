"""The forward passes of :class:`care_model.inference.engine.Engine` (a mixin over
:class:`~care_model.inference.attention.PrefixAttention`): the shared prefix once (causal, keeping its
per-layer K/V), all item suffixes as one packed block, and the batched decode steps.

The mixin uses the engine's ``torch``, ``core``, ``device``, ``lm_head`` and ``_lin`` (its linear layers,
:class:`care_model.inference.packed.PackedLinears`) attributes.
"""
from __future__ import annotations

from care_model.inference.attention import PrefixAttention, PrefixCache


class PrefixForward(PrefixAttention):
    def _mlp_block(self, layer, x):
        h = layer.post_attention_layernorm(x)
        mlp, lin = layer.mlp, self._lin
        if lin.enabled and hasattr(mlp, "act_fn") and hasattr(mlp, "gate_proj"):  # the Llama MLP, packed weights
            return x + lin(mlp.down_proj, mlp.act_fn(lin(mlp.gate_proj, h)) * lin(mlp.up_proj, h))
        return x + mlp(h)

    def _prefill(self, prefix_ids: list[int]) -> PrefixCache:
        """Forward the shared prefix once (causal), keeping only its per-layer K/V."""
        torch = self.torch
        F = torch.nn.functional
        core = self.core
        P = len(prefix_ids)
        if P == 0:
            return PrefixCache([], [], 0)
        ids = torch.tensor([prefix_ids], device=self.device)
        pos = torch.arange(P, device=self.device)[None]
        x = core.embed_tokens(ids)
        cos, sin = core.rotary_emb(x, pos)
        keys, values = [], []
        for layer in core.layers:
            attn = layer.self_attn
            q, k, v = self._qkv(attn, layer.input_layernorm(x), cos, sin)
            o = self._causal_sdpa(F, q, k, v, attn.scaling)
            keys.append(k[0].contiguous())
            values.append(v[0].contiguous())
            x = x + self._lin(attn.o_proj, o.transpose(1, 2).reshape(1, P, -1))
            x = self._mlp_block(layer, x)
        return PrefixCache(keys, values, P)

    def _suffix_block(self, suffixes: list[list[int]], prefix: PrefixCache, bufs_k, bufs_v, S: int, neg, zero):
        """All item suffixes as one packed sequence (no padding): each token attends to the shared prefix
        and causally to its own row's earlier tokens (block-diagonal mask); positions continue from P.
        Writes each row's K/V into its left-padded buffer (ending at slot S) when buffers are given.
        Returns the logits at each row's last token [B, V] (the score position)."""
        torch = self.torch
        core, dev = self.core, self.device
        lens = torch.tensor([len(s) for s in suffixes], device=dev)
        B = len(suffixes)
        row = torch.repeat_interleave(torch.arange(B, device=dev), lens)             # [L] row of each token
        starts = torch.cumsum(lens, 0) - lens
        offs = torch.arange(int(lens.sum()), device=dev) - starts[row]                # offset within the row
        ids = torch.tensor([t for s in suffixes for t in s], dtype=torch.long, device=dev)[None]
        pos = (prefix.length + offs)[None]
        allowed = (row[:, None] == row[None, :]) & (offs[:, None] >= offs[None, :])  # [L(query), L(key)]
        bias = torch.where(allowed, zero, neg)[None, None, None]                     # [1, 1, 1, L, L]
        slot = S - lens[row] + offs                                                  # left-padded slot
        x = core.embed_tokens(ids)
        cos, sin = core.rotary_emb(x, pos)
        for i, layer in enumerate(core.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, layer.input_layernorm(x), cos, sin)
            if bufs_k is not None:
                bufs_k[i][row, :, slot] = k[0].transpose(0, 1)
                bufs_v[i][row, :, slot] = v[0].transpose(0, 1)
            o = self._attend(attn, q, i, prefix, k, v, bias)
            x = x + self._lin(attn.o_proj, o)
            x = self._mlp_block(layer, x)
        last = starts + lens - 1
        logits = self._lin(self.lm_head, core.norm(x[0, last]))
        return logits if logits.dtype == torch.float64 else logits.float()

    def _step(self, ids, pos, prefix: PrefixCache, bufs_k, bufs_v, start: int, own_bias):
        """One decode step (or any block of T tokens per row): ids [B, T] at positions pos [B, T]; writes
        their K/V to slots start..start+T-1 of the per-row buffers and attends over the shared prefix and
        slots [0, start+T) with ``own_bias``. Returns the last position's logits [B, V]."""
        core = self.core
        T = ids.shape[1]
        x = core.embed_tokens(ids)
        cos, sin = core.rotary_emb(x, pos)
        end = start + T
        for i, layer in enumerate(core.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, layer.input_layernorm(x), cos, sin)
            bufs_k[i][:, :, start:end] = k
            bufs_v[i][:, :, start:end] = v
            o = self._attend(attn, q, i, prefix, bufs_k[i][:, :, :end], bufs_v[i][:, :, :end], own_bias)
            x = x + self._lin(attn.o_proj, o)
            x = self._mlp_block(layer, x)
        logits = self._lin(self.lm_head, core.norm(x[:, -1:, :]))[:, -1, :]
        return logits if logits.dtype == self.torch.float64 else logits.float()
