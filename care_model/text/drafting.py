"""Score-conditioned drafting (CARE paper, section 4.2): a rationale written *for* a given score.

CARE's rationales were drafted from the dialogue, the item and the client's true rating, then
refined by an expert. This module is the pure part of that mode:

* :func:`build_draft_prompt` -- the drafting prompt. Same layout as the prediction prompt
  (:mod:`care_model.text.prompt`: system text, the numbered transcript first, then the instructions,
  then the item last), so the 12 drafts of a session share one prefix and run as one batch.
  The instructions say that the rating is given and ask for the answer in the prediction's two
  lines (the option number, unchanged, then the reason; the training format); each item's suffix
  is the item statement followed by the chosen option (``Chosen option: 4. Very often``), so the
  target score is part of every item's prompt (and of its hash). With grounded decoding
  (:mod:`care_model.text.grounding`) the score line is forced to the target (``fixed_score``) and the
  reason's quotes are verbatim spans of the candidate turns, exactly as for predictions.
* :func:`draft_rationale` -- the reason out of the model's answer (the option line, and a
  repeated option number or label at the start of the reason, are dropped).
* :func:`targets_for` -- the target scores of a session: the client's self-report
  (``source="client"``) or the current expert label of each item (``source="expert"``: the
  adjudicated label, else the shared one, else the only expert's; discarded labels and items
  where several experts disagree have no target). Items without a target are reported, never
  guessed.

A draft is stored as a :class:`~care_model.core.records.Prediction` with ``mode="draft"``,
``score == drafted_for_score`` (the target) and ``draft_source``; it never replaces the model's
own suggestion for the item (the store's latest-suggestion readers skip drafts).

Pure module: no torch, no transformers, no tinydb.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

from care_model.core.errors import ValidationError
from care_model.text.prompt import PROMPT_TEMPLATES, _one_line, build_session_prompt
from care_model.core.records import ADJUDICATED, DRAFT_SOURCES, SHARED, Session
from care_model.core.wai import Form, load_form

DRAFT_TEMPLATE_VERSION = "care-draft-v2"  # v2: no turn-number instruction (see care_model.text.prompt)

_DRAFT_WORDING = {
    "en": {
        "system": {
            p: ("You write rationales for ratings of the working alliance in counseling sessions. Read the session "
                f"transcript and explain, based only on what happens in the session, why the {p} chose the given "
                "rating for one questionnaire item.")
            for p in ("client", "counselor")
        },
        "role": {
            p: (f"The {p} of this session rated the statement below with the chosen option given after it, "
                "on this scale:")
            for p in ("client", "counselor")
        },
        "answer_format": ("Answer in exactly two lines.\n"
                          "First line: only the number of the chosen option ({min}-{max}), unchanged.\n"
                          "Second line: the reason for the chosen option, quoting the dialogue directly in double "
                          "quotes and saying who said each quote (the client or the counselor)."),
        "chosen": "Chosen option: {score}. {label}",
    },
    "zh": {
        "system": {
            "client": ("你负责为心理咨询工作联盟的评分撰写理由。请阅读咨询对话记录，"
                       "仅根据咨询中发生的内容，说明来访者为何对一道问卷题目给出了所给的评分。"),
            "counselor": ("你负责为心理咨询工作联盟的评分撰写理由。请阅读咨询对话记录，"
                          "仅根据咨询中发生的内容，说明咨询师为何对一道问卷题目给出了所给的评分。"),
        },
        "role": {
            "client": "这次咨询的来访者对下面的陈述给出了评分，所选选项写在陈述之后，评分量表如下：",
            "counselor": "这次咨询的咨询师对下面的陈述给出了评分，所选选项写在陈述之后，评分量表如下：",
        },
        "answer_format": ("请严格用两行作答：\n"
                          "第一行：只写所选选项的数字（{min}-{max}），不要更改。\n"
                          "第二行：写出选择该选项的理由，用引号直接引用对话原文，并说明每句引文是谁说的（来访者或咨询师）。"),
        "chosen": "所选选项：{score}. {label}",
    },
}
DRAFT_TEMPLATES: dict[str, dict] = {
    lang: {**PROMPT_TEMPLATES[lang], **{k: v for k, v in words.items() if k != "chosen"}}
    for lang, words in _DRAFT_WORDING.items()
}


def chosen_line(score: int, language: str = "en", *, form: Form | None = None) -> str:
    """The line that states the target: ``Chosen option: 4. Very often``."""
    form = form or load_form()
    labels = form.scale_labels(language)
    return _DRAFT_WORDING[_language(language)]["chosen"].format(score=score, label=labels[score])


def _language(language: str) -> str:
    if language not in DRAFT_TEMPLATES:
        raise ValidationError(f"No drafting prompt for language {language!r}.",
                              f"Use one of {', '.join(DRAFT_TEMPLATES)}, or add one to care_model/text/drafting.py.")
    return language


def check_targets(targets: Mapping, form: Form) -> dict[int, int]:
    """``{item: score}`` with items and scores checked against the form (a clear error otherwise)."""
    if not targets:
        raise ValidationError("No target scores to draft rationales for.",
                              "Pass targets={item: score}, e.g. the client's self-report or the expert's label.")
    out = {}
    for item, score in targets.items():
        try:
            item_id, value = int(item), int(score)
        except (TypeError, ValueError):
            raise ValidationError(f"Target {item!r}: {score!r} is not an item number and a score.",
                                  f"Use whole numbers: items {form.item_ids[0]}-{form.item_ids[-1]}, "
                                  f"scores {form.scale.min}-{form.scale.max}.") from None
        out[form.check_item(item_id)] = form.check_score(value, item_id)
    return dict(sorted(out.items()))


def build_draft_prompt(session: Session, targets: Mapping, *, form: Form | None = None, **kwargs):
    """The drafting prompt of ``session`` for ``targets`` ({item: score}); a
    :class:`~care_model.text.prompt.SessionPrompt` over the target items, with the same keyword
    arguments as :func:`care_model.text.prompt.build_session_prompt` (render_chat, count_tokens,
    max_prompt_tokens, reserve_tokens, perspective)."""
    form = form or load_form(session.form)
    language = _language(session.language)
    targets = check_targets(targets, form)
    kwargs.pop("items", None)  # the items are the targets' items
    lines = {i: "\n" + chosen_line(s, language, form=form) for i, s in targets.items()}
    return build_session_prompt(session, items=list(targets), form=form, template=DRAFT_TEMPLATES[language],
                                item_suffix=lines.__getitem__, template_version=DRAFT_TEMPLATE_VERSION, **kwargs)


_LEADING_SCORE = re.compile(r"^\s*(?:[*#>\-\s]*)"
                            r"(?:(?:chosen option|option|score|rating|answer|所选选项|选项|评分)\s*[:：]?\s*)?"
                            r"[1-5１-５](?:\s*[.)．、:：]\s*|\s+|$)"
                            r"(?:(?:seldom|sometimes|fairly often|very often|always|"
                            r"很少|有时|相当频繁|非常频繁|总是)\b\s*[.,:;，。：]?\s*)?", re.IGNORECASE)
_REASON_PREFIX = re.compile(r"^\s*(?:reason|rationale|line 2|理由|第二行)\s*[:：]\s*", re.IGNORECASE)


def draft_rationale(text: str, language: str = "en") -> str:
    """The drafted reason: the first non-empty line of the answer (the rest of a multi-line answer
    joined onto it only when the first line was just a repeated option), without a leading
    option number/label or a "Reason:" prefix."""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    joiner = PROMPT_TEMPLATES[_language(language)]["line_join"]
    while lines:
        head = _REASON_PREFIX.sub("", _LEADING_SCORE.sub("", lines[0], count=1), count=1).strip()
        if head:
            return _one_line(head, joiner)
        lines = lines[1:]
    return ""


def targets_for(session: Session, source: str, labels: Iterable = ()) -> tuple[dict[int, int], list[str]]:
    """(targets, messages): the target score per item from ``source`` and one message per item
    without one. ``labels``: the session's :class:`~care_model.core.records.Label` records (for
    ``source="expert"``)."""
    if source not in DRAFT_SOURCES:
        raise ValidationError(f"Unknown draft source {source!r}.",
                              f"Use one of {', '.join(DRAFT_SOURCES)} (the client's self-report or the expert label).")
    form = load_form(session.form)
    if source == "client":
        have = dict(session.ratings.get("client") or {})
        missing = [i for i in form.item_ids if have.get(i) is None]
        why = "the session has no client self-report for it"
        return {i: int(have[i]) for i in form.item_ids if i in have}, [f"item {i}: skipped, {why}" for i in missing]
    by_item: dict[int, dict] = {}
    for lab in labels:
        if lab.session_id == session.id and lab.status != "discarded" and lab.score is not None:
            by_item.setdefault(int(lab.item), {})[lab.annotator] = int(lab.score)
    targets, messages = {}, []
    for i in form.item_ids:
        slots = by_item.get(i, {})
        pick = slots.get(ADJUDICATED, slots.get(SHARED))
        if pick is None and len(set(slots.values())) == 1:
            pick = next(iter(slots.values()))
        if pick is not None:
            targets[i] = pick
        elif slots:
            messages.append(f"item {i}: skipped, the experts' labels disagree ({sorted(set(slots.values()))}) "
                            "and none is adjudicated")
        else:
            messages.append(f"item {i}: skipped, no expert label with a score")
    return targets, messages
