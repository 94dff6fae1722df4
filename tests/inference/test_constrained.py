"""Grounded decoding in another process (the vLLM backend's path), without vLLM.

vLLM's engine core rebuilds each item's row from ``GroundedRow.spec()`` and calls
:class:`care_model.inference.constrained.RowProcessor` with ``(output_ids, logits_row)`` at every step; the
project's process then replays the returned tokens (:func:`care_model.text.grounding.replay`). Here a
plain greedy loop over the tiny model plays vLLM's part, so these tests run in the default suite;
``tests/inference/test_vllm_backend.py`` runs the same processor inside vLLM itself.
"""
from __future__ import annotations

import json

import pytest
import torch

from care_model.text.calibration import CalibratedArgmax, calibrate
from care_model.inference.constrained import RowProcessor, option_scores, vocabulary_from_folder
from care_model.inference.engine import Engine
from care_model.text.grounding import GroundedRow, replay
from care_model.text.grounding_vocab import Vocabulary, vocabulary_for
from care_model.inference.models import ModelSpec, load_model
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


def test_the_other_process_rebuilds_the_same_vocabulary_from_the_model_folder(engine, tiny_model_dir):
    """What vLLM's engine core does: a fresh tokenizer from the folder gives the same fingerprint."""
    mine = vocabulary_for(engine.tokenizer, engine.stop_token_ids)
    theirs = vocabulary_from_folder(str(tiny_model_dir), engine.stop_token_ids)
    assert theirs is not mine and theirs.fingerprint == mine.fingerprint
    assert vocabulary_from_folder(str(tiny_model_dir), list(reversed(engine.stop_token_ids))) is theirs
    assert vocabulary_from_folder(str(tiny_model_dir), engine.stop_token_ids[:1]).fingerprint != mine.fingerprint


def test_specs_without_a_fingerprint_or_with_an_unknown_score_rule_are_refused(engine):
    session = _session(0)
    prefix, suffixes = _ids(engine, session)
    row = _rows(engine, session, suffixes)[1]
    spec = row.spec()
    with pytest.raises(ValueError, match="no vocabulary fingerprint"):
        GroundedRow.from_spec(row.vocab, dict(spec, vocabulary=""))
    from care_model.core.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown score rule"):
        GroundedRow.from_spec(row.vocab, dict(spec, score_rule={"kind": "median"}))


def _engine_tokens(engine, n=0, item=3):
    session = _session(n)
    prefix, suffixes = _ids(engine, session)
    rows = _rows(engine, session, suffixes)
    out = engine.run_session(prefix, suffixes, max_new_tokens=MAX_NEW, constraints=rows)[item]
    return session, prefix, suffixes, rows[item], out


def test_replay_needs_a_fresh_row_and_flags_tokens_after_the_stop(engine):
    session = _session(0)
    prefix, suffixes = _ids(engine, session)
    outs = engine.run_session(prefix, suffixes, max_new_tokens=120, constraints=_rows(engine, session, suffixes))
    item, out = next((i, o) for i, o in outs.items() if o.finished)  # a complete answer, ending in a stop token
    assert out.token_ids[-1] in engine.stop_token_ids
    row = _rows(engine, session, suffixes)[item]
    assert replay(row, out.token_ids) == 0 and row.done
    with pytest.raises(RuntimeError, match="fresh row"):
        replay(row, out.token_ids)
    assert replay(_rows(engine, session, suffixes)[item], out.token_ids + [out.token_ids[1]]) == 1


def test_replay_of_an_answer_cut_inside_its_quote(engine):
    """vLLM's max_tokens can end an answer inside the quote: nothing is wrong with the tokens, no quote
    is recorded as closed (the prediction is marked truncated from finish_reason)."""
    session, prefix, suffixes, engine_row, out = _engine_tokens(engine)
    probe, phases = _rows(engine, session, suffixes)[3], []
    probe.score = out.argmax_score
    for tid in out.token_ids:
        probe.advance(tid)
        phases.append((probe.phase, len(probe._quote)))
    j = next(j for j, (phase, quoted) in enumerate(phases) if phase == "quote" and quoted)  # a quote begun
    cut = out.token_ids[:j + 1]
    row = _rows(engine, session, suffixes)[3]
    assert replay(row, cut) == 0
    assert row.phase == "quote" and row.quotes == [] and not row.done


def test_a_processor_made_again_after_preemption_or_given_fewer_tokens_keeps_the_right_state(engine):
    session, prefix, suffixes, engine_row, out = _engine_tokens(engine, n=1, item=4)
    fresh = lambda: _rows(engine, session, suffixes)[4]  # noqa: E731
    ids = out.token_ids
    k = len(ids) // 2
    with torch.no_grad():
        logits = engine.model(torch.tensor([prefix + suffixes[4] + ids[:k]])).logits[0, -1].float()
    running = RowProcessor(fresh(), fresh=fresh)
    running([], logits.clone())
    for j in range(1, k + 1):
        running(ids[:j], logits.clone())
    resumed = RowProcessor(fresh(), fresh=fresh)  # vLLM re-adds a preempted request: a new processor
    a, b = running(ids[:k], logits.clone()), resumed(ids[:k], logits.clone())
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    assert int(a.argmax()) == ids[k]  # the engine's next token is the constrained argmax here too
    # the engine takes back tokens: the row is rebuilt and replayed, not left ahead
    longer = RowProcessor(fresh(), fresh=fresh)
    longer([], logits.clone())
    longer(ids[:k + 3], logits.clone())
    c = longer(ids[:k], logits.clone())
    assert longer.seen == k and torch.equal(torch.isfinite(c), torch.isfinite(a))
