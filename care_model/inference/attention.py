"""The attention of :class:`care_model.inference.engine.Engine` (a mixin): q/k/v projections with RoPE,
causal self-attention for the prefix, and the split attention of the item rows -- the shared prefix in one
pass for every row, the row's own keys apart -- merged exactly through their log-sum-exps (cascade attention).

For the prefix part PyTorch's fused flash-attention kernel (which also returns the log-sum-exp)
is used where this build has it, checked once against the plain matmuls; otherwise plain
matmuls, chunked over the queries so that the score tensor stays small. The mixin uses the
engine's ``torch``, ``head_dim``, ``_rope``, ``_sdpa_gqa`` and ``_fused_prefix`` attributes.
"""
from __future__ import annotations

from dataclasses import dataclass

# Bound on the [kv_heads, queries, P] score tensor of the shared-prefix attention (elements).
_PREFIX_SCORE_ELEMS = 1 << 25


@dataclass
class PrefixCache:
    """The shared prefix's per-layer keys and values (what the item rows attend to)."""

    keys: list            # per layer [kv_heads, P, head_dim] (after RoPE)
    values: list
    length: int


@dataclass
class PrefixGroups:
    """Several sessions' prefixes in one decode batch: the first ``counts[0]`` rows attend to
    ``caches[0]``, the next ``counts[1]`` to ``caches[1]``, ... (cascade attention per prefix)."""

    caches: list          # PrefixCache per session
    counts: list          # rows of each session in the batch, in row order (0: all finished)


class PrefixAttention:
    def _qkv(self, attn, h, cos, sin):
        """q [B, H, T, d], k/v [B, kv, T, d] with RoPE applied (and q/k norms when present)."""
        apply_rotary_pos_emb, lin = self._rope, self._lin
        B, T, _ = h.shape
        d = self.head_dim
        q = lin(attn.q_proj, h).view(B, T, -1, d)
        k = lin(attn.k_proj, h).view(B, T, -1, d)
        v = lin(attn.v_proj, h).view(B, T, -1, d)
        if hasattr(attn, "q_norm"):
            q = attn.q_norm(q)
        if hasattr(attn, "k_norm"):
            k = attn.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q.contiguous(), k, v

    def _causal_sdpa(self, F, q, k, v, scale):
        groups = q.shape[1] // k.shape[1]
        if groups > 1 and self._sdpa_gqa:
            try:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
            except (TypeError, RuntimeError):
                self._sdpa_gqa = False
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)

    def _attend(self, attn, q, layer_idx, prefix: PrefixCache, own_k, own_v, own_bias):
        """Attention of q [B, H, T, d] over (shared prefix) + (own keys own_k [B, kv, Tk, d]).

        ``prefix`` is one :class:`PrefixCache` for every row, or :class:`PrefixGroups` (rows grouped by session).

        ``own_bias`` is an additive mask broadcastable to [B, 1, 1, T, Tk] (0 or -inf).
        Returns [B, T, H*d]. The two softmaxes are merged exactly via their log-sum-exps.
        """
        torch = self.torch
        B, H, T, d = q.shape
        kv = own_k.shape[1]
        g = H // kv
        acc = torch.promote_types(q.dtype, torch.float32)
        scale = attn.scaling
        # ---- own part: [B, kv, g*T, d] x [B, kv, d, Tk]
        s2 = torch.matmul(q.reshape(B, kv, g * T, d), own_k.transpose(-1, -2)).to(acc)
        s2 = s2.view(B, kv, g, T, -1).mul_(scale).add_(own_bias)
        m2 = s2.amax(-1, keepdim=True)
        s2.sub_(m2).exp_()
        l2 = s2.sum(-1, keepdim=True)
        o2 = torch.matmul(s2.to(own_v.dtype).view(B, kv, g * T, -1), own_v).view(B, kv, g, T, d).to(acc)
        lse2 = m2 + torch.log(l2)
        o2.div_(l2)
        groups = prefix.counts if isinstance(prefix, PrefixGroups) else [B]
        caches = prefix.caches if isinstance(prefix, PrefixGroups) else [prefix]
        if all(c.length == 0 for c, n in zip(caches, groups) if n):
            out = o2
        else:
            # ---- shared part, per prefix: all its rows' queries of a kv group in one pass against [kv, P, d]
            o1s, lse1s, lo = [], [], 0
            for cache, n in zip(caches, groups):
                if not n:
                    continue
                if cache.length == 0:  # no shared prefix: nothing to merge for these rows
                    o1s.append(torch.zeros(n, kv, g, T, d, dtype=acc, device=q.device))
                    lse1s.append(torch.full((n, kv, g, T, 1), float("-inf"), dtype=acc, device=q.device))
                else:
                    qp = q[lo:lo + n].reshape(n, kv, g, T, d).permute(1, 0, 2, 3, 4).reshape(kv, n * g * T, d)
                    o1, lse1 = self._prefix_attention(qp, cache.keys[layer_idx], cache.values[layer_idx], scale, acc)
                    o1s.append(o1.view(kv, n, g, T, d).permute(1, 0, 2, 3, 4))
                    lse1s.append(lse1.view(kv, n, g, T, 1).permute(1, 0, 2, 3, 4))
                lo += n
            o1 = o1s[0] if len(o1s) == 1 else torch.cat(o1s)
            lse1 = lse1s[0] if len(lse1s) == 1 else torch.cat(lse1s)
            lse = torch.logaddexp(lse1, lse2)
            out = o1 * torch.exp(lse1 - lse) + o2 * torch.exp(lse2 - lse)
        # [B, kv, g, T, d] -> [B, T, H*d]
        return out.to(q.dtype).reshape(B, H, T, d).transpose(1, 2).reshape(B, T, H * d)

    def _prefix_attention(self, qp, Kp, Vp, scale, acc):
        """softmax(qp Kp^T * scale) Vp and its log-sum-exp, for qp [kv, N, d] against the shared [kv, P, d].

        Uses PyTorch's fused flash-attention kernel (which returns the log-sum-exp) when this build
        has it, checked once against the plain computation; otherwise plain matmuls, chunked over
        the queries so the score tensor stays small. Returns (o [kv, N, d], lse [kv, N, 1]) in ``acc``.
        """
        if self._fused_prefix is not False:
            try:
                fused = self._fused_prefix_call(qp, Kp, Vp, scale)
            except Exception:  # noqa: BLE001 - a private op: any failure means "not here"
                fused = None
            if fused is not None and self._fused_prefix is None:  # first use: check it once
                ref = self._plain_prefix_attention(qp, Kp, Vp, scale, acc)
                tol = 1e-4 if qp.dtype in (self.torch.float32, self.torch.float64) else 3e-2
                ok = all((f.to(acc) - r).abs().max().item() <= tol * (1.0 + r.abs().max().item())
                         for f, r in zip(fused, ref))
                self._fused_prefix = bool(ok)
                if not ok:
                    return ref
            if fused is not None and self._fused_prefix:
                return fused[0].to(acc), fused[1].to(acc)
            self._fused_prefix = False
        return self._plain_prefix_attention(qp, Kp, Vp, scale, acc)

    def _fused_prefix_call(self, qp, Kp, Vp, scale):
        aten = self.torch.ops.aten
        q, k, v = qp[None], Kp[None], Vp[None]
        if qp.device.type == "cpu":
            o, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)
        elif qp.device.type == "cuda" and qp.dtype in (self.torch.float16, self.torch.bfloat16):
            res = aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)
            o, lse = res[0], res[1]
        else:
            return None
        n = qp.shape[1]
        if o.shape != q.shape or lse.shape[-1] < n:
            return None
        return o[0], lse[0, :, :n].unsqueeze(-1)

    def _plain_prefix_attention(self, qp, Kp, Vp, scale, acc):
        torch = self.torch
        kv, N, _ = qp.shape
        step = max(1, _PREFIX_SCORE_ELEMS // max(1, kv * Kp.shape[1]))
        o_parts, lse_parts = [], []
        for start in range(0, N, step):
            s1 = torch.matmul(qp[:, start:start + step], Kp.transpose(-1, -2)).to(acc).mul_(scale)
            m1 = s1.amax(-1, keepdim=True)
            s1.sub_(m1).exp_()
            l1 = s1.sum(-1, keepdim=True)
            o_parts.append(torch.matmul(s1.to(Vp.dtype), Vp).to(acc).div_(l1))
            lse_parts.append(m1 + torch.log(l1))
        if len(o_parts) == 1:
            return o_parts[0], lse_parts[0]
        return torch.cat(o_parts, dim=1), torch.cat(lse_parts, dim=1)
