"""Map the quotes and turn references in a rationale to transcript turns.

* :func:`find_quotes` extracts quoted spans in English and Chinese styles: ``"..."``, ``“...”``,
  ``'...'`` (an apostrophe inside a word, as in *don't*, neither opens nor closes a quote),
  ``‘...’``, ``「...」``, ``『...』``, ``«...»``, ``‹...›`` and their full-width forms. A quote nested
  in another is not extracted twice. Quotes shorter than 3 words (English) or 4 characters
  (Chinese) are dropped unless they equal a whole turn (which needs a :class:`TranscriptIndex`).
* :func:`link_evidence` / :meth:`TranscriptIndex.link` match each quote to a turn. Both sides
  are normalised (NFKC, casefold, every quote style and punctuation mark of both scripts to a
  space, whitespace collapsed, no spaces next to Chinese characters). An ellipsis inside a
  quote (``...``, ``…``, ``……``, ``[...]``) marks an elision: all parts must appear in order in
  one turn. A quote is first matched on whole words, then with all spaces removed (so
  ``dont`` matches *don't*). A quote that is a whole turn goes to that turn; otherwise the first
  turn that contains it. A leading ``[12] Client:`` copied from the transcript is ignored.
* Explicit references count too: ``[12]``, ``[12-14]``, ``turn 12``, ``turns 12 and 14``,
  ``turns 12-14``, ``第12轮`` / ``第12-14轮`` (also 句 / 回合). Numbers are ``Turn.index`` values,
  as the prompt prints them. A reference to a turn that does not exist is listed in
  ``unsupported`` as written.
* Attribution: :func:`attributed_speaker` says whose words a quote is presented as -- the speaker
  named last before its opening mark ("the counselor says ...", "来访者说"); :func:`quote_attributions`
  gives it for every quote of a rationale. Grounded decoding (:mod:`care_model.text.grounding`) uses
  the same rule to choose which speaker's turns a quote may come from, and
  ``benchmarks/quote_attribution.py`` to count misattributed quotes in a predictions file.

Build a :class:`TranscriptIndex` once per session and call ``link`` for each of the 12
rationales; turns are normalised only once.
Pure module: no torch, no transformers, no tinydb.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

MIN_WORDS_EN = 3
MIN_CHARS_ZH = 4
MAX_RANGE = 30  # a reference range longer than this is not expanded

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_NON_WORD = re.compile(r"[\W_]+")
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK}]) | (?=[{_CJK}])")
_ELLIPSIS = re.compile(r"[\[(（]\s*(?:\.{2,}|…+)\s*[\])）]|(?:\.\s?){2,}\.|\.{2,}|…+")
_LINE_PREFIX = re.compile(
    r"^\s*(?:[\[【]\s*\d+\s*[\]】]\s*)?(?:client|counselor|counsellor|therapist|来访者|咨询师)\s*[:：]\s*",
    re.IGNORECASE,
)

# (pattern, group) pairs; each pattern's group 1 is the quoted text.
_QUOTE_PATTERNS = [
    re.compile(r'["＂]([^"＂\n]+)["＂]'),
    re.compile(r'“([^“”\n]+)[”"]'),
    re.compile(r"「([^」\n]+)」"),
    re.compile(r"『([^』\n]+)』"),
    re.compile(r"｢([^｣\n]+)｣"),
    re.compile(r"«([^»\n]+)»"),
    re.compile(r"‹([^›\n]+)›"),
    re.compile(r"‘(\S(?:[^\n]*?\S)?)’(?!\w)"),
    re.compile(r"(?<!\w)['＇](\S(?:[^\n]*?\S)?)['＇](?!\w)"),
]
_REF_PATTERNS = [
    re.compile(r"[\[【]\s*(\d+)\s*(?:(?:-|–|—|~|,|，)\s*(\d+)\s*)?[\]】]"),
    re.compile(r"\bturns?\s*#?\s*(\d+)((?:\s*(?:,|and|&|-|–|—|to)\s*\d+)*)", re.IGNORECASE),
    re.compile(r"第\s*(\d+)\s*(?:(?:-|–|—|~|至|到|和|、)\s*第?\s*(\d+)\s*)?(?:轮|句|回合|个回合)"),
]


_SPEAKER_WORDS = {
    "client": re.compile(r"(?i:\b(?:client|patient)s?\b)|来访者|求助者"),
    "counselor": re.compile(r"(?i:\b(?:counsel+or|therapist)s?\b)|咨询师|治疗师"),
}


@dataclass
class EvidenceResult:
    turn_indices: list[int] = field(default_factory=list)      # sorted, unique
    matches: list[tuple[str, int | None]] = field(default_factory=list)  # (quote, turn index or None)
    unsupported: list[str] = field(default_factory=list)       # quotes / references that match no turn
    referenced: list[int] = field(default_factory=list)        # explicit references ([12], turn 12, 第12轮)


# ----- normalisation -----------------------------------------------------------------------
def normalize(text: str) -> str:
    """NFKC, casefold, punctuation of both scripts to spaces, collapsed, no spaces around CJK."""
    text = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()
    return _SPACE_NEAR_CJK.sub("", text)


def _is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.match(ch))


def long_enough(norm: str) -> bool:
    if _CJK_RE.search(norm):
        return len(norm.replace(" ", "")) >= MIN_CHARS_ZH
    return len(norm.split()) >= MIN_WORDS_EN


def _boundary(hay: str, start: int, end: int) -> bool:
    """No word continues across either end of ``hay[start:end]`` (CJK needs no boundary)."""
    before = start == 0 or hay[start - 1] == " " or _is_cjk(hay[start - 1]) or _is_cjk(hay[start])
    after = end == len(hay) or hay[end] == " " or _is_cjk(hay[end]) or _is_cjk(hay[end - 1])
    return before and after


def _find_word(hay: str, needle: str, start: int) -> int:
    """End offset of the first whole-word occurrence of ``needle`` at or after ``start``; -1 if none."""
    pos = hay.find(needle, start)
    while pos >= 0:
        if _boundary(hay, pos, pos + len(needle)):
            return pos + len(needle)
        pos = hay.find(needle, pos + 1)
    return -1


def _in_order(hay: str, parts: list[str]) -> bool:
    """All ``parts`` occur as whole words in ``hay``, in this order."""
    pos = 0
    for part in parts:
        pos = _find_word(hay, part, pos)
        if pos < 0:
            return False
    return True


def _compact(norm: str) -> tuple[str, frozenset, frozenset]:
    """``norm`` without spaces, with the offsets where words start and end in it."""
    compact, starts, ends = [], {0}, set()
    for ch in norm:
        if ch == " ":
            ends.add(len(compact))
            starts.add(len(compact))
        else:
            compact.append(ch)
    ends.add(len(compact))
    return "".join(compact), frozenset(starts), frozenset(ends)


def _in_order_compact(hay: str, starts: frozenset, ends: frozenset, parts: list[str]) -> bool:
    """Like :func:`_in_order` with spaces ignored; parts still start and end on word edges."""
    pos = 0
    for part in parts:
        at = hay.find(part, pos)
        while at >= 0:
            end = at + len(part)
            if (at in starts or _is_cjk(hay[at]) or (at and _is_cjk(hay[at - 1]))) and \
                    (end in ends or _is_cjk(hay[end - 1]) or (end < len(hay) and _is_cjk(hay[end]))):
                break
            at = hay.find(part, at + 1)
        if at < 0:
            return False
        pos = at + len(part)
    return True


# ----- quotes ------------------------------------------------------------------------------
def _quote_spans(rationale: str) -> list[str]:
    spans = []
    for pattern in _QUOTE_PATTERNS:
        for m in pattern.finditer(rationale):
            spans.append((m.start(), m.end(), m.group(1).strip()))
    spans.sort(key=lambda s: (s[0], -s[1]))
    kept, reach = [], -1
    for start, end, text in spans:
        if start >= reach and text:
            kept.append(text)
            reach = end
        elif start >= reach:
            reach = end
    return kept


def _quote_parts(quote: str) -> list[str]:
    quote = _LINE_PREFIX.sub("", quote)
    return [p for p in (normalize(part) for part in _ELLIPSIS.split(quote)) if p]


class TranscriptIndex:
    """Normalised turns of one transcript, reusable for every item's rationale. The space-free
    ("compact") form is built only when a quote is not found word by word (most are), which
    makes opening a session's 12 rationales about three times cheaper."""

    def __init__(self, turns: Iterable):
        self.indices: list[int] = []
        self.words: list[str] = []
        self.whole: dict[str, int] = {}
        self._compact: list[tuple[str, frozenset, frozenset]] | None = None
        for pos, turn in enumerate(turns):
            index, text = _turn_fields(turn, pos)
            norm = normalize(text)
            self.indices.append(index)
            self.words.append(norm)
            self.whole.setdefault(norm, index)
        self.known = set(self.indices)

    @property
    def compact(self) -> list[tuple[str, frozenset, frozenset]]:
        """Per turn: its text without spaces, and where words start and end in it (built on first use)."""
        if self._compact is None:
            self._compact = [_compact(w) for w in self.words]
        return self._compact

    def find(self, quote: str) -> int | None:
        """The turn index a quote comes from, or None."""
        parts = _quote_parts(quote)
        if not parts:
            return None
        if len(parts) == 1 and parts[0] in self.whole:
            return self.whole[parts[0]]
        for pos, hay in enumerate(self.words):
            if _in_order(hay, parts):
                return self.indices[pos]
        compact = [p.replace(" ", "") for p in parts]
        for pos, (hay, starts, ends) in enumerate(self.compact):
            if _in_order_compact(hay, starts, ends, compact):
                return self.indices[pos]
        return None

    def is_whole_turn(self, quote: str) -> bool:
        parts = _quote_parts(quote)
        return len(parts) == 1 and parts[0] in self.whole

    def references(self, rationale: str) -> tuple[list[int], list[str]]:
        """Explicit turn references: (existing turn indices, references to missing turns)."""
        text = unicodedata.normalize("NFKC", rationale)
        found, missing = [], []
        for pattern in _REF_PATTERNS:
            for m in pattern.finditer(text):
                numbers = _ref_numbers(m)
                if not numbers:
                    continue
                hits = [n for n in numbers if n in self.known]
                found.extend(hits)
                if len(hits) < len(numbers):
                    missing.append(m.group(0).strip())
        return found, missing

    def link(self, rationale: str) -> EvidenceResult:
        rationale = rationale if isinstance(rationale, str) else ""
        matches = [(q, self.find(q)) for q in find_quotes(rationale, index=self)]
        referenced, missing = self.references(rationale)
        indices = sorted({i for _, i in matches if i is not None} | set(referenced))
        unsupported = [q for q, i in matches if i is None] + missing
        return EvidenceResult(turn_indices=indices, matches=matches, unsupported=unsupported,
                              referenced=sorted(set(referenced)))


def _turn_fields(turn, pos: int) -> tuple[int, str]:
    if isinstance(turn, str):
        return pos, turn
    if isinstance(turn, dict):
        return int(turn.get("index", pos)), str(turn.get("text", ""))
    return int(getattr(turn, "index", pos)), str(getattr(turn, "text", ""))


def _ref_numbers(m: re.Match) -> list[int]:
    first = int(m.group(1))
    tail = m.string[m.end(1):m.end()]
    others = [int(n) for n in re.findall(r"\d+", tail)]
    if not others:
        return [first]
    if re.search(r"-|–|—|~|to|至|到", tail) and len(others) == 1:
        last = others[0]
        if first <= last <= first + MAX_RANGE:
            return list(range(first, last + 1))
        return [first, last]
    return [first] + others


def find_quotes(rationale: str, *, index: TranscriptIndex | None = None) -> list[str]:
    """Quoted spans in order of appearance; short ones only if they equal a whole turn of ``index``."""
    if not isinstance(rationale, str):
        return []
    out = []
    for quote in _quote_spans(rationale):
        parts = _quote_parts(quote)
        if not parts:
            continue
        if long_enough(" ".join(parts)) or (index is not None and index.is_whole_turn(quote)):
            out.append(quote)
    return out


def attributed_speaker(text_before: str, default: str | None = None) -> str | None:
    """The speaker ("client" / "counselor") named last in ``text_before`` (the rationale up to a
    quote's opening mark): whose words the quote is presented as; ``default`` if none is named."""
    best, at = default, -1
    for speaker, pattern in _SPEAKER_WORDS.items():
        for m in pattern.finditer(str(text_before)):
            if m.start() > at:
                best, at = speaker, m.start()
    return best


def quote_attributions(rationale: str, *, index: TranscriptIndex | None = None) -> list[tuple[str, str | None]]:
    """``(quote, attributed speaker or None)`` for each quote :func:`find_quotes` extracts, in order."""
    if not isinstance(rationale, str):
        return []
    wanted = find_quotes(rationale, index=index)
    spans = sorted(((m.start(), m.group(1).strip()) for pattern in _QUOTE_PATTERNS
                    for m in pattern.finditer(rationale)), key=lambda s: s[0])
    out, pos = [], 0
    for quote in wanted:
        start = next((st for st, text in spans if text == quote and st >= pos), None)
        if start is None:
            out.append((quote, None))
            continue
        out.append((quote, attributed_speaker(rationale[:start])))
        pos = start + 1
    return out


def link_evidence(rationale: str, turns) -> EvidenceResult:
    """Turn indices supported by a rationale's quotes and references (see the module docstring)."""
    index = turns if isinstance(turns, TranscriptIndex) else TranscriptIndex(turns)
    return index.link(rationale)
