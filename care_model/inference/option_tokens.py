"""The option tokens at the score position, and option probabilities from log-probabilities.

Shared by every backend: :class:`care_model.inference.engine.Engine` (logits in process) and the vLLM backend
(log-probabilities that vLLM returns for exactly these token ids).

* :func:`option_token_ids` -- candidate *first* tokens for each option (see its docstring).
* :func:`score_from_logprobs` -- ``{token id: log p}`` at the score position (log-softmax over the
  whole vocabulary) -> option probabilities normalised over the options, expected score, the most
  probable option and the option mass (the unnormalised total probability of the option tokens).

Pure module: it needs only a tokenizer object (``__call__`` and ``decode``); no torch.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from care_model.core.errors import ModelError

FULL_WIDTH = {d: chr(0xFF10 + d) for d in range(10)}
OPTION_TRAILERS = ".)]:：、．）】,，"


def option_token_ids(tokenizer, options: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[int, list[int]]:
    """Candidate *first* tokens for each option: ``{1: [ids...], ..., 5: [...]}``.

    For each option digit, the first token of several spellings (``"4"``, ``" 4"``, ``"4."``,
    ``"4)"``, ``"\\n4"``, ``"**4"``, full-width ``"４"`` ...) is kept when that single token decodes,
    stripped of whitespace and trailing punctuation, to exactly the digit -- so a byte-level
    ``" 4"`` token and ``"4"`` are both counted, while a bare space or ``"**"`` token is not.
    Full-width digits are included for every language (they only count when they are single tokens).
    """
    out: dict[int, list[int]] = {}
    taken: dict[int, int] = {}
    for opt in options:
        digits = {str(opt)}
        if 0 <= opt <= 9:
            digits.add(FULL_WIDTH[opt])
        found: list[int] = []
        for d in sorted(digits):
            for spelling in (d, " " + d, d + ".", d + ")", d + ":", "\n" + d, " " + d + ".", "\t" + d):
                ids = tokenizer(spelling, add_special_tokens=False)["input_ids"]
                if not ids:
                    continue
                tid = int(ids[0])
                text = tokenizer.decode([tid])
                if "\ufffd" in text:
                    continue
                core = text.strip().rstrip(OPTION_TRAILERS).strip()
                if core in digits and tid not in found:
                    if taken.get(tid, opt) != opt:
                        continue
                    taken[tid] = opt
                    found.append(tid)
        if not found:
            raise ModelError(f"The tokenizer has no token for option {opt}.",
                             "Use a model whose tokenizer can write the digits 1-5.")
        out[int(opt)] = found
    return out


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def score_from_logprobs(logprobs: Mapping[int, float], option_ids: Mapping[int, Sequence[int]]
                        ) -> tuple[list[float], float, int, float]:
    """(option probs, expected score, most probable option, option mass) from full-vocabulary
    log-probabilities of the option tokens (a missing token counts as probability 0)."""
    options = list(option_ids)
    per = [_logsumexp([float(logprobs.get(int(t), -math.inf)) for t in option_ids[o]]) for o in options]
    total = _logsumexp(per)
    if total == -math.inf:
        raise ModelError("No log-probability came back for any option token.",
                         "Ask the backend for the log-probabilities of the option tokens at the score position.")
    probs = [math.exp(p - total) for p in per]
    expected = float(sum(o * p for o, p in zip(options, probs)))
    argmax = options[max(range(len(probs)), key=lambda i: probs[i])]
    return probs, expected, argmax, math.exp(total)
