"""One row per session: whose alliance, by which source, in which order.

Sources (say which in every title, :func:`source_title`):

* ``model`` -- a model version's predicted dimension means: the latest prediction per item of that
  version (drafts excluded), a dimension only when all of its items have a score (the paper's
  definition); ``score_field`` "score" (the generated option, the paper's) or "expected_score";
* ``self-report`` -- the client's own WAI-SR ratings;
* ``counselor`` -- the counselor's self-ratings of the session.

A session without a value for a dimension has None there and drops out of that dimension's
statistics. Counselor ids that a corpus does not have are not ids: ``placeholders`` (e.g.
AnnoMI's ``annomi-therapist``) and empty ids count as "no counselor id".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form
from care_model.stats.baselines import client_of, score_of
from care_model.stats.evaluate import latest_predictions

SOURCES = ("model", "self-report", "counselor")
DIMS = ("goal", "task", "bond")
ORDER_KEYS = ("session_number", "session_index", "date", "session_date", "started_at")


@dataclass
class SessionRow:
    session_id: str
    client: str  # the unit of independence (client id, else the session itself)
    client_id: str  # "" when the session names none
    counselor_id: str  # "" when none or a placeholder
    dims: dict[str, float | None]
    order: tuple = ()
    fields: dict = field(default_factory=dict)  # scalar session metadata (mi_quality, topic, arm, ...)
    annotations: list = field(default_factory=list)  # metadata["turn_annotations"]
    speakers: list = field(default_factory=list)  # turn speakers, in order


def source_title(source: str, model_version: str | None = None, score_field: str = "score") -> str:
    if source == "model":
        what = "expected score" if score_field == "expected_score" else "predicted score"
        return f"model {model_version} ({what})"
    if source == "self-report":
        return "client self-report"
    if source == "counselor":
        return "counselor self-rating"
    raise ValidationError(f"Unknown source {source!r}.", f"Use one of {', '.join(SOURCES)}.")


def _natural(text: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p)


def order_key(session: Session) -> tuple[tuple, str]:
    """(sort key, what it is): the session number or date in its metadata, else its transcript id or id."""
    meta = session.metadata or {}
    for key in ORDER_KEYS:
        v = meta.get(key)
        if v not in (None, ""):
            return ((0, float(v), "") if isinstance(v, (int, float)) else (1, 0, str(v)), key)
    tid = str(meta.get("transcript_id") or "")
    if tid:
        return _natural(tid), "transcript_id"
    return _natural(session.id), "session id"


def _scalar_fields(meta: Mapping) -> dict:
    return {k: v for k, v in (meta or {}).items() if isinstance(v, (str, int, float, bool))}


def session_rows(sessions: Iterable[Session], *, source: str = "model", predictions: Iterable[Prediction] = (),
                 model_version: str | None = None, score_field: str = "score",
                 placeholders: Iterable[str] = ()) -> list[SessionRow]:
    """The rows of ``sessions`` for ``source`` (see the module docstring)."""
    source_title(source, model_version, score_field)
    if score_field not in ("score", "expected_score"):
        raise ValidationError(f"Unknown score field {score_field!r}.", "Use 'score' or 'expected_score'.")
    sessions = list(sessions)
    by_item: dict[str, dict[int, float]] = {}
    if source == "model":
        if not model_version:
            raise ValidationError("No model version given for the predicted scores.",
                                  "Pass --model-version V, or choose the self-report or counselor source.")
        for p in latest_predictions(predictions, model_version):
            v = score_of(p, score_field)
            if v is not None:
                by_item.setdefault(p.session_id, {})[int(p.item)] = v
    skip = set(placeholders)
    rows = []
    for s in sessions:
        form = load_form(s.form)
        if source == "model":
            items = by_item.get(s.id, {})
        else:
            items = (s.ratings or {}).get("client" if source == "self-report" else "counselor", {})
        dims = form.dimension_scores(items, require_all=True) if items else {d: None for d in form.dimension_keys}
        meta = s.metadata or {}
        rows.append(SessionRow(
            session_id=s.id, client=client_of(s), client_id=s.client_id or "",
            counselor_id="" if (s.counselor_id or "") in skip else (s.counselor_id or ""),
            dims={d: (None if v is None else float(v)) for d, v in dims.items()}, order=order_key(s)[0],
            fields=_scalar_fields(meta), annotations=list(meta.get("turn_annotations") or []),
            speakers=[t.speaker for t in s.turns]))
    return rows


def dims_of(rows: Iterable[SessionRow]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for d in r.dims:
            if d not in keys:
                keys.append(d)
    return keys or list(DIMS)


def scored(rows: Iterable[SessionRow], dim: str) -> list[SessionRow]:
    return [r for r in rows if r.dims.get(dim) is not None]
