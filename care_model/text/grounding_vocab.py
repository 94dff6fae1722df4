"""Grounded decoding's view of a tokenizer: the exact bytes of each token id and the indexes built
over them once per tokenizer (:class:`Vocabulary`), the quote marks and the lead-in per language.

Pure (no torch, no transformers: the tokenizer is duck-typed). Used by
:mod:`care_model.text.grounding` (the per-item rows) and :mod:`care_model.text.grounding_turns`.

Public API::

    token_pieces(tokenizer) -> list[bytes | None]      # the bytes of each token id (None: special)
    Vocabulary(pieces, stop_ids)                       # indexes built once per tokenizer
    vocabulary_for(tokenizer, stop_ids)                # the same, cached per tokenizer object
    lead_in(language, speaker, vocabulary) -> (text, opening mark, closing mark)
    piece_text(piece) -> str; QUOTE_CHARS, SINGLE_QUOTES, OPENERS, SENTENCE_END, BANNED_FREE_CHARS
"""
from __future__ import annotations

import hashlib
import threading
from typing import Mapping, Sequence

QUOTE_STYLES = {"en": (('"', '"'), ("“", "”")), "zh": (("“", "”"), ("「", "」"), ('"', '"'))}
LEADS = {"en": {"client": "The client says ", "counselor": "The counselor says "},
         "zh": {"client": "来访者说：", "counselor": "咨询师说："}}
QUOTE_CHARS = set('"＂“”「」『』｢｣«»‹›')
SINGLE_QUOTES = set("'＇‘’")
OPENERS = {'"': '"', "“": "”", "「": "」"}
SENTENCE_END = set(".!?。！？…")
BANNED_FREE_CHARS = set("[]【】{}<>#*|\\") | set("0123456789０１２３４５６７８９")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable character table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def token_pieces(tokenizer) -> list[bytes | None]:
    """The exact bytes each token id stands for (None for special/added tokens), for byte-level BPE
    (GPT-2, Llama-3, Qwen, SmolLM2) and SentencePiece (``▁`` and ``<0xNN>``) vocabularies; other
    tokenizers fall back to decoding each id alone. Duck-typed: needs ``convert_ids_to_tokens``."""
    n = len(tokenizer)
    toks = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    decoder = {c: b for b, c in _bytes_to_unicode().items()}
    plain = [t for t in toks if t]
    byte_level = sum(all(c in decoder for c in t) for t in plain) >= 0.95 * max(1, len(plain))
    sentencepiece = sum("▁" in t for t in plain) >= 0.01 * max(1, len(plain))
    out: list[bytes | None] = []
    for i, t in enumerate(toks):
        if i in special or t is None:
            out.append(None)
        elif byte_level:
            out.append(bytes(decoder[c] for c in t) if all(c in decoder for c in t) else None)
        elif t.startswith("<0x") and t.endswith(">") and len(t) == 6:
            out.append(bytes([int(t[3:5], 16)]))
        elif sentencepiece and "▁" in t:
            out.append(t.replace("▁", " ").encode("utf-8"))
        else:
            text = tokenizer.decode([i])
            out.append(None if "\ufffd" in text else text.encode("utf-8"))
    return out


def piece_text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="ignore")


class Vocabulary:
    """Indexes over the token pieces of one tokenizer (build once, share between sessions)."""

    def __init__(self, pieces: Sequence[bytes | None], stop_ids: Sequence[int]):
        self.pieces = list(pieces)
        self.stop_ids = sorted(set(int(s) for s in stop_ids))
        self._fingerprint: str | None = None
        self.by_bytes: dict[bytes, list[int]] = {}      # every non-empty piece
        self.quote_safe: dict[bytes, list[int]] = {}    # pieces usable inside a quote
        banned, after_word, openers, ends, newline = set(), set(), {}, set(), set()
        for tid, piece in enumerate(self.pieces):
            if tid in self.stop_ids:
                continue
            if not piece:
                banned.add(tid)
                continue
            self.by_bytes.setdefault(piece, []).append(tid)
            text = piece_text(piece)
            if not any(c in QUOTE_CHARS or c in "\n\r" for c in text):
                self.quote_safe.setdefault(piece, []).append(tid)
            if "\n" in text or "\r" in text:
                newline.add(tid)
            if any(c in SENTENCE_END for c in text):
                ends.add(tid)
            marks = [i for i, c in enumerate(text) if c in QUOTE_CHARS]
            if any(c in BANNED_FREE_CHARS for c in text) or (marks and (
                    len(marks) > 1 or marks[0] != len(text) - 1 or text[-1] not in OPENERS)):
                banned.add(tid)
            elif marks:
                openers[tid] = text[-1]
            for i, c in enumerate(text):
                if c in SINGLE_QUOTES:
                    if i == 0:
                        after_word.add(tid)
                    elif not text[i - 1].isalnum():
                        banned.add(tid)
        self.max_len = max((len(p) for p in self.by_bytes), default=1)
        self.free_banned = frozenset(banned)
        self.needs_word_before = frozenset(after_word - banned)
        self.openers = openers
        self.sentence_end = frozenset(ends)
        self.newline = frozenset(newline)

    @property
    def fingerprint(self) -> str:
        """A short hash of the pieces and stop ids: equal for the same tokenizer in any process."""
        if self._fingerprint is None:
            h = hashlib.sha256(repr(self.stop_ids).encode())
            for piece in self.pieces:
                h.update(b"\xff" if piece is None else len(piece).to_bytes(2, "little") + piece)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def is_single_token(self, text: str) -> bool:
        return text.encode("utf-8") in self.by_bytes

    def prefixes_of(self, data: bytes, table: Mapping[bytes, list[int]] | None = None) -> list[int]:
        """Ids of the pieces that equal ``data[:L]`` for some L >= 1."""
        table = self.by_bytes if table is None else table
        out: list[int] = []
        for n in range(1, min(len(data), self.max_len) + 1):
            ids = table.get(data[:n])
            if ids:
                out.extend(ids)
        return out


_VOCABS: dict[tuple[int, tuple], tuple[object, Vocabulary]] = {}
_VOCABS_LOCK = threading.Lock()


def vocabulary_for(tokenizer, stop_ids: Sequence[int]) -> Vocabulary:
    """The tokenizer's :class:`Vocabulary` (built once per tokenizer object and stop ids, ~1 s for 50k ids)."""
    key = (id(tokenizer), tuple(sorted(int(s) for s in stop_ids)))
    with _VOCABS_LOCK:
        if key not in _VOCABS:  # the entry keeps the tokenizer alive, so its id is never reused
            _VOCABS[key] = (tokenizer, Vocabulary(token_pieces(tokenizer), stop_ids))
        return _VOCABS[key][1]


def lead_in(language: str, speaker: str, vocab: Vocabulary) -> tuple[str, str, str]:
    """(lead-in text ending with the opening mark, opening mark, closing mark) for a language."""
    lang = "zh" if language == "zh" else "en"
    styles = QUOTE_STYLES[lang]
    open_, close = next(((o, c) for o, c in styles if vocab.is_single_token(o) and vocab.is_single_token(c)),
                        styles[-1] if lang == "zh" else styles[0])
    return LEADS[lang].get(speaker, LEADS[lang]["client"]) + open_, open_, close
