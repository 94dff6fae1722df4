"""Label Studio interchange: sessions with the model's suggestions as tasks, and annotations back.

The file formats are the contract (Label Studio's documented JSON):

* the **labeling config** (:func:`labeling_config`): the transcript as ``<Paragraphs
  layout="dialogue">`` (one paragraph per turn, so paragraph index = turn index), then per item of
  the form a ``<Rating>`` (1-5) and a ``<TextArea>`` (the rationale), and one
  ``<ParagraphLabels name="evidence">`` with a label per item (``item 3``): the evidence of an item
  is the turns marked with its label;
* **tasks** (:func:`session_task`): ``data`` (``session_id``, ``dialogue``, and ``care``: the
  suggestion ids and the stored label versions, so an import knows what the annotator saw) and one
  **prediction** per model version: ``model_version``, ``score`` (the mean probability of the
  chosen options) and ``result`` regions (rating with its option probability as ``score``,
  rationale text, evidence paragraphs);
* an **export** of those tasks from Label Studio (JSON, a list of tasks with ``annotations``):
  :func:`read_annotations` gives one :class:`Answer` per (task, annotation, item) with a score;
  cancelled annotations are skipped.

Pure: dicts in, dicts out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from care_model.core.errors import ImportFormatError
from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form

TRANSCRIPT, EVIDENCE = "dialogue", "evidence"
SPEAKER_NAMES = {"counselor": "Counselor", "client": "Client"}


def score_name(item: int) -> str:
    return f"item_{int(item)}_score"


def rationale_name(item: int) -> str:
    return f"item_{int(item)}_rationale"


def evidence_label(item: int) -> str:
    return f"item {int(item)}"


@dataclass
class Answer:
    """One item of one annotation, as read from an export of another tool."""
    session_id: str
    item: int
    user_key: str                   # the other tool's user (id or email), mapped to a store user on import
    score: int
    rationale: str = ""
    evidence: list[int] = field(default_factory=list)
    source: str = ""                # where in the file, for messages
    care: dict = field(default_factory=dict)  # what the export recorded (suggestion ids, label versions)


def labeling_config(form_id: str = "wai-sr", language: str = "en") -> str:
    """The labeling config (XML) for sessions of ``form_id``."""
    form = load_form(form_id)
    labels = "".join(f'<Label value="{evidence_label(i)}"/>' for i in form.item_ids)
    parts = ['<View>', '<Header value="Session $session_id"/>',
             f'<Paragraphs name="{TRANSCRIPT}" value="$dialogue" layout="dialogue" nameKey="speaker" '
             'textKey="text"/>',
             f'<ParagraphLabels name="{EVIDENCE}" toName="{TRANSCRIPT}">{labels}</ParagraphLabels>']
    for i in form.item_ids:
        statement = form.item_text(i, "client", language)
        parts += [f'<View><Header value={quoteattr(f"Item {i}: {statement}")}/>',
                  f'<Rating name="{score_name(i)}" toName="{TRANSCRIPT}" maxRating="{form.scale.max}" '
                  'icon="star" size="medium"/>',
                  f'<TextArea name="{rationale_name(i)}" toName="{TRANSCRIPT}" rows="3" editable="true" '
                  'maxSubmissions="1" placeholder="Why this score? Quote the dialogue."/></View>']
    parts.append('</View>')
    return "\n".join(parts)


def _evidence_regions(turns, by_item: dict[int, list[int]], texts: dict[int, str]) -> list[dict]:
    out = []
    for item, evidence in sorted(by_item.items()):
        for t in sorted(set(evidence)):
            if t in texts:
                out.append({"id": f"ev-{item}-{t}", "from_name": EVIDENCE, "to_name": TRANSCRIPT,
                            "type": "paragraphlabels",
                            "value": {"start": str(t), "end": str(t), "startOffset": 0, "endOffset": len(texts[t]),
                                      "text": texts[t], "paragraphlabels": [evidence_label(item)]}})
    return out


def prediction(session: Session, preds: list[Prediction]) -> dict:
    """One Label Studio prediction (one model version's suggestions for a session)."""
    texts = {t.index: t.text for t in session.turns}
    result, probs = [], []
    for p in sorted(preds, key=lambda x: x.item):
        if p.score is None:
            continue
        prob = (p.score_probs or [None] * 5)[int(p.score) - 1] if p.score_probs else None
        if prob is not None:
            probs.append(float(prob))
        region = {"id": f"s-{p.item}", "from_name": score_name(p.item), "to_name": TRANSCRIPT, "type": "rating",
                  "value": {"rating": int(p.score)}}
        if prob is not None:
            region["score"] = round(float(prob), 6)
        result.append(region)
        if p.rationale:
            result.append({"id": f"r-{p.item}", "from_name": rationale_name(p.item), "to_name": TRANSCRIPT,
                           "type": "textarea", "value": {"text": [p.rationale]}})
    result += _evidence_regions(session.turns, {p.item: list(p.evidence) for p in preds}, texts)
    out = {"model_version": preds[0].model_version if preds else "", "result": result}
    if probs:
        out["score"] = round(sum(probs) / len(probs), 6)
    return out


def session_task(session: Session, suggestions: list[Prediction], label_versions: dict[str, int]) -> dict:
    """One task: the transcript, what the export saw (``care``), and the suggestions as a prediction."""
    task = {"data": {"session_id": session.id,
                     "dialogue": [{"speaker": f"{SPEAKER_NAMES.get(t.speaker, t.speaker)} [{t.index}]",
                                   "text": t.text} for t in session.turns],
                     "care": {"session_id": session.id, "form": session.form,
                              "suggestions": {str(p.item): p.id for p in suggestions},
                              "label_versions": dict(label_versions)}},
            "predictions": [prediction(session, suggestions)] if suggestions else []}
    return task


def _text(value: dict) -> str:
    text = value.get("text")
    if isinstance(text, list):
        return "\n".join(str(t) for t in text)
    return str(text or "")


def _user(annotation: dict) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return "" if who is None else str(who)


def read_annotations(tasks: list, *, name: str = "the file") -> list[Answer]:
    """Every scored item of every (not cancelled) annotation of a Label Studio JSON export."""
    if not isinstance(tasks, list):
        raise ImportFormatError(f"{name} is not a Label Studio JSON export (a list of tasks).",
                                "Export the project from Label Studio as JSON (not JSON-MIN or CSV).")
    out = []
    for n, task in enumerate(tasks):
        data = (task or {}).get("data") or {}
        care = data.get("care") or {}
        sid = care.get("session_id") or data.get("session_id")
        if not sid:
            raise ImportFormatError(f"Task #{n} of {name} has no session id (data.care.session_id).",
                                    "Import only tasks exported by `care interchange label-studio-export`.")
        for a_n, ann in enumerate(task.get("annotations") or []):
            if ann.get("was_cancelled"):
                continue
            items: dict[int, dict] = {}
            for region in ann.get("result") or []:
                fname, value = str(region.get("from_name", "")), region.get("value") or {}
                if fname.endswith("_score") and fname.startswith("item_") and "rating" in value:
                    items.setdefault(int(fname.split("_")[1]), {})["score"] = int(value["rating"])
                elif fname.endswith("_rationale") and fname.startswith("item_"):
                    items.setdefault(int(fname.split("_")[1]), {})["rationale"] = _text(value)
                elif fname == EVIDENCE:
                    for label in value.get("paragraphlabels") or []:
                        item = int(str(label).split()[-1])
                        turns = range(int(value.get("start", 0)), int(value.get("end", value.get("start", 0))) + 1)
                        items.setdefault(item, {}).setdefault("evidence", []).extend(turns)
            for item, got in sorted(items.items()):
                if "score" not in got:
                    continue
                out.append(Answer(str(sid), item, _user(ann), got["score"], got.get("rationale", "").strip(),
                                  sorted(set(got.get("evidence", []))), f"{name}: task #{n}, annotation #{a_n}",
                                  care))
    return out
