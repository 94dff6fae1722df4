"""care_model.inference.option_tokens: the option tokens and option probabilities every backend uses."""
from __future__ import annotations

import math

import pytest

from care_model.inference.engine import Engine
from care_model.core.errors import ModelError
from care_model.inference.models import ModelSpec, load_model
from care_model.inference.option_tokens import option_token_ids, score_from_logprobs


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine(load_model(ModelSpec(base=str(tiny_model_dir))))


def test_engine_uses_the_shared_option_tokens(engine):
    ids = option_token_ids(engine.tokenizer)
    assert ids == engine.option_token_ids("en")
    assert all(ids[o] for o in range(1, 6))
    assert len({t for v in ids.values() for t in v}) == sum(len(v) for v in ids.values()), "no token twice"


def test_probabilities_from_logprobs_equal_the_engines_from_logits(engine):
    """What the vLLM backend computes from returned log-probs equals the engine's _score on the logits."""
    torch = engine.torch
    options = engine.option_token_ids("en")
    wanted = sorted({t for v in options.values() for t in v})
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = torch.randn(engine.config.vocab_size, generator=gen) * 4
        logits[wanted[0]] += 6  # some option mass worth normalising
        lp = torch.log_softmax(logits.double(), -1)
        mine = score_from_logprobs({t: float(lp[t]) for t in wanted}, options)
        ref = engine._score(logits, options)
        assert mine[2] == ref[2]
        assert max(abs(a - b) for a, b in zip(mine[0], ref[0])) < 1e-9
        assert math.isclose(mine[1], ref[1], abs_tol=1e-9) and math.isclose(mine[3], ref[3], rel_tol=1e-9)


def test_missing_option_logprobs_are_zero_and_none_at_all_is_an_error():
    options = {1: [10], 2: [20, 21], 3: [30], 4: [40], 5: [50]}
    probs, expected, argmax, mass = score_from_logprobs({20: math.log(0.1), 21: math.log(0.1), 50: math.log(0.2)},
                                                        options)
    assert argmax == 2 and [round(p, 6) for p in probs] == [0, 0.5, 0, 0, 0.5]
    assert math.isclose(expected, 3.5) and math.isclose(mass, 0.4)
    with pytest.raises(ModelError, match="option token"):
        score_from_logprobs({99: -0.1}, options)
