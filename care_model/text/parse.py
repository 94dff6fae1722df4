"""Read a model's two-line answer (option number, then reason) robustly.

What models really emit, and what this module does with it:

* The answer line is the first non-blank line that *starts* with an answer: a number
  (``4``, ``4. Very often``, ``4 - Very often``, ``**4**``, ``(4)``, ``4/5``, ``4分``), a labelled
  number (``Score: 4``, ``Answer: (4)``, ``Line 1: 4``, ``选择：4``, ``答案：4 非常频繁``) or an
  option label in any of the form's languages (``Very often``, ``fairly often``, ``总是``; longest
  label first, case-insensitive). A chatter line such as ``I would choose 4`` also counts.
  Lines before it are chatter and are dropped.
* Text is NFKC-normalised for matching, so full-width digits and punctuation (``４``, ``：``)
  read as ASCII; the rationale keeps the model's own characters.
* The rationale is the rest of the answer line plus the following lines, with prefixes such as
  ``Reason:``, ``Rationale:``, ``Line 2:``, ``理由：``, ``原因：`` removed. If the reason came
  *before* a labelled score (``Reason: ...`` then ``Score: 4``) it is used instead.
* Failures (``status="failed"``, ``score=None``, ``error`` says why): empty output, no answer,
  a number outside the scale (``7``, ``0``), a fraction (``3.5``), two options (``3 or 4``,
  ``3-4``, ``Fairly often or very often``), a number that disagrees with its label
  (``3 - Very often``), or an echo of the option list (two or more of the first lines read like
  ``2. Sometimes``: small models often repeat the options instead of choosing one). A missing
  reason is not a failure: ``status="ok"`` with a warning.

:func:`parse_answer` never raises; ``raw`` always holds the text as given.
Pure module: no torch, no transformers, no tinydb.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from care_model.core.wai import Form, load_form

OK, FAILED = "ok", "failed"
NO_REASON = "no reason given after the score"

_PREFIX = (
    r"(?:line\s*1|第一行)\s*[:=]?\s*"
    r"(?:(?:(?:my|the|final|your)\s+)*(?:answer|score|rating|option|choice|selection|response)(?:\s+is)?)?"
    r"|(?:(?:my|the|final|your)\s+)*(?:answer|score|rating|option|choice|selection|response)(?:\s+is)?"
    r"|我的?(?:最终)?(?:答案|选择|回答|评分|打分|选项)(?:是|为)?|我选择?|最终(?:答案|选择)(?:是|为)?"
    r"|答案|选择|选项|回答|得分|评分|打分|分数"
)
_OPEN, _CLOSE = r"[(\[【〔<\"'“‘「]", r"[)\]】〕>\"'”’」]"
_SEP = r"[\s.:;)\]】〕>,、\-–—(\[【\"'“”‘’「」]*"
_TURN_REF_AHEAD = r"(?!\s*[)\]】〕>]?\s*(?:client|counselor|来访者|咨询师))"
_PHRASE = (r"\b(?:i\s*(?:would|'d|will|'ll)\s+)?(?:choose|select|pick|go\s+with|rate\s+(?:it|this)(?:\s+(?:as|a|an))?"
           r"|(?:answer|score|rating|choice)(?:\s+is|\s*[:=]))\s*(?:option\s+)?")
_RATIONALE_PREFIX = re.compile(
    r"^[\s*_`#>]*(?:(?:line\s*2|第二行)\s*[*_`]*\s*[:：]\s*[*_`]*\s*)?"
    r"(?:(?:reason|rationale|explanation|justification|because|理由|原因|解释|依据)\s*[*_`]*\s*[:：]\s*[*_`]*\s*"
    r"|(?:line\s*2|第二行)\s*[*_`]*\s*[:：]\s*[*_`]*\s*)",
    re.IGNORECASE,
)
_LEADING_JUNK = " \t*_`#>.:;)]】〕,，。：、-–—"


@dataclass
class ParsedAnswer:
    score: int | None
    rationale: str
    status: str  # "ok" | "failed"
    error: str
    raw: str
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class _Grammar:
    head_num: re.Pattern
    head_label: re.Pattern
    phrase: re.Pattern
    label_at: re.Pattern
    out_of: re.Pattern
    ambiguous: re.Pattern  # a second option after a number
    ambiguous_label: re.Pattern  # a second option after a label
    num_at: re.Pattern
    option_line: re.Pattern  # "2. Sometimes": a line of an echoed option list
    label_scores: dict  # casefolded label -> score
    lo: int
    hi: int


@lru_cache(maxsize=32)
def _grammar(labels: tuple[tuple[str, int], ...], lo: int, hi: int) -> _Grammar:
    ordered = sorted(labels, key=lambda kv: -len(kv[0]))
    alt = "|".join(re.escape(lab) for lab, _ in ordered)
    label = rf"(?P<label>{alt})(?![a-z])"
    num = r"(?P<num>[0-9]+(?:[.,][0-9]+)?)(?![0-9])"
    flags = re.IGNORECASE
    option = r"(?:option|选项)?\s*"
    bullet = r"^\s*(?:[-•·]\s+)?"
    connector = r"(?:or|to|and|/|-|–|—|~|～|或者?|到|至|和|,|，)"
    alternative = r"(?:or|to|/|-|–|—|~|～|或者?|到|至)"  # "Very often, 3 times" is not a second option
    return _Grammar(
        head_num=re.compile(rf"{bullet}(?:(?:{_PREFIX})\s*[:=]?\s*)?{option}{_OPEN}?\s*{num}\s*{_CLOSE}?"
                            rf"{_TURN_REF_AHEAD}", flags),
        head_label=re.compile(rf"{bullet}(?:(?:{_PREFIX})\s*[:=]?\s*)?{option}{_OPEN}?\s*{label}", flags),
        phrase=re.compile(rf"{_PHRASE}{_OPEN}?\s*(?:{num}|{label})", flags),
        label_at=re.compile(rf"{_SEP}{label}", flags),
        out_of=re.compile(rf"\s*(?:/\s*{hi}|out\s+of\s+{hi}|分)(?![0-9])", flags),
        ambiguous=re.compile(rf"\s*{connector}\s*{_OPEN}?\s*[0-9]", flags),
        ambiguous_label=re.compile(rf"\s*(?:{connector}\s*{_OPEN}?\s*(?:{alt})|{alternative}\s*{_OPEN}?\s*[0-9])",
                                   flags),
        num_at=re.compile(rf"\s*(?:[-–—:=]\s*)?[(\[【]?\s*{num}\s*[)\]】]?(?=\s*(?:$|[^\w\s]))", flags),
        option_line=re.compile(rf"{bullet}[0-9]\s*[.)、:：]?\s*(?:{alt})\s*[.。]?\s*$", flags),
        label_scores={lab.casefold(): score for lab, score in labels},
        lo=lo,
        hi=hi,
    )


def _grammar_for(form: Form, language: str | None) -> _Grammar:
    langs = list(form.scale.labels)
    if language in langs:  # the session's language first; all languages are recognised
        langs.remove(language)
        langs.insert(0, language)
    pairs = tuple((lab, int(score)) for lang in langs for score, lab in form.scale.labels[lang].items())
    return _grammar(pairs, form.scale.min, form.scale.max)


def _normalize_line(line: str) -> tuple[str, list[int]]:
    """NFKC per character (markdown emphasis blanked); returns the text and a map to original offsets."""
    out, starts = [], []
    for i, ch in enumerate(line):
        norm = unicodedata.normalize("NFKC", ch)
        if norm in ("*", "`", "_"):
            norm = " "
        for c in norm:
            out.append(c)
            starts.append(i)
    starts.append(len(line))
    return "".join(out), starts


@dataclass
class _Hit:
    score: int | None
    end: int  # offset in the original line where the rationale may start
    error: str = ""


def _label_score(g: _Grammar, text: str) -> int:
    return g.label_scores[text.casefold()]


def _after_number(g: _Grammar, norm: str, pos: int, value: str) -> tuple[int, str, int | None]:
    """Look past a number: '/5', a second option, a label. Returns (end, error, score)."""
    if re.search(r"[.,]", value):
        return pos, f"The answer {value!r} is not a whole option number.", None
    score = int(value)
    m = g.out_of.match(norm, pos)
    if m:
        pos = m.end()
    if g.ambiguous.match(norm, pos):
        return pos, "The answer names more than one option; expected exactly one.", None
    if not (g.lo <= score <= g.hi):
        return pos, f"Option number {score} is outside the scale {g.lo}-{g.hi}.", None
    m = g.label_at.match(norm, pos)
    if m:
        label_score = _label_score(g, m.group("label"))
        if label_score != score:
            return pos, (f"Option number {score} disagrees with the label {m.group('label')!r} "
                         f"(option {label_score})."), None
        pos = m.end()
    return pos, "", score


def _after_label(g: _Grammar, norm: str, m: re.Match) -> tuple[int, str, int | None]:
    pos, score = m.end(), _label_score(g, m.group("label"))
    num = g.num_at.match(norm, pos)  # "Very often (4)"
    if num:
        if num.group("num") != str(score):
            return pos, (f"The label {m.group('label')!r} (option {score}) disagrees with the number "
                         f"{num.group('num')!r} after it."), None
        pos = num.end()
    if g.ambiguous_label.match(norm, pos):
        return pos, "The answer names more than one option; expected exactly one.", None
    return pos, "", score


def _read_line(g: _Grammar, line: str) -> _Hit | None:
    norm, starts = _normalize_line(line)
    found = None
    m = g.head_num.match(norm)
    if m:
        found = _after_number(g, norm, m.end(), m.group("num"))
    else:
        m = g.head_label.match(norm)
        if m:
            found = _after_label(g, norm, m)
        else:
            m = g.phrase.search(norm)
            if m:
                found = (_after_number(g, norm, m.end(), m.group("num")) if m.group("num")
                         else _after_label(g, norm, m))
    if found is None:
        return None
    pos, error, score = found
    return _Hit(score=score, end=starts[min(pos, len(norm))], error=error)


def _strip_rationale(text: str) -> str:
    text = text.strip()
    while True:
        stripped = _RATIONALE_PREFIX.sub("", text, count=1).strip()
        if stripped == text:
            return text
        text = stripped


def _failed(raw: str, error: str) -> ParsedAnswer:
    return ParsedAnswer(score=None, rationale="", status=FAILED, error=error, raw=raw)


def _echoes_options(lines: list[str], g: _Grammar) -> bool:
    """The output starts by listing options ("1. Seldom / 2. Sometimes / ...") instead of choosing."""
    head = [_normalize_line(line)[0] for line in lines if line.strip()][:5]
    return sum(bool(g.option_line.match(line)) for line in head) >= 2


def _parse(raw: str, g: _Grammar) -> ParsedAnswer:
    if not raw.strip():
        return _failed(raw, "The model's output is empty.")
    lines = raw.splitlines()
    if _echoes_options(lines, g):
        return _failed(raw, "The output lists the options instead of choosing one.")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        hit = _read_line(g, line)
        if hit is None:
            continue
        if hit.error:
            return _failed(raw, hit.error)
        rest = line[hit.end:].lstrip(_LEADING_JUNK)
        rationale = _strip_rationale("\n".join([rest] + lines[n + 1:]))
        if not rationale:  # a reason given before the score ("Reason: ...\nScore: 4")
            before = [i for i in range(n) if _RATIONALE_PREFIX.match(lines[i]) and lines[i].strip()]
            if before:
                rationale = _strip_rationale("\n".join(lines[before[0]:n]))
        warnings = [] if rationale else [NO_REASON]
        return ParsedAnswer(score=hit.score, rationale=rationale, status=OK, error="", raw=raw, warnings=warnings)
    return _failed(raw, f"No option number ({g.lo}-{g.hi}) or option label found in the output.")


def parse_answer(text: str, form: Form | None = None, language: str | None = None) -> ParsedAnswer:
    """Parse one model answer; never raises. ``language`` only orders label matching."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    try:
        grammar = _grammar_for(form or load_form(), language)
        return _parse(raw, grammar)
    except Exception as exc:  # last resort: a parser must not take the batch down
        return _failed(raw, f"The parser could not read the output ({type(exc).__name__}: {exc}).")
