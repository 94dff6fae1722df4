"""The per-item prompt, after the paper's (CARE, arXiv 2602.20648, Fig. 4) but in another order.

The paper's Fig. 4 gives the transcript, then the item, then the options. Here the options and
the answer instructions come *before* the item: everything the 12 items of a session share
(transcript, role, options, answer format) is one prefix that an engine computes once, and each
item adds only its statement. The wording is ours too (see ``PROMPT_TEMPLATES``).

Layout
------
One chat per item: a system message, then one user message, then the assistant header.
The user message is ``shared_text + item_text``::

    system:  who the model is and what it does (answer as the client / the counselor)
    user:    intro line
             [0] Counselor: ...            <- numbered, speaker-marked turns (Turn.index)
             [1] Client: ...
             role instruction ("Imagine you are the client ...")
             1. Seldom ... 5. Always       <- the five options (same for every item)
             answer format: two lines, the option number, then a reason quoting who said what
             "Statement:\\n"               <- the prefix ends here, with a newline
             <item statement>              <- the suffix starts here ...
    <end of user turn><assistant header>   <- ... and ends with the chat template's tokens

Everything that is the same for the 12 items comes first, so the 12 renderings share one
prefix (``SessionPrompt.prefix``) that an engine computes once; each ``suffix`` is only the
item statement plus the template's end-of-user / start-of-assistant text. The prefix ends with
a newline so that common BPE tokenizers split ``prefix + suffix`` into exactly the tokens of
``prefix`` followed by the tokens of ``suffix``.

Splitting: every item's messages are rendered in full with ``render_chat``; the split point is
the start of the item statement (its last occurrence in the rendering, which is the end of the
user message). All items must give the identical prefix and ``prefix + suffix`` must equal the
full rendering; otherwise :class:`~care_model.core.errors.ModelError` is raised (the chat template
rewrote the message content in a way this module cannot share).

Turn numbers in the transcript are ``Turn.index`` as stored (0-based). The answer format does not
ask for turn numbers: grounded decoding (:mod:`care_model.text.grounding`, the default) forbids
digits and brackets after the quote, so asking for ``[12]`` only made the model start a reference
it could not finish (``(Line``). It asks instead for quotes and who said them, which grounded
decoding constrains. If a model writes ``[12]`` anyway (free decoding),
:mod:`care_model.text.evidence` still reads it as a reference to the turn whose index is 12.

Long transcripts
----------------
With ``count_tokens`` and ``max_prompt_tokens``, the prompt must satisfy
``count_tokens(prefix + longest suffix) + reserve_tokens <= max_prompt_tokens``. If the full
transcript does not fit, the opening turns and the most recent turns are kept and one marker
line (``[... turns 12-57 omitted to fit the model's context ...]``) replaces the turns between.
The number of kept turns is found by a binary search over a token budget for the transcript:
up to a quarter of the budget goes to opening turns, the rest (including what the opening did
not use) to the most recent turns; every candidate is measured with ``count_tokens`` on the
real rendering, so the result always fits. The system text, options, answer instruction and
item are never cut; if they do not fit even with no turns at all, :class:`ValidationError`
is raised. The elided indices and a warning are recorded on the :class:`SessionPrompt`.

Hashes
------
``SessionPrompt.prompt_hash`` is a session-level hash of the template version, form, language,
perspective, the prefix and every item's suffix. A prediction stores
``SessionPrompt.item_hash(item)``: the hash of the template version and that item's full
rendered text. Both use :func:`care_model.core.records.stable_hash` (sha256 of canonical JSON), so
they are stable across processes and machines and change with the transcript, item, language,
perspective, chat template or ``PROMPT_TEMPLATE_VERSION``. Any change to the wording changes
both hashes (the text is hashed) and bumps ``PROMPT_TEMPLATE_VERSION`` (v2: no turn-number
instruction), so predictions made with an older prompt keep their old hashes and are told apart;
the content-free calibration cache is keyed by the prompt hash, so it is recomputed.

Pure module: no torch, no transformers, no tinydb.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from care_model.core.errors import ConfigError, ModelError, ValidationError
from care_model.core.records import Session, Turn, stable_hash
from care_model.core.wai import Form, load_form

PROMPT_TEMPLATE_VERSION = "care-prompt-v2"  # v2: no "citing turn numbers like [12]", no "Line 1:" labels
PERSPECTIVES = ("client", "counselor")
OPENING_SHARE = 0.25  # share of the transcript budget kept for the opening turns

# All prompt wording lives here. One entry per language; `role` and `system` per perspective.
PROMPT_TEMPLATES: dict[str, dict] = {
    "en": {
        "system": {
            "client": ("You assess the working alliance in counseling sessions. Read the session transcript "
                       "and answer one questionnaire item the way the client would, based only on what "
                       "happens in the session."),
            "counselor": ("You assess the working alliance in counseling sessions. Read the session transcript "
                          "and answer one questionnaire item the way the counselor would, based only on what "
                          "happens in the session."),
        },
        "intro": "Here is the transcript of a counseling session. Turns are numbered.",
        "speakers": {"client": "Client", "counselor": "Counselor"},
        "turn": "[{index}] {speaker}: {text}",
        "role": {
            "client": ("Imagine you are the client in this session. Rate the statement below from your own "
                       "point of view as the client, choosing one of these options:"),
            "counselor": ("Imagine you are the counselor in this session. Rate the statement below from your own "
                          "point of view as the counselor, choosing one of these options:"),
        },
        "option": "{score}. {label}",
        "answer_format": ("Answer in exactly two lines.\n"
                          "First line: only the number of your chosen option ({min}-{max}).\n"
                          "Second line: your reason, quoting the dialogue directly in double quotes and saying "
                          "who said each quote (the client or the counselor)."),
        "statement": "Statement:",
        "elided_one": "[... turn {first} omitted to fit the model's context ...]",
        "elided_many": "[... turns {first}-{last} omitted to fit the model's context ...]",
        "sep": "\n\n",
        "line_join": " ",
    },
    "zh": {
        "system": {
            "client": ("你负责评估心理咨询中的工作联盟。请阅读咨询对话记录，"
                       "仅根据咨询中发生的内容，以来访者的身份回答一道问卷题目。"),
            "counselor": ("你负责评估心理咨询中的工作联盟。请阅读咨询对话记录，"
                          "仅根据咨询中发生的内容，以咨询师的身份回答一道问卷题目。"),
        },
        "intro": "以下是一次心理咨询的对话记录，每轮对话都有编号。",
        "speakers": {"client": "来访者", "counselor": "咨询师"},
        "turn": "[{index}] {speaker}：{text}",
        "role": {
            "client": "请设想你是这次咨询中的来访者，从来访者自己的角度评价下面的陈述，并从以下选项中选择一项：",
            "counselor": "请设想你是这次咨询中的咨询师，从咨询师自己的角度评价下面的陈述，并从以下选项中选择一项：",
        },
        "option": "{score}. {label}",
        "answer_format": ("请严格用两行作答：\n"
                          "第一行：只写所选选项的数字（{min}-{max}）。\n"
                          "第二行：写出理由，用引号直接引用对话原文，并说明每句引文是谁说的（来访者或咨询师）。"),
        "statement": "陈述：",
        "elided_one": "[……第{first}轮因超出模型上下文长度而省略……]",
        "elided_many": "[……第{first}-{last}轮因超出模型上下文长度而省略……]",
        "sep": "\n\n",
        "line_join": "",
    },
}

RenderChat = Callable[[list], str]
CountTokens = Callable[[str], int]


@dataclass
class SessionPrompt:
    prefix: str                 # rendered chat text shared by all items (system + user text up to the item)
    suffixes: dict[int, str]    # item id -> rest of the rendered chat text
    prompt_hash: str            # session-level hash (see module docstring)
    warnings: list[str] = field(default_factory=list)
    elided_turns: list[int] = field(default_factory=list)
    language: str = "en"
    perspective: str = "client"
    template_version: str = PROMPT_TEMPLATE_VERSION

    def full(self, item) -> str:
        return self.prefix + self.suffixes[item]

    def item_hash(self, item) -> str:
        """The hash a prediction for ``item`` stores: template version + its full rendered text."""
        return stable_hash({"v": self.template_version, "text": self.full(item)})


# ----- templates ---------------------------------------------------------------------------
def _template(language: str) -> dict:
    if language not in PROMPT_TEMPLATES:
        raise ValidationError(
            f"No prompt template for language {language!r}.",
            f"Use one of {', '.join(PROMPT_TEMPLATES)}, or add an entry to PROMPT_TEMPLATES in "
            f"care_model/text/prompt.py.",
        )
    return PROMPT_TEMPLATES[language]


def _check_perspective(perspective: str, tpl: dict, form: Form) -> None:
    if perspective not in tpl["role"] or perspective not in form.perspectives:
        known = [p for p in tpl["role"] if p in form.perspectives]
        raise ValidationError(
            f"Unknown perspective {perspective!r} for the prompt.",
            f"Use one of {', '.join(known)}.",
        )


def plain_chat(messages: Sequence[dict]) -> str:
    """Fallback chat rendering when no model template is given (with a generation prompt)."""
    parts = [f"### {m['role'].capitalize()}:\n{m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\n### Assistant:\n"


def _one_line(text: str, joiner: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return re.sub(r"[ \t]+", " ", joiner.join(lines))


def render_turn(turn: Turn, language: str = "en") -> str:
    """One transcript line: ``[12] Client: ...`` / ``[12] 来访者：...``."""
    tpl = _template(language)
    speaker = tpl["speakers"].get(turn.speaker, str(turn.speaker).capitalize())
    return tpl["turn"].format(index=turn.index, speaker=speaker, text=_one_line(turn.text, tpl["line_join"]))


def elision_marker(first: int, last: int, language: str = "en") -> str:
    tpl = _template(language)
    if first == last:
        return tpl["elided_one"].format(first=first)
    return tpl["elided_many"].format(first=first, last=last)


def _instructions(tpl: dict, form: Form, language: str, perspective: str) -> str:
    labels = form.scale_labels(language)
    options = "\n".join(tpl["option"].format(score=s, label=labels[s]) for s in form.scale.points)
    fmt = tpl["answer_format"].format(min=form.scale.min, max=form.scale.max)
    return tpl["sep"].join([tpl["role"][perspective] + "\n" + options, fmt, tpl["statement"]]) + "\n"


def _shared_text(tpl: dict, transcript_lines: list[str], instructions: str) -> str:
    return tpl["sep"].join([tpl["intro"], "\n".join(transcript_lines), instructions])


def _messages(tpl: dict, perspective: str, user_text: str) -> list[dict]:
    return [{"role": "system", "content": tpl["system"][perspective]}, {"role": "user", "content": user_text}]


# ----- prefix / suffix split ---------------------------------------------------------------
def _split(render: RenderChat, tpl: dict, perspective: str, shared: str, item_texts: dict[int, str]):
    prefix = None
    suffixes: dict[int, str] = {}
    for item_id, item_text in item_texts.items():
        full = render(_messages(tpl, perspective, shared + item_text))
        if not isinstance(full, str):
            raise ModelError(
                f"The chat renderer returned {type(full).__name__}, not text.",
                "Pass render_chat=lambda m: tokenizer.apply_chat_template(m, tokenize=False, "
                "add_generation_prompt=True).",
            )
        at = full.rfind(item_text)
        if at < 0:
            raise ModelError(
                f"The chat template changed the text of item {item_id}, so the prompt cannot be split into a shared "
                f"prefix and a per-item suffix.",
                "Use a chat template that inserts message content verbatim.",
            )
        head, tail = full[:at], full[at:]
        if prefix is None:
            prefix = head
        if head != prefix or prefix + tail != full:
            raise ModelError(
                f"Item {item_id}'s rendering does not start with the prefix shared by the other items.",
                "Use a chat template whose output before the user's last line does not depend on that line.",
            )
        suffixes[item_id] = tail
    return prefix or "", suffixes


# ----- truncation --------------------------------------------------------------------------
def _select_turns(turn_tokens: list[int], budget: int) -> tuple[int, int]:
    """(head, tail) counts of opening and closing turns that fit ``budget`` tokens."""
    n = len(turn_tokens)
    head, used = 0, 0
    while head < n and used + turn_tokens[head] <= budget * OPENING_SHARE:
        used += turn_tokens[head]
        head += 1
    tail = 0
    while tail < n - head and used + turn_tokens[n - 1 - tail] <= budget:
        used += turn_tokens[n - 1 - tail]
        tail += 1
    return head, tail


def _lines_for(turns: list[Turn], lines: list[str], head: int, tail: int, language: str):
    n = len(turns)
    if head + tail >= n:
        return list(lines), []
    elided = [t.index for t in turns[head:n - tail]]
    marker = elision_marker(elided[0], elided[-1], language)
    return lines[:head] + [marker] + lines[n - tail:], elided


def _fit_transcript(turns, lines, language, measure, count_tokens, limit):
    """Binary search the transcript token budget; returns (lines, elided) that fit ``limit``."""
    if measure(lines) <= limit:
        return list(lines), []
    empty_lines, _ = _lines_for(turns, lines, 0, 0, language)
    if measure(empty_lines) > limit:
        return None, None
    turn_tokens = [count_tokens(line) for line in lines]
    lo, hi = 0, sum(turn_tokens)  # lo fits (tested above), hi does not
    best = (empty_lines, [t.index for t in turns])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        cand, elided = _lines_for(turns, lines, *_select_turns(turn_tokens, mid), language)
        if elided and measure(cand) <= limit:
            lo, best = mid, (cand, elided)
        else:
            hi = mid
    return best


# ----- public API --------------------------------------------------------------------------
def build_session_prompt(session: Session, *, render_chat: RenderChat | None = None,
                         count_tokens: CountTokens | None = None, max_prompt_tokens: int | None = None,
                         reserve_tokens: int = 0, perspective: str = "client",
                         items: Iterable | None = None, form: Form | None = None,
                         template: dict | None = None, item_suffix: Callable[[int], str] | None = None,
                         template_version: str | None = None) -> SessionPrompt:
    """Build the shared prefix and per-item suffixes for one session (see the module docstring).

    ``template`` (an entry shaped like ``PROMPT_TEMPLATES[language]``), ``item_suffix`` (text added
    after each item statement) and ``template_version`` let another task reuse the same layout:
    :mod:`care_model.text.drafting` states the target score there."""
    form = form or load_form(session.form)
    language = session.language
    tpl = template if template is not None else _template(language)
    template_version = template_version or PROMPT_TEMPLATE_VERSION
    _check_perspective(perspective, tpl, form)
    item_ids = [form.check_item(i) for i in (form.item_ids if items is None else items)]
    if not item_ids:
        raise ValidationError("No items to build prompts for.", "Pass items=None for all items, or a non-empty list.")
    item_texts = {i: form.item_text(i, perspective, language) + (item_suffix(i) if item_suffix else "")
                  for i in dict.fromkeys(item_ids)}
    render = render_chat or plain_chat
    instructions = _instructions(tpl, form, language, perspective)
    turns = list(session.turns)
    lines = [render_turn(t, language) for t in turns]

    warnings: list[str] = []
    elided: list[int] = []
    if max_prompt_tokens is not None:
        if count_tokens is None:
            raise ConfigError("max_prompt_tokens was given without count_tokens.",
                              "Pass count_tokens=lambda text: "
                              "len(tokenizer(text, add_special_tokens=False).input_ids).")
        limit = int(max_prompt_tokens) - int(reserve_tokens)
        # The item whose full prompt is longest decides whether a transcript fits.
        _, probe = _split(render, tpl, perspective, _shared_text(tpl, [], instructions), item_texts)
        worst = max(probe, key=lambda i: count_tokens(probe[i]))

        def measure(cand_lines: list[str]) -> int:
            text = render(_messages(tpl, perspective, _shared_text(tpl, cand_lines, instructions) + item_texts[worst]))
            return count_tokens(text)

        fitted, elided = _fit_transcript(turns, lines, language, measure, count_tokens, limit)
        if fitted is None:
            raise ValidationError(
                f"The prompt does not fit {max_prompt_tokens} tokens even with the whole transcript left out "
                f"({reserve_tokens} tokens reserved for the answer).",
                "Raise max_prompt_tokens (the model's context length) or lower reserve_tokens.",
            )
        if elided:
            span = f"{elided[0]}-{elided[-1]}" if len(elided) > 1 else f"{elided[0]}"
            warnings.append(f"transcript truncated: turns {span} of {len(turns)} elided to fit "
                            f"{max_prompt_tokens} tokens")
        lines = fitted

    prefix, suffixes = _split(render, tpl, perspective, _shared_text(tpl, lines, instructions), item_texts)
    suffixes = {i: suffixes[i] for i in item_ids}
    prompt_hash = stable_hash({
        "v": template_version, "form": form.id, "language": language, "perspective": perspective,
        "prefix": prefix, "suffixes": {str(k): v for k, v in suffixes.items()},
    })
    return SessionPrompt(prefix=prefix, suffixes=suffixes, prompt_hash=prompt_hash, warnings=warnings,
                         elided_turns=elided, language=language, perspective=perspective,
                         template_version=template_version)


def answer_text(score: int, rationale: str, language: str = "en", *, form: Form | None = None) -> str:
    """The training target: line 1 the option number, line 2 the reason (joined onto one line)."""
    value = (form or load_form()).check_score(score)
    joiner = _template(language)["line_join"]
    return f"{value}\n{_one_line(rationale or '', joiner)}"
