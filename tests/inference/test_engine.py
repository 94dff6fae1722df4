"""care_model.inference.engine: the shared-prefix batched path gives exactly what 12 independent generate calls give."""
from __future__ import annotations

import math

import pytest

from care_model.inference.engine import Engine
from care_model.inference.item_output import ItemOutput
from care_model.core.errors import ModelError
from care_model.inference.models import ModelSpec, load_model, model_version_id
from care_model.text.prompt import build_session_prompt
from care_model.core.records import Session, Turn
from tiny_model import _EN, _ZH, build_tiny_model

MAX_NEW = 24
PROB_ATOL = 1e-4
VARIANTS = {"qkv-bias": {"attention_bias": True}, "llama3-rope": {"rope_parameters": {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}}


# ----------------------------------------------------------------------------- helpers
def _session(n: int) -> Session:
    """Three different sessions: English, Chinese, a longer English one (different suffix lengths)."""
    lang, src = [("en", _EN), ("zh", _ZH), ("en", _EN[::-1])][n % 3]
    turns = [Turn(i, ("counselor", "client")[i % 2], src[(i * 7 + n) % len(src)]) for i in range(6 + 4 * n)]
    return Session(f"s{n}", turns, language=lang)


def _ids(engine: Engine, session: Session):
    tok = engine.tokenizer
    render = lambda m: tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)  # noqa: E731
    return engine.encode_prompt(build_session_prompt(session, render_chat=render))


def _assert_same(fast: dict, naive: dict, *, tokens: bool = True):
    assert list(fast) == list(naive)
    for item in fast:
        f, n = fast[item], naive[item]
        assert isinstance(f, ItemOutput)
        if tokens:
            assert f.token_ids == n.token_ids, f"item {item}: fast {f.token_ids} != naive {n.token_ids}"
            assert f.text == n.text
            assert f.finished == n.finished
        assert f.option_probs == pytest.approx(n.option_probs, abs=PROB_ATOL)
        assert f.argmax_score == n.argmax_score
        assert f.expected_score == pytest.approx(n.expected_score, abs=5 * PROB_ATOL)
        assert math.isclose(sum(f.option_probs), 1.0, abs_tol=1e-6)


def _pick_stop_token(outputs: dict) -> int | None:
    """A generated token that first appears at different positions in different rows (and not in all rows):
    using it as the stop token gives rows that stop at different lengths and rows that run to the limit."""
    rows = [o.token_ids for o in outputs.values()]
    best, best_key = None, None
    for tok in sorted({t for r in rows for t in r}):
        firsts = [r.index(tok) for r in rows if tok in r[:-1]]
        absent = sum(tok not in r for r in rows)
        key = (len(set(firsts)), absent > 0, -tok)
        if len(set(firsts)) >= 2 and (best_key is None or key > best_key):
            best, best_key = tok, key
    return best


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(ModelSpec(base=str(tiny_model_dir)))


@pytest.fixture(scope="module")
def engine(tiny):
    return Engine(tiny)


# ----------------------------------------------------------------------------- equality
def test_fast_equals_naive_with_eos_stops_float32(tiny):
    """Exact greedy tokens and close probabilities, 3 sessions, 12 items each, rows stopping at their own EOS."""
    lengths, unfinished = set(), 0
    for n in range(3):
        engine = Engine(tiny)
        prefix, suffixes = _ids(engine, _session(n))
        assert len(set(map(len, suffixes.values()))) > 3  # suffixes of different lengths
        free = engine.run_session_naive(prefix, suffixes, max_new_tokens=MAX_NEW)
        stop = _pick_stop_token(free)
        assert stop is not None
        engine = Engine(tiny, stop_token_ids=engine.stop_token_ids + [stop])
        naive = engine.run_session_naive(prefix, suffixes, max_new_tokens=MAX_NEW)
        fast = engine.run_session(prefix, suffixes, max_new_tokens=MAX_NEW)
        _assert_same(fast, naive)
        lengths |= {len(o.token_ids) for o in fast.values() if o.finished}
        unfinished += sum(not o.finished for o in fast.values())
        assert all(len(o.token_ids) == MAX_NEW for o in fast.values() if not o.finished)
        assert all(o.token_ids[-1] == stop for o in fast.values() if o.finished)
        assert engine.last_stats["path"] == "fast"
    assert len(lengths) >= 3, f"rows stopped at too few distinct lengths: {lengths}"
    assert unfinished > 0


def test_fast_equals_naive_without_stops(engine):
    prefix, suffixes = _ids(engine, _session(1))
    fast = engine.run_session(prefix, suffixes, max_new_tokens=MAX_NEW)
    stats = dict(engine.last_stats)
    naive = engine.run_session_naive(prefix, suffixes, max_new_tokens=MAX_NEW)
    _assert_same(fast, naive)
    assert stats["path"] == "fast" and stats["items"] == 12 and stats["prefix_tokens"] >= len(prefix)
    assert stats["decode_steps"] <= MAX_NEW - 1


def test_scores_only_same_probs_no_decoding(engine, monkeypatch):
    prefix, suffixes = _ids(engine, _session(0))
    full = engine.run_session(prefix, suffixes, max_new_tokens=8)
    calls = []
    for name in ("_step", "_suffix_block"):
        real = getattr(engine, name)
        monkeypatch.setattr(engine, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    only = engine.run_session(prefix, suffixes, scores_only=True)
    assert calls == ["_suffix_block"]  # the suffix block only: no decode step
    assert engine.last_stats["decode_steps"] == 0 and engine.last_stats["generated_tokens"] == 0
    for item in full:
        assert only[item].token_ids == [] and only[item].text == ""
        assert only[item].option_probs == pytest.approx(full[item].option_probs, abs=1e-6)
        assert only[item].argmax_score == full[item].argmax_score
    naive = engine.run_session_naive(prefix, suffixes, scores_only=True)
    _assert_same(only, naive)


def test_common_suffix_start_is_folded_into_prefix(engine):
    """A prompt split early (suffixes sharing leading tokens) gives the same result, with less work."""
    prefix, suffixes = _ids(engine, _session(0))
    cut = len(prefix) - 7
    moved, short_prefix = prefix[cut:], prefix[:cut]
    long_suffixes = {i: moved + s for i, s in suffixes.items()}
    fast = engine.run_session(short_prefix, long_suffixes, max_new_tokens=6)
    assert engine.last_stats["folded_into_prefix"] >= 7
    naive = engine.run_session_naive(short_prefix, long_suffixes, max_new_tokens=6)
    _assert_same(fast, naive)


def test_single_item_and_empty_prefix(engine):
    prefix, suffixes = _ids(engine, _session(0))
    one = {5: suffixes[5]}
    _assert_same(engine.run_session(prefix, one, max_new_tokens=5), engine.run_session_naive(prefix, one,
                                                                                             max_new_tokens=5))
    whole = {3: prefix + suffixes[3], 7: prefix[:40] + suffixes[7]}
    _assert_same(engine.run_session([], whole, max_new_tokens=5), engine.run_session_naive([], whole, max_new_tokens=5))
    with pytest.raises(ModelError):
        engine.run_session(prefix, {1: []})
    with pytest.raises(ModelError):
        engine.run_session(prefix, {})


def test_progress_is_reported(engine):
    prefix, suffixes = _ids(engine, _session(0))
    seen = []
    engine.run_session(prefix, suffixes, max_new_tokens=4, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) >= 3


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_equals_naive_on_variants(tmp_path, variant):
    """Qwen2-style attention biases and Llama-3.1 rope scaling go through the same modules."""
    kwargs = VARIANTS[variant]
    path = build_tiny_model(tmp_path / variant, seed=3, **kwargs)
    engine = Engine(load_model(ModelSpec(base=str(path))))
    prefix, suffixes = _ids(engine, _session(2))
    _assert_same(engine.run_session(prefix, suffixes, max_new_tokens=10),
                 engine.run_session_naive(prefix, suffixes, max_new_tokens=10))


# ----------------------------------------------------------------------------- grounded decoding
def _rows(engine: Engine, session: Session, items, k: int = 3):
    """Grounded row states (care_model.text.grounding) per item; candidates ranked by turn length (no embeddings)."""
    from care_model.text.grounding_vocab import vocabulary_for
    from care_model.text.grounding import build_rows
    from care_model.text.grounding_turns import rank_candidates

    vocab = vocabulary_for(engine.tokenizer, engine.stop_token_ids)
    cands = {i: rank_candidates(session.turns, [len(t.text) * (1 + (n + i) % 3) for n, t in enumerate(session.turns)],
                                k)
             for i in items}
    return build_rows(vocab, session.turns, cands, engine.option_token_ids(session.language), language=session.language)


def _check_grounded(engine: Engine, session: Session, max_new: int = 40, k: int = 3) -> dict:
    """Grounded fast == grounded naive; returns the fast outputs. Every output's score line is the argmax
    option and every quote is verbatim in the item's candidate turns."""
    from care_model.text.evidence import TranscriptIndex

    prefix, suffixes = _ids(engine, session)
    rows = _rows(engine, session, suffixes, k)
    fast = engine.run_session(prefix, suffixes, max_new_tokens=max_new, constraints=rows)
    assert engine.last_stats["decoding"] == "grounded"
    naive = engine.run_session_naive(prefix, suffixes, max_new_tokens=max_new,
                                     constraints=_rows(engine, session, suffixes, k))
    _assert_same(fast, naive)
    option_ids = engine.option_token_ids(session.language)
    for item, out in fast.items():
        assert out.token_ids[0] in option_ids[out.argmax_score]
        index = TranscriptIndex([t for t in session.turns if t.index in rows[item].candidate_turns])
        ev = index.link(out.text.split("\n", 1)[1])
        assert ev.unsupported == [] and ev.turn_indices, (item, out.text)
    return fast


@pytest.mark.parametrize("n", [0, 1, 2])
def test_grounded_fast_equals_naive(tiny, n):
    """Each of the 12 rows keeps its own constraint state; the LogitsProcessor path gives the same tokens."""
    engine = Engine(tiny)
    # k=2 is below the 3 client turns of session 0, so the items' rows differ in which turns they may quote
    # (with every client turn a candidate of every item, the random model may write one answer 12 times)
    fast = _check_grounded(engine, _session(n), k=2)
    prefix, suffixes = _ids(engine, _session(n))
    free = engine.run_session(prefix, suffixes, max_new_tokens=40)
    assert all(fast[i].token_ids != free[i].token_ids for i in fast), "the constraint changes what is written"
    assert len({tuple(o.token_ids) for o in fast.values()}) >= 2 or n == 1


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_grounded_fast_equals_naive_on_variants(tmp_path, variant):
    kwargs = VARIANTS[variant]
    engine = Engine(load_model(ModelSpec(base=str(build_tiny_model(tmp_path / variant, seed=3, **kwargs)))))
    _check_grounded(engine, _session(2), max_new=30)


# ----------------------------------------------------------------------------- option tokens
def test_option_tokens_sum_spellings(engine):
    tok = engine.tokenizer
    bare = tok("4", add_special_tokens=False)["input_ids"]
    spaced = tok(" 4", add_special_tokens=False)["input_ids"]
    assert len(bare) == 1 and len(spaced) == 1 and bare != spaced  # the tiny vocabulary has both
    ids = engine.option_token_ids("en")
    assert set(ids) == {1, 2, 3, 4, 5}
    assert bare[0] in ids[4] and spaced[0] in ids[4]
    flat = [t for v in ids.values() for t in v]
    assert len(flat) == len(set(flat))  # no token counts for two options
    assert engine.option_token_ids("zh")[4][:2] == ids[4][:2]

    import torch

    three = tok("3", add_special_tokens=False)["input_ids"][0]
    logits = torch.zeros(len(tok))
    logits[bare[0]] = logits[spaced[0]] = 30.0
    logits[three] = 30.0 + math.log(2.0)  # one token with twice the probability of each 4-token
    probs, expected, argmax, mass = engine._score(logits, ids)
    assert probs[2] == pytest.approx(0.5, abs=1e-6) and probs[3] == pytest.approx(0.5, abs=1e-6)
    assert expected == pytest.approx(3.5, abs=1e-5) and argmax in (3, 4) and mass == pytest.approx(1.0, abs=1e-6)


def test_option_tokens_exclude_bare_space_and_markdown(engine):
    tok = engine.tokenizer
    ids = engine.option_token_ids("en")
    flat = {t for v in ids.values() for t in v}
    for junk in (" ", "\n", "*", "**", "."):
        enc = tok(junk, add_special_tokens=False)["input_ids"]
        assert not (set(enc) & flat)


# ----------------------------------------------------------------------------- LoRA
@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                     "o_proj"],
                                                 init_lora_weights=False, lora_dropout=0.0))
    out = tmp_path_factory.mktemp("adapters") / "lora-a"
    peft_model.save_pretrained(str(out))
    return out


def test_lora_adapter_changes_outputs_and_fast_equals_naive(tiny_model_dir, lora_dir, engine):
    spec = ModelSpec(base=str(tiny_model_dir), adapter=str(lora_dir))
    loaded = load_model(spec)
    assert type(loaded.model).__name__.startswith("Peft")
    assert loaded.version_info["adapter_name"] == "lora-a"
    assert model_version_id(spec).startswith("tiny-llama+lora-a@")
    lora = Engine(loaded)
    prefix, suffixes = _ids(lora, _session(0))
    fast = lora.run_session(prefix, suffixes, max_new_tokens=12)
    naive = lora.run_session_naive(prefix, suffixes, max_new_tokens=12)
    _assert_same(fast, naive)
    plain = engine.run_session(prefix, suffixes, max_new_tokens=12)
    assert any(fast[i].token_ids != plain[i].token_ids for i in fast)
    assert max(abs(a - b) for i in fast for a, b in zip(fast[i].option_probs, plain[i].option_probs)) > 1e-3


def test_fused_and_plain_prefix_attention_agree(tiny):
    """The fused kernel (checked once, then used) and the plain matmul path give the same answers.

    Fails rather than passes if the fused kernel is missing from this torch build (it would then
    compare plain with plain): the pinned CPU build has it, and the engine must be using it."""
    import torch

    fused, plain = Engine(tiny), Engine(tiny)
    calls = []
    real_call = fused._fused_prefix_call

    def counting(*args):
        out = real_call(*args)
        calls.append(out is not None)
        return out

    fused._fused_prefix_call = counting
    prefix, suffixes = _ids(fused, _session(2))
    a = fused.run_session(prefix, suffixes, max_new_tokens=8)
    assert calls and all(calls), "the fused prefix kernel did not run: this build or the engine lost it"
    assert fused._fused_prefix is True, "the fused kernel disagreed with the plain path on first use"
    plain._fused_prefix = False
    plain._fused_prefix_call = lambda *args: pytest.fail("the plain engine called the fused kernel")
    b = plain.run_session(prefix, suffixes, max_new_tokens=8)
    _assert_same(a, b)
    # The two paths on the same tensors, directly (values, not only the argmax tokens).
    g = torch.Generator().manual_seed(0)
    qp, kp, vp = (torch.randn(2, n, 16, generator=g) for n in (7, 33, 33))
    f_o, f_lse = fused._fused_prefix_call(qp, kp, vp, 0.25)
    p_o, p_lse = plain._plain_prefix_attention(qp, kp, vp, 0.25, torch.float32)
    assert torch.allclose(f_o, p_o, atol=1e-5) and torch.allclose(f_lse, p_lse, atol=1e-5)


def test_threads_default_leaves_a_core(tiny, monkeypatch):
    import os

    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(16)
        monkeypatch.delenv("CARE_TORCH_THREADS", raising=False)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # as if 8 usable cores
        assert Engine(tiny).num_threads == 7 and torch.get_num_threads() == 7
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})            # one core: still one thread
        assert Engine(tiny).num_threads == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})         # this machine's 2 cores
        assert Engine(tiny).num_threads == 1
        monkeypatch.setenv("CARE_TORCH_THREADS", "3")
        assert Engine(tiny).num_threads == 3 and torch.get_num_threads() == 3
        assert Engine(tiny, num_threads=2).num_threads == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
