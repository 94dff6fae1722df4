"""Preference pairs from experts' corrections: the model's rationale ``rejected``, the expert's ``chosen``.

An expert who edits or rewrites a model suggestion states a preference. For every curated label
(:mod:`care_model.text.curation`) whose rationale provenance (:mod:`care_model.core.provenance`) is
``edited`` or ``expert`` (:data:`PAIR_PROVENANCE`) and whose model text differs from it, one pair::

    {"prompt":   the project's prompt for that item (care_model.text.prompt, as the SFT data uses),
     "chosen":   the answer as training learns it: answer_text(curated score, expert rationale),
     "rejected": the model's answer: answer_text(its score, its rationale),
     "session_id", "item", "client_id", "score_source", "rationale_provenance", "label_ids",
     "prediction_id", "model_version", "rejected_kind" (suggestion | draft), "chosen_score",
     "rejected_score", "prompt_format"}

Which model text is ``rejected``: the label names the suggestion its card showed
(``Label.prediction_id``); in client-anchored curation the card also offered a rationale drafted
for the client's score (a ``draft`` prediction for that item with ``drafted_for_score`` equal to
the curated score). Provenance was classified against the closer of the two, so the pair takes
the closer of the two as well (character Levenshtein distance on whitespace-normalised text), the
text the expert started from. Labels without a recorded suggestion, or whose suggestion has no
rationale (scores only), or whose model text equals the expert's, give no pair; :class:`PairSet`
counts them by reason.

Prompt formats (TRL's two dataset formats):

* ``conversational`` (default, ``render_chat=None``): ``prompt`` is the chat messages (system,
  user) the model sees; ``chosen``/``rejected`` are one assistant message each. A trainer applies
  the model's own chat template, as the project's training does.
* ``standard`` (``render_chat`` given, e.g. the tokenizer's ``apply_chat_template(...,
  tokenize=False, add_generation_prompt=True)``): ``prompt`` is the rendered text, exactly
  ``SessionPrompt.full(item)`` of :func:`care_model.text.prompt.build_session_prompt`, and
  ``chosen``/``rejected`` the answer text.

With ``count_tokens`` and ``max_prompt_tokens`` the transcript is cut as training and inference
cut it. Pure: no torch, no store; records or their dicts in, dicts out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from care_model.core.provenance import levenshtein, normalise
from care_model.core.records import Label, Prediction, Session
from care_model.core.wai import load_form
from care_model.text.curation import CuratedLabel
from care_model.text.prompt import answer_text, build_session_prompt, plain_chat

PAIR_PROVENANCE = ("expert", "edited")
SKIP_REASONS = ("provenance", "no_rationale", "no_suggestion", "no_model_text", "same_text")


@dataclass
class PairSet:
    pairs: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    def extend(self, other: "PairSet") -> None:
        self.pairs += other.pairs
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v


def _as(cls, obj):
    return obj if isinstance(obj, cls) else cls.from_dict(obj)


def item_prompts(session: Session, items: Iterable[int], *, render_chat: Callable | None = None,
                 count_tokens: Callable | None = None, max_prompt_tokens: int | None = None,
                 reserve_tokens: int = 0, perspective: str = "client") -> dict[int, object]:
    """Item -> its prompt: the chat messages (``render_chat`` None) or the rendered text.

    Built with all items of the form, as training builds them (so a long transcript is cut the same
    way for every item), then the ``items`` asked for are returned."""
    form = load_form(session.form)
    seen: dict[str, list[dict]] = {}

    def recording(messages):
        text = (render_chat or plain_chat)(messages)
        seen[text] = [dict(m) for m in messages]
        return text

    sp = build_session_prompt(session, render_chat=recording, count_tokens=count_tokens,
                              max_prompt_tokens=max_prompt_tokens, reserve_tokens=reserve_tokens,
                              perspective=perspective, form=form)
    out: dict[int, object] = {}
    for item in items:
        full = sp.full(int(item))
        out[int(item)] = full if render_chat is not None else seen[full]
    return out


def _model_texts(label_for: Label | None, cur: CuratedLabel, predictions: dict[str, Prediction],
                 drafts: list[Prediction]) -> list[tuple[str, Prediction]]:
    found = []
    pred = predictions.get(label_for.prediction_id) if label_for is not None and label_for.prediction_id else None
    if pred is not None and not pred.is_draft:
        found.append(("suggestion", pred))
    found += [("draft", d) for d in drafts if d.item == cur.item and d.drafted_for_score == cur.score]
    return found


def _source_label(cur: CuratedLabel, labels: dict[str, Label]) -> Label | None:
    """The label whose rationale the curated label carries (for a median, the chosen expert's)."""
    mine = [labels[i] for i in cur.label_ids if i in labels]
    same = [lab for lab in mine if normalise(lab.rationale) == normalise(cur.rationale)
            and lab.score is not None and int(lab.score) == cur.score]
    pick = same or mine
    return max(pick, key=lambda lab: (lab.updated_at, lab.annotator)) if pick else None


def session_pairs(session: Session | dict, curated: Iterable[CuratedLabel | dict], labels: Iterable[Label | dict],
                  predictions: Iterable[Prediction | dict], *, provenance: Iterable[str] = PAIR_PROVENANCE,
                  render_chat: Callable | None = None, count_tokens: Callable | None = None,
                  max_prompt_tokens: int | None = None, reserve_tokens: int = 0,
                  perspective: str = "client") -> PairSet:
    """The preference pairs of one session (see the module docstring)."""
    session = _as(Session, session)
    form = load_form(session.form)
    by_id = {lab.id: lab for lab in (_as(Label, x) for x in labels)}
    preds = [_as(Prediction, p) for p in predictions]
    pred_by_id = {p.id: p for p in preds}
    drafts = [p for p in preds if p.is_draft and p.rationale]
    wanted = set(provenance)
    result = PairSet()
    pending: list[tuple[CuratedLabel, str, Prediction, Label | None]] = []
    for cur in sorted((_as(CuratedLabel, c) for c in curated), key=lambda c: c.item):
        if cur.rationale_source not in wanted:
            result.skipped["provenance"] += 1
            continue
        if not normalise(cur.rationale):
            result.skipped["no_rationale"] += 1
            continue
        src = _source_label(cur, by_id)
        texts = [(k, p) for k, p in _model_texts(src, cur, pred_by_id, drafts) if normalise(p.rationale)]
        if not texts:
            has_any = src is not None and src.prediction_id in pred_by_id
            result.skipped["no_model_text" if has_any else "no_suggestion"] += 1
            continue
        mine = normalise(cur.rationale)
        kind, pred = min(texts, key=lambda kp: levenshtein(mine, normalise(kp[1].rationale)))
        if normalise(pred.rationale) == mine:
            result.skipped["same_text"] += 1
            continue
        pending.append((cur, kind, pred, src))
    if not pending:
        return result
    prompts = item_prompts(session, [c.item for c, *_ in pending], render_chat=render_chat,
                           count_tokens=count_tokens, max_prompt_tokens=max_prompt_tokens,
                           reserve_tokens=reserve_tokens, perspective=perspective)
    for cur, kind, pred, src in pending:
        rejected_score = pred.drafted_for_score if kind == "draft" else pred.score
        rejected_score = cur.score if rejected_score is None else int(rejected_score)
        chosen = answer_text(cur.score, cur.rationale, session.language, form=form)
        rejected = answer_text(rejected_score, pred.rationale, session.language, form=form)
        conversational = render_chat is None
        result.pairs.append({
            "prompt": prompts[cur.item],
            "chosen": [{"role": "assistant", "content": chosen}] if conversational else chosen,
            "rejected": [{"role": "assistant", "content": rejected}] if conversational else rejected,
            "session_id": session.id, "item": cur.item, "client_id": session.client_id or f"session:{session.id}",
            "score_source": cur.score_source, "rationale_provenance": cur.rationale_source,
            "label_ids": list(cur.label_ids), "annotator": src.annotator if src is not None else "",
            "prediction_id": pred.id, "model_version": pred.model_version, "rejected_kind": kind,
            "chosen_score": cur.score, "rejected_score": rejected_score,
            "prompt_format": "conversational" if conversational else "standard"})
    return result


def preference_pairs(sessions: dict[str, Session | dict], curated: dict[str, list], labels: Iterable[Label | dict],
                     predictions: Iterable[Prediction | dict], **options) -> PairSet:
    """Pairs of many sessions: ``curated`` session id -> its curated labels (a snapshot's
    ``labels``); ``labels`` and ``predictions`` of those sessions (any order). ``options`` as
    :func:`session_pairs`. Sessions in id order, items in order."""
    labs_by: dict[str, list] = {}
    for lab in labels:
        lab = _as(Label, lab)
        labs_by.setdefault(lab.session_id, []).append(lab)
    preds_by: dict[str, list] = {}
    for p in predictions:
        p = _as(Prediction, p)
        preds_by.setdefault(p.session_id, []).append(p)
    out = PairSet()
    for sid in sorted(curated):
        out.extend(session_pairs(sessions[sid], curated[sid], labs_by.get(sid, []), preds_by.get(sid, []), **options))
    return out
