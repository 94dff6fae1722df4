"""Plain chat transcripts: one turn per line, ``Label: text``, one session per file.

Conventions:

* Built-in labels (case-insensitive, ``:`` or full-width ``：``, spaces around it allowed):
  English ``Counselor``/``Counsellor``/``Therapist`` -> counselor, ``Client`` -> client;
  Chinese ``咨询师``/``心理咨询师``/``治疗师``/``諮詢師`` -> counselor, ``来访者``/``求助者``/``來訪者``
  -> client. Single letters (``T:``, ``C:``, ``A:``) are *not* built in: ``C`` is Counselor in
  some files and Client in others. Those, and names (``Dr. Lee:``, ``Patient:``), need a speaker
  map; the error lists them with counts and the exact ``--speaker-map`` to pass.
* A line without a label continues the previous turn (kept as a new line in the turn's text);
  blank lines are ignored. A line indented deeper than the turn lines always continues the
  previous turn, so text that starts like a label (``Note: ...``) can be kept by indenting it.
  Something counts as an unknown label only if it looks like one (up to three capitalised words,
  or one word, or up to eight CJK characters), so ``I told him: no`` stays text.
* Header lines at the top, ``# key: value``: ``client`` -> client_id, ``counselor`` (or
  ``therapist``) -> counselor_id, ``session`` -> ``metadata["session_number"]`` (a number when it
  is one), ``language`` -> language; ``来访者``/``咨询师``/``会谈``/``语言`` work too. Other keys go to
  ``metadata["headers"]``, other ``#`` lines to ``metadata["header_comments"]``.
* Session id ``text-<file name stem>``; source ``text``; ``metadata["speaker_labels"]`` maps each
  label as written to its role.
* Language: ``language=`` > the ``# language:`` header > the labels (English or Chinese) > the
  text (share of CJK characters). A turn with no text is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

from care_model.core.errors import ImportFormatError
from care_model.core.records import Session, Turn

from .common import (Context, Parsed, SpeakerResolver, at, check_language, detect_language, fail, has_cjk,
                     norm_label, read_text, validated)

EN_LABELS = {"Counselor": "counselor", "Counsellor": "counselor", "Therapist": "counselor", "Client": "client"}
ZH_LABELS = {"咨询师": "counselor", "心理咨询师": "counselor", "治疗师": "counselor", "諮詢師": "counselor",
             "来访者": "client", "求助者": "client", "來訪者": "client"}
BUILTIN_SPEAKERS = {**EN_LABELS, **ZH_LABELS}
_LABEL_LANGUAGE = {norm_label(k): "en" for k in EN_LABELS} | {norm_label(k): "zh" for k in ZH_LABELS}

HEADER_KEYS = {
    "client": "client_id", "client_id": "client_id", "来访者": "client_id",
    "counselor": "counselor_id", "counsellor": "counselor_id", "therapist": "counselor_id",
    "counselor_id": "counselor_id", "咨询师": "counselor_id",
    "session": "session_number", "session_number": "session_number", "会谈": "session_number",
    "language": "language", "语言": "language",
}

_LABEL_RE = re.compile(r"^(?P<label>[^:：]{1,40}?)\s*[:：]\s*(?P<rest>.*)$")
_HEADER_RE = re.compile(r"^#\s*(?P<key>[^:：]+?)\s*[:：]\s*(?P<value>.*)$")
_LATIN_LABEL_RE = re.compile(r"[^\W\d_][\w .'’\-()]*")
_CJK_LABEL_BAD = re.compile(r"[\s，。！？、；“”\"'…]")


def looks_like_label(label: str) -> bool:
    """Could ``label`` be a speaker name (as opposed to the start of a sentence)?"""
    if not label or len(label) > 30:
        return False
    if has_cjk(label):
        return len(label) <= 8 and not _CJK_LABEL_BAD.search(label)
    if not _LATIN_LABEL_RE.fullmatch(label):
        return False
    words = label.split()
    if len(words) > 3:
        return False
    return len(words) == 1 or not any(w[0].islower() for w in words)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse(path: Path, ctx: Context) -> Parsed:
    text = read_text(path)
    out = Parsed()
    lines = text.split("\n")
    resolver = SpeakerResolver(BUILTIN_SPEAKERS, ctx)

    # header block: '#' lines (and blank lines) before the first turn
    fields: dict = {}
    headers: dict[str, str] = {}
    comments: list[str] = []
    start = 0
    for start, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        m = _HEADER_RE.match(stripped)
        if not m:
            comments.append(stripped.lstrip("#").strip())
            continue
        key, value = m.group("key").strip(), m.group("value").strip()
        target = HEADER_KEYS.get(norm_label(key).replace(" ", "_"))
        if target == "language":
            try:
                fields["language"] = check_language(value.lower())
            except ImportFormatError as err:
                raise fail(at(path, start + 1), f"header language {value!r} is unknown.", err.fix,
                           line=start + 1) from None
        elif target == "session_number":
            fields[target] = int(value) if value.isdigit() else value
        elif target:
            fields[target] = value
        else:
            headers[key] = value
    else:
        start = len(lines)

    body = [(n, line) for n, line in enumerate(lines[start:], start + 1) if line.strip()]
    if not body:
        raise fail(at(path), "the file has no transcript lines, only headers.",
                   "Write one turn per line, e.g. 'Counselor: ...' / 'Client: ...' or '咨询师：…' / '来访者：…'.")
    base = min(_indent(line) for _, line in body)

    turns: list[list] = []  # [role, label, line, parts]
    for n, line in body:
        stripped = line.strip()
        m = _LABEL_RE.match(stripped) if _indent(line) == base else None
        if m:
            label = m.group("label").strip()
            if resolver.is_known(label) or (looks_like_label(label) and not m.group("rest").startswith("//")):
                role = resolver.see(label, f"line {n}")
                turns.append([role, label, n, [m.group("rest").strip()]])
                continue
        if not turns:
            raise fail(at(path, n), f"text before the first speaker label: {stripped[:60]!r}.",
                       "Start every turn with its speaker, e.g. 'Counselor: ...' / 'Client: ...' or "
                       "'咨询师：…' / '来访者：…'; header lines at the top start with '#', e.g. '# client: c-12'.",
                       line=n)
        turns[-1][3].append(stripped)
    resolver.raise_if_unknown(path)

    session_turns, labels, label_langs = [], {}, set()
    for role, label, n, parts in turns:
        content = "\n".join(p for p in parts if p).strip()
        if not content:
            raise fail(at(path, n), f"the {label!r} turn has no text.",
                       "Give the turn its words (e.g. '[silence]' if nothing was said) or delete the line.", line=n)
        session_turns.append(Turn(index=len(session_turns), speaker=role, text=content))
        labels.setdefault(label, role)
        if norm_label(label) in _LABEL_LANGUAGE and norm_label(label) not in ctx.speaker_map:
            label_langs.add(_LABEL_LANGUAGE[norm_label(label)])

    detected = detect_language(t.text for t in session_turns)
    if ctx.language:
        language = ctx.language
    elif "language" in fields:
        language = fields["language"]
    elif len(label_langs) == 1:
        language = label_langs.pop()
        if language != detected:
            out.warnings.append(f"{at(path)}: the labels are {language!r} but the text looks {detected!r}; "
                                f"using {language!r} (pass language={detected!r} to override).")
    else:
        language = detected

    meta: dict = {"speaker_labels": labels}
    if "session_number" in fields:
        meta["session_number"] = fields["session_number"]
    if headers:
        meta["headers"] = headers
    if comments:
        meta["header_comments"] = comments
    if not fields.get("client_id"):
        out.warnings.append(f"{at(path)}: no '# client: ...' header line; client_id left empty.")
    session = Session(id=f"text-{path.stem}", turns=session_turns, language=language, source="text",
                      client_id=fields.get("client_id", ""), counselor_id=fields.get("counselor_id", ""),
                      metadata=meta)
    out.sessions.append((validated(session, at(path)), at(path)))
    return out
