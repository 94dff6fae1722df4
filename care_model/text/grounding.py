"""Grounded decoding: which token ids may come next so that every quote is a verbatim transcript span.

Backend-independent and pure (no torch, no transformers, no tinydb): an engine asks a
:class:`GroundedRow` what is allowed, picks a token (greedy: the highest logit among the allowed),
and tells the row what it picked. The fast engine (:mod:`care_model.inference.engine`), the naive reference
path (a ``transformers`` ``LogitsProcessor`` in :mod:`care_model.inference.constrained`) and a vLLM backend
can all drive the same rows.

The answer a row produces (one row per item)::

    4                                   <- one of the argmax option's tokens (``start(score)``)
    The client says "<verbatim span of one candidate turn>" <free text to the end of a sentence>

* **Score line.** Only the token ids of the option the engine's option distribution prefers are
  allowed first, so the written score is the argmax of the stored probabilities by construction.
* **Lead-in.** ``"\\n" + lead-in`` is forced as *bytes* (any tokenization of it; the model picks):
  ``The client says "`` (English) or ``来访者说：“`` (Chinese; the quote style is the first of
  “”, 「」, "" whose marks are single tokens of the vocabulary). See :func:`lead_in`.
* **Quotes.** Inside a quote the state keeps the quote so far (bytes) and every position of the
  candidate turns where it occurs, starting at a word start. The allowed pieces are the
  vocabulary pieces that equal the turn's next bytes at any of those positions (a dict lookup per
  length), so the check works on characters, not on one tokenization; byte-level vocabularies
  always have the single-byte fallback. The closing mark is allowed once the quote is long enough
  for :func:`care_model.text.evidence.find_quotes` (3 words / 4 CJK characters, or a whole turn) and
  ends on a word boundary of the turn; it is forced after ``max_quote_tokens`` or when the turn
  ends. Start positions leave a long-enough quote, so a quote never dead-ends.
* **Whose words.** A quote comes from the turns of the speaker the rationale names last before its
  opening mark (:func:`care_model.text.evidence.attributed_speaker`): the lead-in's speaker for the
  first quote; after "... and the counselor says" a new quote may only continue the candidate
  *counselor* turns (the constraint opens them), after "the client" only client turns. An
  opening mark is not allowed while the speaker named last has no candidate turn in the row, so
  a rationale never gives one speaker's words to the other. Turns are ``(index, text)`` (the
  row's ``speaker``) or ``(index, text, speaker)``; the lead-in names the row's ``speaker``, or
  the speaker of the turns when the row has none of its own (a client who never speaks).
* **Evidence.** ``quotes`` records, for every closed quote, the turn it was decoded from (the
  highest-ranked candidate turn of that speaker whose text the quote continued); predictions list
  these turns as their ``evidence`` instead of searching the transcript for the quoted text (which
  finds the first turn with the same words, e.g. a counselor echoing the client).
* **Free text.** After the closing mark the model writes freely, except: no digits or brackets
  (a made-up ``[57]`` or "turn 57" would be an unsupported reference), no quote marks other than an
  opening one at the end of a piece (which starts a new, equally constrained quote), no opening
  apostrophe after a non-word character, and no repeated token 3-gram. The row stops (the stop
  token is forced) at the end of the first sentence after a quote, at a newline, when the model
  writes a stop token, or after ``max_free_tokens`` free tokens -- that last one marks the row
  ``truncated`` (cut, not complete), as the engine's ``max_new_tokens`` cap does.

Public API::

    GroundingConfig(k=8, max_quote_tokens=32, max_free_tokens=24, ...)
    GroundedRow(vocab, turns, option_ids, language=, speaker=, config=)
        .start(score, probs); .allowed() -> ("only" | "free", ids); .advance(token_id)
        ("free": anything except ids and vocab.free_banned)
        (fixed_score=: drafting for a given score; score_rule=: e.g. the calibrated argmax)
        .done, .truncated, .quotes, .quote_speakers, .candidate_turns
    decoded_evidence(row) -> sorted turn indices its quotes were decoded from
        .spec() -> dict; GroundedRow.from_spec(vocab, spec)   # to another process (the vLLM engine core)
    replay(row, token_ids) -> number of tokens the constraint would not have allowed
    build_rows(vocab, turns, candidates, option_ids, ...) -> {item: GroundedRow}

The tokenizer side (:func:`~care_model.text.grounding_vocab.token_pieces`,
:class:`~care_model.text.grounding_vocab.Vocabulary`, :func:`~care_model.text.grounding_vocab.lead_in`)
lives in :mod:`care_model.text.grounding_vocab`; the transcript side (where quotes may start and end,
:func:`~care_model.text.grounding_turns.rank_candidates`) in :mod:`care_model.text.grounding_turns`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from care_model.text.evidence import attributed_speaker, long_enough, normalize
from care_model.text.grounding_turns import is_word, turn_spans
from care_model.text.grounding_vocab import OPENERS, Vocabulary, lead_in, piece_text


@dataclass
class GroundingConfig:
    """Knobs of grounded decoding (defaults: see the module docstring)."""

    k: int = 8                   # candidate turns per item (top-k by similarity, the speaker of interest)
    max_quote_tokens: int = 32   # close the quote after this many tokens (once it may close)
    max_free_tokens: int = 24    # free tokens after the first quote before the row is cut (truncated)
    no_repeat_ngram: int = 3     # block repeated token n-grams in the free text (0: off)


# ----------------------------------------------------------------------------- one row
class GroundedRow:
    """The constraint state of one item's answer (see the module docstring)."""

    def __init__(self, vocab: Vocabulary, turns: Sequence[tuple], option_ids: Mapping[int, Sequence[int]],
                 *, language: str = "en", speaker: str = "client", config: GroundingConfig | None = None,
                 fixed_score: int | None = None, score_rule: Callable[[Sequence[float]], int] | None = None):
        self.vocab = vocab
        self.config = config or GroundingConfig()
        self.option_ids = {int(k): [int(t) for t in v] for k, v in option_ids.items()}
        self.language, self.speaker = language, speaker
        self._turn_args = [(int(t[0]), str(t[1]), str(t[2]) if len(t) > 2 else speaker) for t in turns]
        spans = [(turn_spans(i, s), who) for i, s, who in self._turn_args]
        self.turns = [t for t, _ in spans if t is not None]
        self._speaker_of = [who for t, who in spans if t is not None]   # per entry of self.turns
        self.candidate_turns = [t.index for t in self.turns]
        self._lead_speaker = speaker if speaker in self._speaker_of or not self._speaker_of else self._speaker_of[0]
        lead, self._open, self._close = lead_in(language, self._lead_speaker, vocab)
        self._lead = ("\n" + lead).encode("utf-8")
        self.phase = "score"
        self._forced = b""           # bytes still to write (lead-in or the rest of a closing mark)
        self._after_forced = "quote"
        self._quote = b""
        self._said = b""             # the answer after the score line (for whose words a quote is)
        self.quote_speakers: list[str] = []        # the speaker each closed quote's turn belongs to
        self._positions: list[tuple[int, int]] = []   # (turn number in self.turns, start byte)
        self._quote_tokens = 0
        self._free_tokens = 0
        self._free_text = ""
        self._last_char = ""
        self._ngrams: dict[tuple, set] = {}
        self._history: list[int] = []
        self._allowed_cache = None
        self.quotes: list[tuple[int, str]] = []      # (turn index, quoted text) of closed quotes
        self.done = False
        self.truncated = False
        self.score: int | None = None
        self.fixed_score = fixed_score    # drafting: write the answer for this score, whatever the model prefers
        self.score_rule = score_rule      # e.g. the argmax of the calibrated distribution (given the raw probs)

    # --------------------------------------------------------------- transport
    def spec(self) -> dict:
        """The row's construction as plain data (JSON), for a backend in another process (the vLLM
        engine core): :meth:`from_spec` with the same tokenizer's vocabulary rebuilds it. Only a
        fresh row (before :meth:`start`) is sent; a ``score_rule`` must have ``spec()``
        (e.g. :class:`care_model.text.calibration.CalibratedArgmax`)."""
        rule = None
        if self.score_rule is not None:
            if not hasattr(self.score_rule, "spec"):
                raise TypeError("This row's score_rule cannot be sent to another process (it has no spec()).")
            rule = self.score_rule.spec()
        return {"turns": [list(t) for t in self._turn_args],
                "option_ids": {str(k): v for k, v in self.option_ids.items()},
                "language": self.language, "speaker": self.speaker, "config": dict(vars(self.config)),
                "fixed_score": self.fixed_score, "score_rule": rule, "vocabulary": self.vocab.fingerprint}

    @classmethod
    def from_spec(cls, vocab: "Vocabulary", spec: Mapping) -> "GroundedRow":
        """The row :meth:`spec` describes, on ``vocab`` (which must be the same tokenizer's: its
        fingerprint is checked, so a different vocabulary fails instead of quoting wrongly)."""
        want = spec.get("vocabulary")
        if not want:
            raise ValueError("The grounded row's spec has no vocabulary fingerprint; make it with GroundedRow.spec().")
        if want != vocab.fingerprint:
            raise ValueError("The grounded row was built for another vocabulary: the tokenizer read here splits "
                             "text differently (e.g. another transformers version in the vLLM venv). Re-run "
                             "`make setup-vllm`, or predict with --decoding free.")
        rule = None
        if spec.get("score_rule"):
            from care_model.text.calibration import CalibratedArgmax

            rule = CalibratedArgmax.from_spec(spec["score_rule"])
        return cls(vocab, [tuple(t) for t in spec["turns"]],
                   {int(k): v for k, v in spec["option_ids"].items()}, language=spec.get("language", "en"),
                   speaker=spec.get("speaker", "client"), config=GroundingConfig(**spec.get("config", {})),
                   fixed_score=spec.get("fixed_score"), score_rule=rule)

    # --------------------------------------------------------------- protocol
    def start(self, score: int, probs: Sequence[float] | None = None) -> None:
        """Call before the first token with the engine's argmax option and its option distribution
        (options in order). The score line is ``fixed_score`` if set, else ``score_rule(probs)`` if set,
        else ``score``. Calling it again before the first token restarts the score line."""
        if self._history:
            raise RuntimeError("GroundedRow.start() after a token was chosen: make a new row.")
        self._allowed_cache = None
        if self.fixed_score is not None:
            self.score = int(self.fixed_score)
        elif self.score_rule is not None and probs is not None:
            self.score = int(self.score_rule(list(probs)))
        else:
            self.score = int(score)

    def allowed(self) -> tuple[str, list[int]]:
        """``("only", ids)``: pick among these; ``("free", ids)``: anything but these and
        ``vocab.free_banned`` (a fixed set, so a backend can keep it as a precomputed mask)."""
        if self._allowed_cache is None:
            self._allowed_cache = self._compute_allowed()
        return self._allowed_cache

    def advance(self, token_id: int) -> None:
        """Record the token chosen for this row."""
        tid = int(token_id)
        self._allowed_cache = None
        if len(self._history) >= 2 and self.config.no_repeat_ngram == 3:
            self._ngrams.setdefault((self._history[-2], self._history[-1]), set()).add(tid)
        self._history.append(tid)
        if tid in self.vocab.stop_ids:
            self.done = True
            self.phase = "done"
            return
        piece = self.vocab.pieces[tid] or b""
        if self.phase != "score":
            self._said += piece
        if self.phase == "score":
            self._begin_forced(self._lead, "quote")
        elif self.phase == "forced":
            self._forced = self._forced[len(piece):]
            if not self._forced:
                self._enter(self._after_forced)
        elif self.phase == "quote":
            self._advance_quote(piece)
        elif self.phase == "free":
            self._advance_free(tid, piece)

    # --------------------------------------------------------------- phases
    def _begin_forced(self, data: bytes, then: str) -> None:
        self.phase, self._forced, self._after_forced = "forced", data, then

    def _enter(self, phase: str) -> None:
        self.phase = phase
        if phase == "quote":
            self._quote, self._quote_tokens = b"", 0
            who = self._speaker_now()
            self._positions = [(n, s) for n, t in enumerate(self.turns) if self._speaker_of[n] == who for s in t.starts]
            if not self._positions:  # no transcript to quote: close at once (free text follows)
                self._begin_forced(self._close.encode("utf-8"), "free")
        elif phase == "free":
            self._free_text = ""

    def _advance_quote(self, piece: bytes) -> None:
        close = self._close.encode("utf-8")
        q = len(self._quote)
        cont = [(n, s) for n, s in self._positions
                if self.turns[n].data.startswith(piece, s + q) and len(piece) <= self.turns[n].room(s + q)]
        if cont and piece in self.vocab.quote_safe:
            self._quote += piece
            self._positions = cont
            self._quote_tokens += 1
            return
        # a closing mark (or its first bytes)
        self._record_quote()
        rest = close[len(piece):] if close.startswith(piece) else b""
        if rest:
            self._begin_forced(rest, "free")
        else:
            self._enter("free")

    def _record_quote(self) -> None:
        ends = [(n, s) for n, s in self._positions if s + len(self._quote) in self.turns[n].ends]
        n = (ends or self._positions or [(0, 0)])[0][0]
        if self.turns:
            self.quotes.append((self.turns[n].index, piece_text(self._quote)))
            self.quote_speakers.append(self._speaker_of[n])

    def _speaker_now(self, more: str = "") -> str:
        """The speaker a quote opened now (after ``more``) would be attributed to."""
        return attributed_speaker(piece_text(self._said) + more, self._lead_speaker)

    def _unquotable_openers(self) -> set[int]:
        """Opening marks that would start a quote of a speaker without candidate turns in this row."""
        base = self._speaker_now()
        tail = piece_text(self._said)[-16:]  # a speaker word may run from the text into the piece
        out = set()
        for tid in self.vocab.openers:
            text = piece_text(self.vocab.pieces[tid])
            who = (attributed_speaker(tail + text) or base) if any(c.isalpha() for c in text) else base
            if who not in self._speaker_of:
                out.add(tid)
        return out

    def _advance_free(self, tid: int, piece: bytes) -> None:
        self._free_tokens += 1
        text = piece_text(piece)
        if text:
            self._last_char = text[-1]
        self._free_text += text
        if tid in self.vocab.openers:
            self._close = OPENERS[self.vocab.openers[tid]]
            self._enter("quote")
            return
        if tid in self.vocab.newline or tid in self.vocab.sentence_end:
            self.phase = "stop"
        elif self._free_tokens >= self.config.max_free_tokens:
            self.phase = "stop"
            self.truncated = True

    # --------------------------------------------------------------- allowed sets
    def _compute_allowed(self) -> tuple[str, list[int]]:
        v = self.vocab
        if self.phase == "score":
            if self.score is None:
                raise RuntimeError("GroundedRow.start(score) must be called before the first token.")
            return "only", list(self.option_ids[self.score])
        if self.phase in ("stop", "done"):
            return "only", list(v.stop_ids)
        if self.phase == "forced":
            return "only", v.prefixes_of(self._forced) or list(v.stop_ids)
        if self.phase == "quote":
            return "only", self._quote_allowed()
        banned: set[int] = set()
        if not is_word(self._last_char):
            banned |= v.needs_word_before
        if self.config.no_repeat_ngram == 3 and len(self._history) >= 2:
            banned |= self._ngrams.get((self._history[-2], self._history[-1]), set())
        banned |= self._unquotable_openers()
        return "free", sorted(banned)

    def _quote_allowed(self) -> list[int]:
        v = self.vocab
        q = len(self._quote)
        may_close = self._may_close()
        force_close = may_close and self._quote_tokens >= self.config.max_quote_tokens
        ids: set[int] = set()
        if not force_close:
            seen = set()
            for n, s in self._positions:
                at = (n, s + q)
                if at in seen:
                    continue
                seen.add(at)
                turn = self.turns[n]
                ids.update(v.prefixes_of(turn.data[s + q:s + q + min(v.max_len, turn.room(s + q))], v.quote_safe))
        if may_close or not ids:
            close = self._close.encode("utf-8")
            ids.update(t for t in v.prefixes_of(close) if v.pieces[t] not in v.quote_safe or not ids)
        return sorted(ids)

    def _may_close(self) -> bool:
        if not self._quote:
            return False
        q = len(self._quote)
        text = piece_text(self._quote)
        for n, s in self._positions:
            turn = self.turns[n]
            if s + q in turn.ends and (long_enough(normalize(text)) or (s == 0 and s + q == len(turn.data))):
                return True
        return False


def replay(row: GroundedRow, token_ids: Sequence[int]) -> int:
    """Run a fresh ``row`` over tokens another process chose under it (the vLLM backend), so this
    process has the row's ``quotes``, ``truncated`` and ``score``; returns how many tokens the
    constraint would not have allowed (0 when the other side applied it). The score line is the one
    the first token wrote (the other side's option distribution may differ from this side's by float
    noise), which must be the row's ``fixed_score`` when it has one."""
    if row._history:
        raise RuntimeError("replay() needs a fresh row (this one has chosen tokens already).")
    if not token_ids:
        return 0
    first = int(token_ids[0])
    written = next((o for o, ids in row.option_ids.items() if first in ids), None)
    # (a first token that is no option is counted below, where the score line refuses it)
    bad = int(written is not None and row.fixed_score is not None and written != int(row.fixed_score))
    row.score = written if written is not None else min(row.option_ids)
    row._allowed_cache = None
    size = len(row.vocab.pieces)
    for tid in map(int, token_ids):
        if row.done:  # tokens after a stop
            bad += 1
            break
        kind, ids = row.allowed()
        ok = tid in ids if kind == "only" else (tid < size and tid not in ids and tid not in row.vocab.free_banned)
        bad += not ok
        row.advance(tid)
    return bad


def build_rows(vocab: Vocabulary, turns: Sequence, candidates: Mapping[int, Sequence[int]],
               option_ids: Mapping[int, Sequence[int]], *, language: str = "en", speaker: str = "client",
               config: GroundingConfig | None = None) -> dict[int, GroundedRow]:
    """One :class:`GroundedRow` per item: ``candidates[item]`` are the ``Turn.index`` values it may quote
    (e.g. from :func:`rank_candidates`, of either speaker); ``turns`` are objects with ``index`` and
    ``text`` (and ``speaker``: whose turn it is; the row's ``speaker`` when absent)."""
    text_of = {t.index: (t.text, getattr(t, "speaker", None) or speaker) for t in turns}
    return {item: GroundedRow(vocab, [(i, *text_of[i]) for i in idx if i in text_of], option_ids,
                              language=language, speaker=speaker, config=config)
            for item, idx in candidates.items()}


def decoded_evidence(row: GroundedRow) -> list[int]:
    """The turns ``row``'s closed quotes were decoded from (sorted, unique): a grounded prediction's evidence."""
    return sorted({index for index, _ in row.quotes})
