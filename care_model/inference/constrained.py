"""Torch side of grounded decoding: apply a :class:`care_model.text.grounding.GroundedRow`'s allowed set to logits.

Both inference paths pick tokens the same way -- the disallowed logits set to ``-inf``, then
``argmax`` -- so the fast engine and the naive ``generate`` path agree token for token:

* :func:`choose_tokens` -- the batched engine: one row state per batch row.
* :class:`GroundedLogitsProcessor` -- a ``transformers`` ``LogitsProcessor`` for ``model.generate``
  (one sequence); on its first call it starts the row with the argmax option and the option
  distribution of the raw logits (``score_of(logits) -> (argmax, probs)``).

:func:`~care_model.text.grounding_vocab.vocabulary_for` builds (and caches per tokenizer) the
:class:`~care_model.text.grounding_vocab.Vocabulary`; :func:`vocabulary_from_folder` the same from a saved tokenizer.
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch
from transformers import LogitsProcessor

from care_model.text.grounding import GroundedRow
from care_model.text.grounding_vocab import Vocabulary, token_pieces

_BANNED_MASKS: dict[tuple[str, str, int], torch.Tensor] = {}
_FOLDER_LOCK = threading.Lock()


def _free_mask(vocab: Vocabulary, scores: torch.Tensor) -> torch.Tensor:
    """``vocab.free_banned`` as a boolean mask over ``scores`` (cached per vocabulary fingerprint, device and size)."""
    key = (vocab.fingerprint, str(scores.device), scores.shape[-1])
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


def option_scores(logits_row: torch.Tensor, option_ids, options=None) -> tuple[list[float], float, int, float]:
    """(option probs, expected score, argmax option, option mass) from one row of raw logits: the
    log-softmax over the whole vocabulary (float64), each option's tokens summed. The engine's
    :meth:`~care_model.inference.engine.Engine._score` and the vLLM processor below both use it."""
    options = list(option_ids) if options is None else list(options)
    lp = torch.log_softmax(logits_row.double(), dim=-1)
    per = torch.stack([torch.logsumexp(lp[torch.tensor(option_ids[o], device=lp.device)], dim=0) for o in options])
    mass = float(torch.exp(torch.logsumexp(per, dim=0)))
    probs = torch.softmax(per, dim=0).tolist()
    expected = float(sum(o * p for o, p in zip(options, probs)))
    argmax = options[max(range(len(probs)), key=lambda i: probs[i])]
    return probs, expected, argmax, mass


class RowProcessor:
    """Grounded decoding as a per-request logits processor ``(output_ids, logits_row) -> logits_row``,
    the form vLLM's ``AdapterLogitsProcessor`` calls (care_model.inference.backends.vllm_grounded).

    Before the first token (``output_ids`` empty) the row starts from the option distribution of
    the raw logits at that position -- again on every such call, because a step that only
    prefills part of the prompt also passes through (its logits are thrown away; the last call
    before a token is the real one). Later calls advance the row by the tokens it has not seen;
    then every disallowed logit is set to ``-inf``, so greedy sampling picks the highest allowed
    one, as :func:`choose_tokens` does in the engine.

    * A request re-added after preemption gets a new processor whose first call already has
      output tokens: they are all replayed into the row.
    * Fewer tokens than already seen (the engine took some back): the row is rebuilt with
      ``fresh()`` and replayed from the start.
    * An id below 0 (a token still in flight; vLLM 0.32 fills them in before logits processors
      run) stops the advance, and the mask is that of the last known position: the replay in
      the calling process (:func:`care_model.text.grounding.replay`) reports any token that broke the
      constraint, so nothing wrong is stored silently.
    """

    def __init__(self, row: GroundedRow, fresh: Callable[[], GroundedRow] | None = None):
        self.row = row
        self.fresh = fresh
        self.seen = 0

    def __call__(self, output_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        if len(output_ids) < self.seen:
            if self.fresh is None:
                raise RuntimeError("The request lost output tokens and this row cannot be rebuilt (no fresh()).")
            self.row, self.seen = self.fresh(), 0
        if len(output_ids) == 0:
            probs, _, argmax, _ = option_scores(logits, self.row.option_ids)
            self.row.start(argmax, probs)
        else:
            for tid in output_ids[self.seen:]:
                if int(tid) < 0:
                    break
                self.row.advance(int(tid))
                self.seen += 1
        return constrain(logits, self.row.allowed(), self.row.vocab)


_FOLDER_VOCABS: dict[tuple[str, tuple], Vocabulary] = {}


def vocabulary_from_folder(tokenizer_path: str, stop_ids: Sequence[int]) -> Vocabulary:
    """The :class:`Vocabulary` of the tokenizer saved in ``tokenizer_path`` (cached per path and stop
    set): how another process (vLLM's engine core) rebuilds the vocabulary a row was made with."""
    from transformers import AutoTokenizer

    key = (str(tokenizer_path), tuple(sorted(int(s) for s in stop_ids)))
    with _FOLDER_LOCK:
        if key not in _FOLDER_VOCABS:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
            _FOLDER_VOCABS[key] = Vocabulary(token_pieces(tok), key[1])
        return _FOLDER_VOCABS[key]

