"""care_model.inference.packed: the engine's linear layers from oneDNN-packed weights give the tokens of the
plain layers, follow weights changed in place, and leave peft wrappers and a switched-off engine alone."""
from __future__ import annotations

import pytest
import torch

from care_model.inference.engine import Engine
from care_model.inference.models import ModelSpec, load_model
from care_model.inference.packed import PackedLinears
from test_engine import _assert_same, _ids, _session


@pytest.fixture()
def tiny(tiny_model_dir):
    """A model of its own per test (one test changes a weight in place)."""
    return load_model(ModelSpec(base=str(tiny_model_dir)))


def _counting(monkeypatch):
    calls = []
    real = torch.ops.mkldnn._linear_pointwise

    class Ops:  # torch.ops.mkldnn with the packed linear counted
        def __getattr__(self, name):
            if name == "_linear_pointwise":
                return lambda *a: calls.append(1) or real(*a)
            return getattr(torch.ops.mkldnn, name)

    monkeypatch.setattr(torch.ops, "mkldnn", Ops(), raising=False)
    return calls


def test_packed_engine_gives_the_plain_engines_tokens_and_runs_every_layer_packed(tiny, monkeypatch):
    plain = Engine(tiny, packed_linear=False)
    assert not plain._lin.enabled
    packed = Engine(tiny)  # the default on the CPU
    n_layers = len(packed.core.layers)
    assert packed._lin.enabled, packed._lin.reason
    assert len(packed._lin._packed) == 7 * n_layers + 1  # q, k, v, o, gate, up, down per layer; the output layer
    calls = _counting(monkeypatch)
    for n in range(3):
        prefix, suffixes = _ids(packed, _session(n))
        a = packed.run_session(prefix, suffixes, max_new_tokens=12)
        assert calls, "the packed engine did not call oneDNN's packed linear"
        b = plain.run_session(prefix, suffixes, max_new_tokens=12)
        _assert_same(a, b)
        calls.clear()
    b = plain.run_session(prefix, suffixes, max_new_tokens=4)
    assert not calls, "the switched-off engine called the packed linear"


def test_a_weight_changed_in_place_is_repacked(tiny):
    engine = Engine(tiny)
    prefix, suffixes = _ids(engine, _session(0))
    before = engine.run_session(prefix, suffixes, scores_only=True)
    with torch.no_grad():
        engine.lm_head.weight.mul_(-1.0)           # tied to the embeddings in the tiny model: both change
        engine.core.layers[0].mlp.down_proj.weight.mul_(3.0)
    after = engine.run_session(prefix, suffixes, scores_only=True)
    reference = Engine(tiny, packed_linear=False).run_session(prefix, suffixes, scores_only=True)
    _assert_same(after, reference, tokens=False)
    assert any(after[i].option_probs != pytest.approx(before[i].option_probs, abs=1e-3) for i in after)


def test_peft_wrappers_and_odd_dtypes_fall_back_to_the_module(tiny):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    layer = model.get_base_model().model.layers[0]
    lin = PackedLinears(torch, [layer.self_attn.q_proj, layer.self_attn.k_proj])
    assert lin.enabled and id(layer.self_attn.q_proj) not in lin._packed and id(layer.self_attn.k_proj) in lin._packed
    x = torch.randn(2, 3, layer.self_attn.q_proj.in_features)
    with torch.inference_mode():
        assert torch.equal(lin(layer.self_attn.q_proj, x), layer.self_attn.q_proj(x))  # the LoRA wrapper itself
        assert torch.allclose(lin(layer.self_attn.k_proj, x), layer.self_attn.k_proj(x), atol=1e-5)
    wide = torch.nn.Linear(8, 4).double()
    off = PackedLinears(torch, [wide])
    assert not off.enabled and off.reason and not hasattr(wide, "_care_packed")
    assert torch.equal(off(wide, torch.ones(1, 8, dtype=torch.float64)), wide(torch.ones(1, 8, dtype=torch.float64)))


def test_the_environment_switches_packing_off(tiny, monkeypatch):
    monkeypatch.setenv("CARE_PACKED_LINEAR", "0")
    assert not Engine(tiny)._lin.enabled
    monkeypatch.setenv("CARE_PACKED_LINEAR", "1")
    assert Engine(tiny)._lin.enabled
