"""The engine's linear layers on the CPU with their weights packed once for oneDNN (what vLLM-CPU does).

``F.linear`` on the CPU hands every call to the BLAS, which re-lays-out (packs) the weight matrix
on each call; a decode step of 12 rows reads each weight once and does little arithmetic with
it, so that packing is most of the step. oneDNN's ``_linear_pointwise`` over a weight reordered
once (``torch.ops.mkldnn._reorder_linear_weight``, the op PyTorch's own compiler uses when it
freezes a model for the CPU) skips it: measured here on 2 cores (SmolLM2-135M's 30 layers and its
49,152-row output layer, float32, 12 rows): layers 60.6 -> 30.2 ms, output layer 22.0 -> 7.3 ms;
48 rows 121 -> 81 and 49 -> 18 ms; a 1,479-token prefill's MLP matrix 17.8 -> 14.3 ms.

:class:`PackedLinears` packs every plain ``torch.nn.Linear`` it is given (a peft LoRA wrapper or any
other module is called as it is), keeps the packed copy on the module, beside the model's own weight (which
the reference path and training still use: memory for one more copy of the linear weights; every
engine over the same model shares it), repacks
when the weight changes in place (its version counter), and checks the op once against
``F.linear`` (relative 1e-4 in float32, 3e-2 in half precision) before trusting it; any failure
turns packing off for the engine (``reason`` says why). The results differ from ``F.linear`` by
rounding only (a different summation order), as vLLM's do; the tests check that the tokens agree.

``$CARE_PACKED_LINEAR=0`` (or ``Engine(packed_linear=False)``) turns it off.
"""
from __future__ import annotations

import os


def packing_wanted(choice: bool | None, device_type: str) -> bool:
    """``choice`` when given, else ``$CARE_PACKED_LINEAR`` (0/1), else on for the CPU."""
    if choice is not None:
        return bool(choice)
    env = os.environ.get("CARE_PACKED_LINEAR", "").strip()
    return env != "0" if env else device_type == "cpu"


class PackedLinears:
    """``self(module, x)``: ``module(x)`` computed from its packed weight when it has one."""

    def __init__(self, torch, modules, *, enabled: bool = True, batch_hint: int = 12):
        self.torch = torch
        self.hint = batch_hint
        self._packed: set[int] = set()      # id() of the modules this engine runs packed
        self.enabled = False
        self.reason = "off"
        if not enabled:
            return
        try:
            self.torch.ops.mkldnn._linear_pointwise  # noqa: B018 -- absent in builds without oneDNN
        except (AttributeError, RuntimeError):
            self.reason = "this PyTorch build has no oneDNN linear"
            return
        linear = torch.nn.Linear
        mods = [m for m in modules if type(m) is linear and m.weight.device.type == "cpu"]
        if not mods:
            self.reason = "no plain linear layers on the CPU"
            return
        try:
            for m in mods:
                if not self._fresh(m):
                    m._care_packed = self._pack(m)
                self._packed.add(id(m))
            self.enabled = self._check(mods[0])
        except Exception as err:  # noqa: BLE001 -- a private op: any failure means "not here"
            self.enabled, self.reason = False, f"packing failed ({type(err).__name__}: {err})"
        if not self.enabled:
            self._packed.clear()
            for m in mods:  # no packed copies left behind on the model
                m.__dict__.pop("_care_packed", None)
        else:
            self.reason = f"{len(self._packed)} linear layers packed for oneDNN"

    def _pack(self, m) -> list:
        """[weight version, data pointer, packed weight], kept on the module (engines over one model share it)."""
        w = m.weight.detach()
        return [w._version, w.data_ptr(), self.torch.ops.mkldnn._reorder_linear_weight(w, self.hint)]

    @staticmethod
    def _fresh(m) -> bool:
        entry = getattr(m, "_care_packed", None)
        return entry is not None and entry[0] == m.weight._version and entry[1] == m.weight.data_ptr()

    def _check(self, m) -> bool:
        torch = self.torch
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(5, m.in_features, generator=gen).to(m.weight.dtype)
        with torch.inference_mode():
            ref = torch.nn.functional.linear(x, m.weight, m.bias).float()
            got = self(m, x).float()
        tol = 1e-4 if m.weight.dtype in (torch.float32, torch.float64) else 3e-2
        ok = got.shape == ref.shape and (got - ref).abs().max().item() <= tol * (1.0 + ref.abs().max().item())
        if not ok:
            self.reason = "oneDNN's packed linear disagreed with F.linear"
        return ok

    def __call__(self, m, x):
        if id(m) not in self._packed:
            return m(x)
        if not self._fresh(m):  # the weight changed in place since it was packed
            m._care_packed = self._pack(m)
        return self.torch.ops.mkldnn._linear_pointwise(x, m._care_packed[2], m.bias, "none", [], "")


def layer_linears(core, lm_head) -> list:
    """The linear modules the engine calls: per layer q/k/v/o and the MLP's gate/up/down, and the output layer."""
    out = []
    for layer in core.layers:
        attn, mlp = layer.self_attn, layer.mlp
        out += [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        out += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    out.append(lm_head)
    return [m for m in out if m is not None]
