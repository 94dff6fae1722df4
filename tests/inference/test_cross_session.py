"""care_model.inference.batch: several sessions batched per decode step give exactly what one session at a time gives.

CPU float32, the tiny random Llama: sessions of different languages, prefix and suffix lengths, rows
stopping at different steps (an extra stop token), free and grounded decoding mixed in one batch.
"""
from __future__ import annotations

import pytest

from care_model.core.errors import ModelError
from care_model.inference.batch import SessionJob, job_tokens, plan_batches
from care_model.inference.engine import Engine, resolve_threads
from care_model.inference.models import ModelSpec, load_model
from test_engine import _ids, _pick_stop_token, _rows, _session

MAX_NEW = 20


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(ModelSpec(base=str(tiny_model_dir)))


@pytest.fixture(scope="module")
def engine(tiny):
    """An engine with one extra stop token that the tiny model writes at different steps in different rows."""
    plain = Engine(tiny)
    prefix, suffixes = _ids(plain, _session(0))
    stop = _pick_stop_token(plain.run_session(prefix, suffixes, max_new_tokens=MAX_NEW))
    assert stop is not None
    return Engine(tiny, stop_token_ids=plain.stop_token_ids + [stop])


def _assert_identical(a: dict, b: dict):
    assert list(a) == list(b)
    for item in a:
        assert a[item].token_ids == b[item].token_ids, f"item {item}"
        assert a[item].text == b[item].text and a[item].finished == b[item].finished
        assert a[item].argmax_score == b[item].argmax_score
        assert a[item].option_probs == pytest.approx(b[item].option_probs, abs=1e-5)


def test_batched_sessions_equal_one_at_a_time(engine):
    """Three sessions (en, zh, a longer en) in one batch: the same tokens as each session alone, rows
    finishing at different steps and sessions with different suffix lengths (left padding)."""
    sessions = [_session(n) for n in range(3)]
    ids = [_ids(engine, s) for s in sessions]
    alone = [engine.run_session(p, s, max_new_tokens=MAX_NEW, language=ses.language)
             for (p, s), ses in zip(ids, sessions)]
    jobs = [SessionJob(p, s, language=ses.language) for (p, s), ses in zip(ids, sessions)]
    batched = dict(engine.run_sessions(jobs, max_new_tokens=MAX_NEW))
    stats = engine.last_stats
    assert stats["sessions"] == 3 and stats["items"] == 36, "one batch carried all three sessions"
    for n in range(3):
        _assert_identical(batched[n], alone[n])
    assert len({len(p) for p, _ in ids}) == 3, "the sessions have different prefixes"
    assert len({max(map(len, s.values())) for _, s in ids}) >= 2, "and different longest suffixes"
    finished = {len(o.token_ids) for out in batched.values() for o in out.values() if o.finished}
    assert len(finished) >= 3 and any(not o.finished for out in batched.values() for o in out.values())
    assert stats["decode_steps"] <= MAX_NEW - 1


def test_grounded_and_free_sessions_in_one_batch(engine):
    """Grounded rows keep their own constraint state beside a free session; scores-only batches too."""
    sessions = [_session(0), _session(1)]
    ids = [_ids(engine, s) for s in sessions]
    alone_g = engine.run_session(*ids[0], max_new_tokens=MAX_NEW, constraints=_rows(engine, sessions[0], ids[0][1], 2))
    alone_f = engine.run_session(*ids[1], max_new_tokens=MAX_NEW, language="zh")
    jobs = [SessionJob(*ids[0], constraints=_rows(engine, sessions[0], ids[0][1], 2)),
            SessionJob(*ids[1], language="zh")]
    batched = dict(engine.run_sessions(jobs, max_new_tokens=MAX_NEW))
    assert engine.last_stats["decoding"] == "grounded"
    _assert_identical(batched[0], alone_g)
    _assert_identical(batched[1], alone_f)
    only = dict(engine.run_sessions([SessionJob(*i) for i in ids], scores_only=True))
    for n in range(2):
        alone = engine.run_session(*ids[n], scores_only=True)
        for item in alone:
            assert only[n][item].token_ids == [] and only[n][item].option_probs == pytest.approx(
                alone[item].option_probs, abs=1e-5)


def test_token_budget_cuts_batches(engine):
    jobs = [SessionJob(list(range(100)), {i: [1] * (i + 1) for i in range(1, 4)}) for _ in range(5)]
    size = job_tokens(jobs[0], 10)
    assert size == 100 + (2 + 3 + 4) + 3 * 10
    assert plan_batches(jobs, max_new_tokens=10, token_budget=2 * size) == [[0, 1], [2, 3], [4]]
    assert plan_batches(jobs, max_new_tokens=10, token_budget=10 * size, max_sessions=3) == [[0, 1, 2], [3, 4]]
    assert plan_batches(jobs, max_new_tokens=10, token_budget=1) == [[0], [1], [2], [3], [4]]  # each alone
    with pytest.raises(ModelError):
        plan_batches(jobs, max_new_tokens=10, max_sessions=0)
    prefix, suffixes = _ids(engine, _session(0))
    seen = []
    out = list(engine.run_sessions([SessionJob(prefix, suffixes)] * 3, max_new_tokens=3, max_sessions=2,
                                   progress=lambda f, m: seen.append(f)))
    assert [i for i, _ in out] == [0, 1, 2] and engine.last_stats["sessions"] == 1
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_thread_setting(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert resolve_threads(None) == 7 and resolve_threads("") == 7 and resolve_threads(0) == 7
    assert resolve_threads("all") == 8 and resolve_threads(" ALL ") == 8 and resolve_threads("3") == 3
    with pytest.raises(ModelError, match="all"):
        resolve_threads("many")


@pytest.mark.parametrize("decoding", ["free", pytest.param("grounded", marks=pytest.mark.slow)])
def test_predictor_batches_sessions_into_the_same_predictions(tiny_model_dir, decoding):
    """The predict command's path (Predictor.predict_many) with --session-batch 3: the same stored text,
    scores and probabilities as one session at a time (grounded: MiniLM ranks the turns, about a minute)."""
    import json
    from pathlib import Path

    from care_model.core.records import Session
    from care_model.inference.predictor import PredictConfig, Predictor

    lines = (Path(__file__).resolve().parents[2] / "data" / "sessions.jsonl").read_text(encoding="utf-8").splitlines()
    sessions = [Session.from_dict(json.loads(line)) for line in lines[:3]]
    spec = ModelSpec(base=str(tiny_model_dir))
    one = Predictor(spec, PredictConfig(max_new_tokens=10, decoding=decoding))
    batched = Predictor(spec, PredictConfig(max_new_tokens=10, decoding=decoding, session_batch=3))
    alone = {s.id: preds for s, preds in one.predict_many(sessions)}
    together = list(batched.predict_many(iter(sessions)))
    assert [s.id for s, _ in together] == [s.id for s in sessions]
    assert batched.engine().last_stats["sessions"] == 3
    for session, preds in together:
        assert [p.raw_output for p in preds] == [p.raw_output for p in alone[session.id]]
        assert [p.score for p in preds] == [p.score for p in alone[session.id]]
        assert all(p.decoding == decoding for p in preds)
        for a, b in zip(preds, alone[session.id]):
            assert a.probs == pytest.approx(b.probs, abs=1e-5) and a.evidence == b.evidence
    with pytest.raises(Exception, match="session_batch"):
        PredictConfig(session_batch=0)


def test_static_decode_gives_the_dynamic_tokens(tiny, engine):
    """The GPU decode loop (static shapes, every row kept, one mask updated in place; a CUDA graph on a GPU)
    run eagerly on the CPU: the same tokens as the dynamic loop, free and grounded, one batch of two sessions."""
    static = Engine(tiny, stop_token_ids=engine.stop_token_ids, static_decode=True)
    sessions = [_session(0), _session(2)]
    ids = [_ids(engine, s) for s in sessions]

    def jobs():
        return [SessionJob(*ids[0]), SessionJob(*ids[1], constraints=_rows(engine, sessions[1], ids[1][1], 2))]
    dynamic = dict(engine.run_sessions(jobs(), max_new_tokens=MAX_NEW))
    fixed = dict(static.run_sessions(jobs(), max_new_tokens=MAX_NEW))
    assert static.last_stats["graphs"] == "eager"
    for n in range(2):
        _assert_identical(fixed[n], dynamic[n])
    outs = [o for n in range(2) for o in fixed[n].values()]
    assert any(o.finished for o in outs) and any(not o.finished for o in outs), "rows stop at different steps"


def test_vectorised_grounded_choice_equals_per_row(engine):
    """pick_tokens (one [B, V] mask) chooses what choose_tokens (per row) chooses, for every kind of row."""
    import torch

    from care_model.inference.batch import pick_tokens
    from care_model.inference.constrained import choose_tokens

    session = _session(0)
    _, suffixes = _ids(engine, session)
    rows = _rows(engine, session, suffixes, 2)
    torch.manual_seed(0)
    logits = torch.randn(12, len(engine.tokenizer))
    kinds = set()
    for r in rows.values():
        r.start(3, [0.1, 0.2, 0.4, 0.2, 0.1])
    for step in range(25):
        live = list(rows.values())
        kinds |= {r.allowed()[0] for r in live}
        mixed = [r if b % 3 else None for b, r in enumerate(live)]
        assert pick_tokens(logits, live).tolist() == choose_tokens(logits, live).tolist()
        want = [choose_tokens(logits[b:b + 1], [r])[0] if r else logits[b].argmax() for b, r in enumerate(mixed)]
        assert pick_tokens(logits, mixed).tolist() == [int(w) for w in want]
        for b, r in enumerate(live):
            r.advance(int(choose_tokens(logits[b:b + 1], [r])[0]))
        logits = torch.randn(12, len(engine.tokenizer))
    assert {"only", "free"} <= kinds, kinds


def test_static_step_logits_equal_the_dynamic_step(engine):
    """Two decode steps, logits compared directly (greedy tokens of a random tiny model are too robust to show
    an off-by-one slot or position): StaticStep over all slots == Engine._step over the slots written so far."""
    import torch

    from care_model.inference.attention import PrefixGroups
    from care_model.inference.static_decode import StaticStep

    prefix_ids, suffix_ids = _ids(engine, _session(1))
    _, p_ids, sufs, _ = engine._prepare(prefix_ids, suffix_ids)
    B, S, cap = len(sufs), max(map(len, sufs)), max(map(len, sufs)) + 3
    kv, d = engine.config.num_key_value_heads, engine.head_dim
    neg, zero = torch.tensor(float("-inf")), torch.tensor(0.0)
    with torch.inference_mode():
        prefix = engine._prefill(p_ids)
        bk = [torch.zeros(B, kv, cap, d) for _ in engine.core.layers]
        bv = [torch.zeros(B, kv, cap, d) for _ in engine.core.layers]
        logits = engine._suffix_block(sufs, prefix, bk, bv, S, neg, zero)
        pads = torch.tensor([S - len(s) for s in sufs])
        bias = torch.where(torch.arange(cap)[None, :] >= pads[:, None], zero, neg)
        step = StaticStep(engine, PrefixGroups([prefix], [B]), [b.clone() for b in bk], [b.clone() for b in bv],
                          bias, S)
        pos = torch.tensor([len(p_ids) + len(s) for s in sufs])
        for t in range(2):
            tok = logits.argmax(-1)
            own = bias[:, None, None, None, :S + t + 1]
            logits = engine._step(tok[:, None], pos[:, None], prefix, bk, bv, S + t, own)
            step.set(tok, pos, S + t)
            assert torch.allclose(step.run(), logits, atol=1e-5, rtol=1e-5), f"step {t}"
            pos = pos + 1
