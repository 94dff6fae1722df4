"""The transcript side of grounded decoding: where in a candidate turn a verbatim quote may start
and end (:func:`turn_spans`), and which turns an item may quote (:func:`rank_candidates`).

Pure (no torch). A quote starts at a word start and leaves a long-enough quote
(:func:`care_model.text.evidence.long_enough`), ends on a word boundary, and never runs across
the turn's own quote marks.

Public API::

    turn_spans(index, text) -> TurnSpans | None        # None for an empty turn
    rank_candidates(turns, similarities, k, speaker) -> [turn index, ...]
    is_cjk(ch), is_word(ch)
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

from care_model.text.evidence import long_enough, normalize
from care_model.text.grounding_vocab import QUOTE_CHARS, SINGLE_QUOTES


def is_cjk(ch: str) -> bool:
    return bool(ch) and unicodedata.east_asian_width(ch) == "W" and ch.isalnum()


def is_word(ch: str) -> bool:
    return ch.isalnum()


@dataclass
class TurnSpans:
    index: int
    text: str
    data: bytes
    starts: list[int]        # byte offsets where a quote may start
    ends: frozenset          # byte offsets where a quote may end (word boundary, not after a space)
    barriers: list[int]      # byte offsets of quote marks in the turn: a quote never runs across one

    def room(self, at: int) -> int:
        """Bytes a quote may still take from offset ``at`` (up to the next quote mark or the end)."""
        return min((b for b in self.barriers if b >= at), default=len(self.data)) - at


def turn_spans(index: int, text: str) -> TurnSpans | None:
    text = " ".join(str(text).split())
    if not text:
        return None
    offs, pos = [], 0
    for ch in text:
        offs.append(pos)
        pos += len(ch.encode("utf-8"))
    offs.append(pos)
    starts, ends = [], set()
    marks = [i for i, ch in enumerate(text) if ch in QUOTE_CHARS] + [len(text)]
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        if is_word(ch) and (is_cjk(ch) or not prev or not (is_word(prev) or prev in SINGLE_QUOTES or prev == "_")):
            stop = next(m for m in marks if m > i)  # a quote ends before the turn's own quote marks
            if long_enough(normalize(text[i:stop])) or (i == 0 and stop == len(text)):
                starts.append(offs[i])
    for j in range(1, len(text) + 1):
        last, nxt = text[j - 1], text[j] if j < len(text) else ""
        if last.isspace() or last in QUOTE_CHARS:
            continue
        if not nxt or is_cjk(last) or is_cjk(nxt) or not (is_word(nxt) or nxt in SINGLE_QUOTES):
            ends.add(offs[j])
    barriers = [offs[i] for i in marks[:-1]]
    return TurnSpans(index, text, text.encode("utf-8"), starts, frozenset(ends), barriers)


def rank_candidates(turns: Sequence, similarities: Sequence[float], k: int, speaker: str = "client") -> list[int]:
    """Indices (``Turn.index``) of the ``k`` turns of ``speaker`` most similar to an item (ties: earlier
    turn first); the other speaker's turns when ``speaker`` has none. ``similarities[i]`` belongs to
    ``turns[i]`` (objects with ``index``, ``speaker``, ``text``)."""
    pool = [i for i, t in enumerate(turns) if t.speaker == speaker and str(t.text).strip()]
    if not pool:
        pool = [i for i, t in enumerate(turns) if str(t.text).strip()]
    pool.sort(key=lambda i: (-float(similarities[i]), i))
    return [turns[i].index for i in pool[:max(1, int(k))]]
