"""Torch side of grounded decoding: apply a :class:`care_model.grounding.GroundedRow`'s allowed set to logits.

Both inference paths pick tokens the same way -- the disallowed logits set to ``-inf``, then
``argmax`` -- so the fast engine and the naive ``generate`` path agree token for token:

* :func:`choose_tokens` -- the batched engine: one row state per batch row.
* :class:`GroundedLogitsProcessor` -- a ``transformers`` ``LogitsProcessor`` for ``model.generate``
  (one sequence); on its first call it starts the row with the argmax option and the option
  distribution of the raw logits (``score_of(logits) -> (argmax, probs)``).

:func:`vocabulary_for` builds (and caches per tokenizer) the :class:`~care_model.grounding.Vocabulary`.
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch
from transformers import LogitsProcessor

from .grounding import GroundedRow, Vocabulary, token_pieces

_VOCABS: dict[tuple[int, tuple], Vocabulary] = {}
_LOCK = threading.Lock()


def vocabulary_for(tokenizer, stop_ids: Sequence[int]) -> Vocabulary:
    """The tokenizer's :class:`Vocabulary` (built once per tokenizer object and stop ids, ~1 s for 50k ids)."""
    key = (id(tokenizer), tuple(sorted(stop_ids)))
    with _LOCK:
        if key not in _VOCABS:
            _VOCABS[key] = Vocabulary(token_pieces(tokenizer), stop_ids)
        return _VOCABS[key]


_BANNED_MASKS: dict[tuple[int, str, int], torch.Tensor] = {}


def _free_mask(vocab: Vocabulary, scores: torch.Tensor) -> torch.Tensor:
    """``vocab.free_banned`` as a boolean mask over ``scores`` (cached per vocabulary, device and size)."""
    key = (id(vocab), str(scores.device), scores.shape[-1])
    mask = _BANNED_MASKS.get(key)
    if mask is None:
        mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        ids = [i for i in vocab.free_banned if i < scores.shape[-1]]
        mask[torch.as_tensor(ids, dtype=torch.long, device=scores.device)] = True
        mask[len(vocab.pieces):] = True  # padding rows of the output layer beyond the tokenizer
        _BANNED_MASKS[key] = mask
    return mask


def constrain(scores: torch.Tensor, allowed: tuple[str, list[int]], vocab: Vocabulary | None = None) -> torch.Tensor:
    """A copy of the 1-D ``scores`` with every disallowed entry at ``-inf`` (``"free"`` needs ``vocab``)."""
    kind, ids = allowed
    index = torch.as_tensor(ids, dtype=torch.long, device=scores.device)
    if kind == "only":
        out = torch.full_like(scores, float("-inf"))
        if len(ids):
            out[index] = scores[index]
        return out
    out = scores.masked_fill(_free_mask(vocab, scores), float("-inf")) if kind == "free" else scores.clone()
    if len(ids):
        out[index] = float("-inf")
    return out


def choose_tokens(logits: torch.Tensor, rows: Sequence[GroundedRow]) -> torch.Tensor:
    """Greedy choice per batch row under each row's constraint: ``logits`` [B, V] -> ids [B]."""
    return torch.stack([constrain(logits[b], row.allowed(), row.vocab) for b, row in enumerate(rows)]).argmax(-1)


class GroundedLogitsProcessor(LogitsProcessor):
    """Grounded decoding inside ``model.generate`` (batch of one; greedy)."""

    def __init__(self, row: GroundedRow, prompt_length: int,
                 score_of: Callable[[torch.Tensor], tuple[int, list[float]]]):
        self.row = row
        self.prompt_length = int(prompt_length)
        self.score_of = score_of

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise ValueError("GroundedLogitsProcessor handles one sequence at a time.")
        if input_ids.shape[1] == self.prompt_length:
            self.row.start(*self.score_of(scores[0]))
        else:
            self.row.advance(int(input_ids[0, -1]))
        return constrain(scores[0], self.row.allowed(), self.row.vocab)[None]
