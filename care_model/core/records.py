"""The records the loop passes around: sessions, model suggestions, expert responses.

Plain dataclasses with ``to_dict``/``from_dict`` (JSON-ready, ``ensure_ascii=False`` friendly).
A :class:`Prediction` is a model *suggestion*; a :class:`Label` is an expert *response* that
names the prediction it started from. They are different records and neither overwrites the
other. Pure module: no torch, no tinydb.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from care_model.core.errors import ValidationError
from care_model.core.wai import load_form

SPEAKERS = ("counselor", "client")
LANGUAGES = ("en", "zh")
LABEL_STATUSES = ("draft", "submitted", "discarded")
CHANGE_REASONS = {
    "wrong_score": "Wrong score",
    "unsupported_claim": "Unsupported claim",
    "wrong_evidence": "Wrong or missing evidence",
    "missing_factor": "Missing factor",
    "style": "Style",
    "no_answer": "The model gave no answer",
}
ROLES = ("annotator", "adjudicator", "admin")
DRAFT_MODE = "draft"
PREDICTION_MODES = ("full", "scores_only", DRAFT_MODE)
DRAFT_SOURCES = ("client", "expert")  # whose score a draft was written for
SHARED = "@shared"  # the coding slot of labels that the assigned experts edit together
ADJUDICATED = "@adjudicated"  # the coding slot of an adjudicated (final) label
# Where a curated label's score came from (care_model.text.curation reads it; the paper learns the first)
SCORE_SOURCES = ("client_self_report", "expert", "adjudicated")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short content hash of JSON-able data, stable across runs and machines."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _from_dict(cls, data: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Turn:
    index: int
    speaker: str  # "counselor" | "client"
    text: str

    def to_dict(self) -> dict:
        return {"index": self.index, "speaker": self.speaker, "text": self.text}


@dataclass
class Session:
    id: str
    turns: list[Turn]
    language: str = "en"
    source: str = "jsonl"
    client_id: str = ""
    counselor_id: str = ""
    form: str = "wai-sr"
    # rater ("client" | "counselor") -> {item: score}
    ratings: dict[str, dict[int, int]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def __post_init__(self):
        self.turns = [t if isinstance(t, Turn) else Turn(**t) for t in self.turns]
        self.ratings = {r: {int(k): int(v) for k, v in items.items()} for r, items in (self.ratings or {}).items()}

    @property
    def content_hash(self) -> str:
        return stable_hash({"language": self.language, "turns": [t.to_dict() for t in self.turns]})

    def validate(self) -> "Session":
        where = f"Session {self.id!r}"
        if not self.id or not str(self.id).strip():
            raise ValidationError("A session has no id.", "Give every session a non-empty 'id'.")
        if self.language not in LANGUAGES:
            raise ValidationError(f"{where}: unknown language {self.language!r}.",
                                  f"Use one of {', '.join(LANGUAGES)}.")
        if not self.turns:
            raise ValidationError(f"{where} has no turns.", "A session needs at least one turn.")
        for pos, turn in enumerate(self.turns):
            if turn.speaker not in SPEAKERS:
                raise ValidationError(
                    f"{where}, turn {pos}: unknown speaker {turn.speaker!r}.",
                    f"Use one of {', '.join(SPEAKERS)}.",
                )
            if turn.index != pos:
                raise ValidationError(f"{where}: turn indices must run 0, 1, 2, ...; found {turn.index} at position "
                                      f"{pos}.",
                                      "Renumber the turns in order.")
            if not isinstance(turn.text, str) or not turn.text.strip():
                raise ValidationError(f"{where}, turn {pos} has no text.", "Remove the empty turn or give it text.")
        form = load_form(self.form)
        for rater, items in self.ratings.items():
            if rater not in ("client", "counselor"):
                raise ValidationError(f"{where}: unknown rater {rater!r}.",
                                      "Ratings come from 'client' or 'counselor'.")
            form.check_ratings(items, require_all=True)
        return self

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "language": self.language,
            "source": self.source,
            "client_id": self.client_id,
            "counselor_id": self.counselor_id,
            "form": self.form,
            "ratings": {r: {str(k): v for k, v in items.items()} for r, items in self.ratings.items()},
            "metadata": self.metadata,
            "created_at": self.created_at,
            "turns": [t.to_dict() for t in self.turns],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Session":
        return _from_dict(cls, data)


@dataclass
class Prediction:
    """One model suggestion for one item of one session."""

    id: str
    session_id: str
    item: int
    model_version: str
    score: int | None
    expected_score: float | None = None
    probs: list[float] | None = None  # P(option 1..5) at the score position
    rationale: str = ""
    evidence: list[int] = field(default_factory=list)
    unsupported_quotes: list[str] = field(default_factory=list)
    candidate_turns: list[int] = field(default_factory=list)  # turns grounded decoding let it quote
    raw_output: str = ""
    parse_status: str = "ok"  # ok | failed | scores_only
    parse_error: str = ""
    # grounded (quotes constrained to transcript spans, by either backend) | free | free+quote-check
    # (the vLLM backend with decoding="free": quotes checked against the transcript afterwards)
    decoding: str = "free"
    truncated: bool = False  # the rationale was cut by a length cap, not finished
    prompt_hash: str = ""
    mode: str = "full"  # full | scores_only | draft (see PREDICTION_MODES)
    perspective: str = "client"
    warnings: list[str] = field(default_factory=list)
    created_at: str = ""
    # Contextual calibration (care_model.text.calibration): ``probs`` stays the model's raw distribution;
    # with calibration "content-free", ``probs_calibrated`` holds the corrected one and
    # ``expected_score`` is computed from it.
    probs_calibrated: list[float] | None = None
    calibration: str = "none"  # none | content-free
    # Score-conditioned drafting (care_model.text.drafting): a rationale written for a given score.
    drafted_for_score: int | None = None
    draft_source: str = ""  # "" (not a draft) | client (self-report) | expert (label)

    @property
    def is_draft(self) -> bool:
        """A drafted rationale (mode "draft"): never the model's own suggestion for the item."""
        return self.mode == DRAFT_MODE

    @property
    def score_probs(self) -> list[float] | None:
        """The distribution the expected score and the uncertainty use: calibrated when present."""
        return self.probs_calibrated or self.probs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Prediction":
        return _from_dict(cls, data)


def is_suggestion(doc) -> bool:
    """True for the model's own suggestions (a Prediction or its dict), False for drafts."""
    mode = doc.get("mode") if isinstance(doc, dict) else getattr(doc, "mode", None)
    return mode != DRAFT_MODE


@dataclass
class Label:
    """One expert response for one item of one session.

    ``annotator`` is the coding slot the response belongs to: an expert's user name when a
    session is coded independently by several experts (for agreement), :data:`SHARED` when the
    assigned experts work on one shared set of labels (the paper's workflow), or
    :data:`ADJUDICATED` for the final label an adjudicator settled. ``created_by`` and
    ``updated_by`` always name the people. ``version`` counts saves; a save must name the
    version it started from, so nobody overwrites a change they have not seen.
    ``accepted_suggestion`` is the id of the model suggestion the label equals (score, rationale
    and evidence, no change reason) -- the free suggestion or a draft written for the item's score --,
    set on save: an accepted suggestion is recorded as such. ``rationale_source`` says where the
    rationale came from (:data:`care_model.core.provenance.RATIONALE_SOURCES`: expert, edited,
    accepted, bulk_accepted, unknown) and ``rationale_edit_distance`` its character edit distance
    from the model text it started from (None: no model text).
    """

    session_id: str
    item: int
    annotator: str
    score: int | None = None
    rationale: str = ""
    evidence: list[int] = field(default_factory=list)
    status: str = "draft"
    prediction_id: str | None = None
    change_reasons: list[str] = field(default_factory=list)
    accepted_suggestion: str | None = None  # the prediction's id when the label equals that suggestion
    comment: str = ""
    adjudicated_from: list[str] = field(default_factory=list)
    score_source: str = ""  # one of SCORE_SOURCES; empty: "adjudicated" in that slot, else "expert"
    rationale_source: str = "unknown"  # one of provenance.RATIONALE_SOURCES, set on save
    rationale_edit_distance: int | None = None
    version: int = 0
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    updated_by: str = ""

    def __post_init__(self):
        if not self.score_source:
            self.score_source = default_score_source(self.annotator)

    @property
    def id(self) -> str:
        return label_id(self.session_id, self.item, self.annotator)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Label":
        return _from_dict(cls, data)


def label_id(session_id: str, item: int, annotator: str) -> str:
    return f"{session_id}|{int(item)}|{annotator}"


def default_score_source(annotator: str) -> str:
    """The score source of a label that names none (labels stored before score sources existed)."""
    return "adjudicated" if annotator == ADJUDICATED else "expert"


def check_score_source(label: Label, client_ratings: dict | None) -> None:
    """Refuse a label whose ``score_source`` does not fit it: an unknown source, an adjudicated
    label outside the adjudication slot (or the reverse), or a ``client_self_report`` label whose
    score is not the client's self-reported rating of that item."""
    src, item = label.score_source, int(label.item)
    if src not in SCORE_SOURCES:
        raise ValidationError(f"Unknown score source {src!r} on item {item}.",
                              f"Use one of {', '.join(SCORE_SOURCES)}.")
    if (label.annotator == ADJUDICATED) != (src == "adjudicated"):
        raise ValidationError(f"Item {item}: score source {src!r} does not fit the coding slot {label.annotator!r}.",
                              "Adjudicated labels (and only they) have score source 'adjudicated'.")
    if src != "client_self_report":
        return
    want = (client_ratings or {}).get(item)
    if want is None:
        raise ValidationError(f"Item {item} of session {label.session_id!r} has no client self-report to anchor to.",
                              "Curate this session in expert-judged mode (score source 'expert').")
    if label.score is not None and int(label.score) != int(want):
        raise ValidationError(f"Item {item} is anchored to the client's self-reported score {want}; it cannot be "
                              f"saved with score {label.score}.",
                              f"Keep the client's score ({want}) and edit the rationale to fit it.")
