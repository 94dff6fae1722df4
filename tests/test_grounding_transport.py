"""Grounded decoding in another process (the vLLM backend's path), without vLLM.

vLLM's engine core rebuilds each item's row from ``GroundedRow.spec()`` and calls
:class:`care_model.constrained.RowProcessor` with ``(output_ids, logits_row)`` at every step; the
project's process then replays the returned tokens (:func:`care_model.grounding.replay`). Here a
plain greedy loop over the tiny model plays vLLM's part, so these tests run in the default suite;
``tests/test_vllm_backend.py`` runs the same processor inside vLLM itself.
"""
from __future__ import annotations

import json

import pytest
import torch

from care_model.calibration import CalibratedArgmax, calibrate
from care_model.constrained import RowProcessor, option_scores
from care_model.engine import Engine
from care_model.grounding import GroundedRow, Vocabulary, replay, vocabulary_for
from care_model.models import ModelSpec, load_model
from test_engine import _ids, _rows, _session

MAX_NEW = 40


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine(load_model(ModelSpec(base=str(tiny_model_dir))))


def _shipped(row: GroundedRow, vocab: Vocabulary) -> GroundedRow:
    """The row as the engine core gets it: through JSON, onto a vocabulary built there."""
    return GroundedRow.from_spec(vocab, json.loads(json.dumps(row.spec())))


def _greedy_with_processor(engine: Engine, prompt_ids: list[int], proc: RowProcessor, max_new: int,
                           partial_prefill: bool = False) -> list[int]:
    """vLLM's part: full forwards, the per-request processor on each step's logits, then argmax.
    ``partial_prefill``: first pass the processor the logits of a half prompt (a chunked-prefill
    step, whose logits vLLM throws away) -- the row must restart from the real first position."""
    model, out = engine.model, []
    stops = set(engine.stop_token_ids)
    with torch.no_grad():
        if partial_prefill:
            half = prompt_ids[:len(prompt_ids) // 2]
            proc([], model(torch.tensor([half])).logits[0, -1].float().clone())
        for _ in range(max_new):
            logits = model(torch.tensor([prompt_ids + out])).logits[0, -1].float().clone()
            tid = int(proc(out, logits).argmax())
            out.append(tid)
            if tid in stops:
                break
    return out


@pytest.mark.parametrize("n", [0, 1])
def test_a_shipped_row_decodes_what_the_engine_decodes(engine, n):
    """Rows rebuilt from their spec and driven by RowProcessor (one request at a time, as vLLM's
    adapter does) write token for token what the engine's batched grounded decoding writes."""
    session = _session(n)
    prefix, suffixes = _ids(engine, session)
    rows = _rows(engine, session, suffixes)
    fast = engine.run_session(prefix, suffixes, max_new_tokens=MAX_NEW, constraints=rows)
    other_side = Vocabulary(list(rows[1].vocab.pieces), rows[1].vocab.stop_ids)  # built "in the other process"
    for item in sorted(suffixes)[:4]:
        proc = RowProcessor(_shipped(_rows(engine, session, suffixes)[item], other_side))
        tokens = _greedy_with_processor(engine, prefix + suffixes[item], proc, MAX_NEW, partial_prefill=item % 2 == 0)
        assert tokens == fast[item].token_ids, f"item {item}"
        # this process replays them: no violation, the same quotes and truncation as the engine's row
        mine = _rows(engine, session, suffixes)[item]
        assert replay(mine, tokens) == 0
        assert mine.quotes == rows[item].quotes and mine.quotes
        assert mine.truncated == rows[item].truncated
        assert mine.candidate_turns == rows[item].candidate_turns


def test_replay_counts_tokens_the_constraint_forbids(engine):
    session = _session(0)
    prefix, suffixes = _ids(engine, session)
    rows = _rows(engine, session, suffixes)
    out = engine.run_session(prefix, suffixes, max_new_tokens=MAX_NEW, constraints=rows)[3].token_ids
    assert replay(_rows(engine, session, suffixes)[3], out) == 0
    # a quote token swapped for a digit (never allowed inside a quote), and a made-up first token
    digit = engine.tokenizer("7", add_special_tokens=False)["input_ids"][0]
    bad = list(out)
    bad[len(bad) // 2] = digit
    assert replay(_rows(engine, session, suffixes)[3], bad) >= 1
    assert replay(_rows(engine, session, suffixes)[3], [digit] + out[1:]) >= 1
    # drafting: the score line must be the row's fixed score
    row = _rows(engine, session, suffixes)[3]
    written = next(o for o, ids in row.option_ids.items() if out[0] in ids)
    row.fixed_score = written % 5 + 1
    assert replay(row, out) >= 1


def test_the_spec_carries_the_score_rule_and_refuses_another_vocabulary(engine):
    session = _session(0)
    prefix, suffixes = _ids(engine, session)
    row = _rows(engine, session, suffixes)[2]
    prior = [0.7, 0.1, 0.1, 0.05, 0.05]
    row.score_rule, row.fixed_score = CalibratedArgmax(prior, [1, 2, 3, 4, 5]), None
    back = _shipped(row, row.vocab)
    probs = [0.4, 0.3, 0.1, 0.1, 0.1]
    cal = calibrate(probs, prior)
    assert back.score_rule(probs) == row.score_rule(probs) == 1 + max(range(5), key=cal.__getitem__) != 1
    assert back.candidate_turns == row.candidate_turns and back.config == row.config
    other = Vocabulary(list(row.vocab.pieces[:-1]) + [b"zzz"], row.vocab.stop_ids)
    with pytest.raises(ValueError, match="another vocabulary"):
        GroundedRow.from_spec(other, row.spec())
    row.score_rule = lambda p: 3  # a plain function cannot cross processes
    with pytest.raises(TypeError, match="no spec"):
        row.spec()


def test_the_processor_starts_from_the_option_distribution_of_the_raw_logits(engine):
    """The first call's score line is the argmax of option_scores (the engine's own numbers), and the
    mask leaves only that option's tokens."""
    session = _session(1)
    prefix, suffixes = _ids(engine, session)
    row = _rows(engine, session, suffixes)[5]
    with torch.no_grad():
        logits = engine.model(torch.tensor([prefix + suffixes[5]])).logits[0, -1].float()
    probs, expected, argmax, mass = option_scores(logits, row.option_ids)
    assert probs == pytest.approx(engine._score(logits, row.option_ids)[0])
    masked = RowProcessor(row)([], logits.clone())
    finite = set(torch.nonzero(torch.isfinite(masked)).flatten().tolist())
    assert row.score == argmax and finite == set(row.option_ids[argmax])


def test_vocabulary_for_is_pure_and_cached(engine):
    a = vocabulary_for(engine.tokenizer, engine.stop_token_ids)
    assert a is vocabulary_for(engine.tokenizer, list(reversed(engine.stop_token_ids)))
    assert a.fingerprint == Vocabulary(list(a.pieces), a.stop_ids).fingerprint
