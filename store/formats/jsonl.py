"""The project's own format: one session per line, as ``Session.to_dict()`` writes it.

A line may also carry ``"predictions": [Prediction.to_dict(), ...]`` and
``"labels": [Label.to_dict(), ...]`` (the export format), so an export reads back losslessly:
every field of every record is kept, ids, versions, statuses and timestamps included.

Required per line: ``id`` and ``turns`` (each turn ``speaker`` and ``text``; ``index``
defaults to the position). A missing ``language`` is taken from ``language=`` or detected from
the text (with a warning); ``language=`` never overrides a language the file states.
"""
from __future__ import annotations

import json
from pathlib import Path

from care_model.core.errors import ValidationError
from care_model.core.records import CHANGE_REASONS, LABEL_STATUSES, Label, Prediction, Session, Turn
from care_model.core.wai import Form, load_form

from .common import (Context, Parsed, SpeakerResolver, at, check_record_fields, detect_language, fail,
                     read_text, validated, wrap_validation)

BUILTIN_SPEAKERS = {"counselor": "counselor", "client": "client"}
SESSION_FIELDS = ("id", "language", "source", "client_id", "counselor_id", "form", "ratings", "metadata",
                  "created_at", "turns")
EXTRA_FIELDS = ("predictions", "labels")


def _bad_json(path: Path, lineno: int, line: str, err: json.JSONDecodeError):
    hint = ""
    if lineno == 1 and line.lstrip().startswith("["):
        hint = (" The file starts with '[': if it is one JSON array (like ESConv), import it with "
                "--format esconv; the jsonl format needs one JSON object per line.")
    return fail(at(path, lineno), f"not valid JSON at column {err.colno}: {err.msg}.{hint}",
                "Each line must be one complete JSON object holding one session (no line breaks inside it); "
                "check that line for a missing comma, quote or bracket.", line=lineno, column=err.colno)


def _form(form_id: str, where: str) -> Form:
    try:
        return load_form(form_id)
    except ValidationError as err:
        raise wrap_validation(err, where) from None


def _ratings(raw, form: Form, where: str) -> dict:
    if not isinstance(raw, dict):
        raise fail(where, f"'ratings' is {type(raw).__name__}, expected an object.",
                   'Write ratings as {"client": {"1": 4, "2": 5, ...}, "counselor": {...}}.')
    for rater, items in raw.items():
        if rater not in ("client", "counselor"):
            raise fail(where, f"unknown rater {rater!r} in 'ratings'.", "Ratings come from 'client' or 'counselor'.")
        if not isinstance(items, dict):
            raise fail(where, f"ratings of {rater!r} are {type(items).__name__}, expected an object.",
                       'Write them as {"1": 4, "2": 5, ...} with one score per item.')
        try:
            form.check_ratings(items, require_all=True)
        except ValidationError as err:
            raise wrap_validation(err, f"{where}, ratings of {rater!r}") from None
    return raw


def _turns(raw, where: str, lineno: int, resolver: SpeakerResolver, warnings: list[str]) -> list[Turn]:
    if not isinstance(raw, list):
        raise fail(where, f"'turns' is {type(raw).__name__}, expected a list.",
                   'Write turns as [{"index": 0, "speaker": "counselor", "text": "..."}, ...].')
    turns = []
    for pos, t in enumerate(raw):
        tw = f"{where}, turn {pos}"
        if not isinstance(t, dict):
            raise fail(tw, f"the turn is {type(t).__name__}, expected an object.",
                       'Write each turn as {"index": 0, "speaker": "counselor", "text": "..."}.')
        for key in ("speaker", "text"):
            if key not in t:
                raise fail(tw, f"the turn has no {key!r}.", f'Add "{key}" to the turn.')
            if not isinstance(t[key], str):
                raise fail(tw, f"{key!r} is {type(t[key]).__name__}, expected a string.", f"Write {key!r} as a string.")
        index = t.get("index", pos)
        if isinstance(index, bool) or not isinstance(index, int):
            raise fail(tw, f"'index' is {index!r}, expected a whole number.", "Number the turns 0, 1, 2, ...")
        extra = sorted(set(t) - {"index", "speaker", "text"})
        if extra:
            warnings.append(f"{tw}: ignored unknown turn field{'s' if len(extra) > 1 else ''} "
                            f"{', '.join(repr(e) for e in extra)}.")
        role = resolver.see(t["speaker"], f"line {lineno}")
        turns.append(Turn(index=index, speaker=role or t["speaker"], text=t["text"]))
    return turns


def _check_item_score(form: Form, data: dict, where: str, n_turns: int) -> None:
    try:
        form.check_item(data["item"])
        if data.get("score") is not None:
            form.check_score(data["score"], data["item"])
    except ValidationError as err:
        raise wrap_validation(err, where) from None
    bad = [e for e in data.get("evidence", []) if not 0 <= e < n_turns]
    if bad:
        raise fail(where, f"evidence turn{'s' if len(bad) > 1 else ''} {bad} outside the session's "
                          f"turns 0-{n_turns - 1}.", "Point evidence at turns of this session.")


def _records(raw, cls, noun: str, session_id: str, form: Form, n_turns: int, where: str, warnings: list[str],
             skip=()):
    """The line's ``predictions`` or ``labels``: (where, dict) for each, after the checks both share."""
    plural = f"{noun}s"
    if not isinstance(raw, list):
        raise fail(where, f"'{plural}' is {type(raw).__name__}, expected a list.",
                   f"Write {plural} as a list of {cls.__name__}.to_dict() objects.")
    for k, rec in enumerate(raw):
        rw = f"{where}, {noun} {k}"
        if not isinstance(rec, dict):
            raise fail(rw, f"the {noun} is {type(rec).__name__}, expected an object.",
                       f"Write each {noun} as an object ({cls.__name__}.to_dict()).")
        rec = {"session_id": session_id, **rec}
        check_record_fields(cls, rec, rw, f"the {noun}", warnings, skip=skip)
        if rec["session_id"] != session_id:
            raise fail(rw, f"the {noun} is for session {rec['session_id']!r}, but the line holds {session_id!r}.",
                       f"Put {plural} on the line of their session, or fix 'session_id'.")
        yield rw, rec


def _predictions(raw, session_id: str, form: Form, n_turns: int, where: str, warnings: list[str]):
    out = []
    for pw, p in _records(raw, Prediction, "prediction", session_id, form, n_turns, where, warnings):
        if not p["id"].strip():
            raise fail(pw, "the prediction has an empty 'id'.", "Give every prediction its id.")
        _check_item_score(form, p, pw, n_turns)
        out.append(Prediction.from_dict(p))
    return out


def _labels(raw, session_id: str, form: Form, n_turns: int, where: str, warnings: list[str]):
    out = []
    for lw, lab in _records(raw, Label, "label", session_id, form, n_turns, where, warnings, skip=("id",)):
        if not lab["annotator"].strip():
            raise fail(lw, "the label has an empty 'annotator'.", "Name the annotator (coding slot) of every label.")
        _check_item_score(form, lab, lw, n_turns)
        if lab.get("status", "draft") not in LABEL_STATUSES:
            raise fail(lw, f"unknown status {lab['status']!r}.", f"Use one of {', '.join(LABEL_STATUSES)}.")
        bad = [r for r in lab.get("change_reasons", []) if r not in CHANGE_REASONS]
        if bad:
            raise fail(lw, f"unknown change reason{'s' if len(bad) > 1 else ''} {bad}.",
                       f"Use keys from {', '.join(CHANGE_REASONS)}.")
        if lab.get("version", 0) < 0:
            raise fail(lw, f"'version' is {lab['version']}, expected 0 or more.", "Keep the version the export wrote.")
        record = Label.from_dict(lab)
        if "id" in lab and lab["id"] != record.id:
            raise fail(lw, f"'id' is {lab['id']!r} but session, item and annotator give {record.id!r}.",
                       "Remove 'id' (it is derived) or make session_id, item and annotator match it.")
        out.append(record)
    return out


def parse(path: Path, ctx: Context) -> Parsed:
    text = read_text(path)
    out = Parsed()
    resolver = SpeakerResolver(BUILTIN_SPEAKERS, ctx)
    pending = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = at(path, lineno)
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise _bad_json(path, lineno, line, err) from None
        if not isinstance(data, dict):
            raise fail(where, f"the line holds a JSON {type(data).__name__}, expected an object (one session).",
                       'Write one session per line: {"id": "...", "language": "en", "turns": [...]}.')
        for key in ("id", "turns"):
            if key not in data:
                raise fail(where, f"the session has no {key!r} field.",
                           f"Add \"{key}\"; a line needs at least \"id\" and \"turns\".")
        for key in ("id", "language", "source", "client_id", "counselor_id", "form", "created_at"):
            if key in data and not isinstance(data[key], str):
                raise fail(where, f"field {key!r} is {type(data[key]).__name__} {data[key]!r:.40}, expected a string.",
                           f"Write {key!r} as a string, e.g. \"{key}\": \"{data[key]}\".")
        if "metadata" in data and not isinstance(data["metadata"], dict):
            raise fail(where, f"'metadata' is {type(data['metadata']).__name__}, expected an object.",
                       "Write metadata as a JSON object (or leave it out).")
        sid = data["id"]
        if not sid.strip():
            raise fail(where, "the session has an empty 'id'.", "Give every session a non-empty id.")
        extra = sorted(set(data) - set(SESSION_FIELDS) - set(EXTRA_FIELDS))
        if extra:
            out.warnings.append(f"{where}: ignored unknown field{'s' if len(extra) > 1 else ''} "
                                f"{', '.join(repr(e) for e in extra)}.")
        form_id = data.get("form", "wai-sr")
        form = _form(form_id, where)
        turns = _turns(data["turns"], where, lineno, resolver, out.warnings)
        ratings = _ratings(data.get("ratings", {}), form, where)
        language = data.get("language")
        if language is None:
            language = ctx.language or detect_language(t.text for t in turns)
            out.warnings.append(f"{where}: session {sid!r} states no language; "
                                f"{'using language=' if ctx.language else 'detected'} {language!r}.")
        session = Session(id=sid, turns=turns, language=language, source=data.get("source", "jsonl"),
                          client_id=data.get("client_id", ""), counselor_id=data.get("counselor_id", ""),
                          form=form_id, ratings=ratings, metadata=data.get("metadata", {}),
                          created_at=data.get("created_at", ""))
        preds = _predictions(data.get("predictions", []), sid, form, len(turns), where, out.warnings)
        labels = _labels(data.get("labels", []), sid, form, len(turns), where, out.warnings)
        pending.append((session, where, preds, labels))
    resolver.raise_if_unknown(path)
    for session, where, preds, labels in pending:
        out.sessions.append((validated(session, where), where))
        out.predictions.extend((p, where) for p in preds)
        out.labels.extend((lab, where) for lab in labels)
    return out
