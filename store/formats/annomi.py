"""AnnoMI CSV (``AnnoMI-simple.csv``): one row per utterance, grouped into sessions.

Conventions:

* session id ``annomi-<transcript_id>``; client id ``annomi-client-<8 hex of the video_url>``
  because AnnoMI splits some videos into several transcripts ("... - 1/2/3") of the same client,
  and a split by client must keep them together (``annomi-client-<transcript_id>`` where a row
  has no video_url); counselor
  id ``annomi-therapist`` (the file does not identify therapists; this is a placeholder, not a
  person), language ``en`` (or ``language=``), source ``annomi``.
* turns ordered by ``utterance_id`` (as a number) and numbered 0, 1, 2, ...; ``therapist`` ->
  counselor, ``client`` -> client (other interlocutor values need a speaker map).
* ``metadata``: ``transcript_id``, the session-level columns present (``mi_quality``,
  ``topic``, ``video_title``, ``video_url``), ``speaker_labels`` (interlocutor value -> role) and
  ``turn_annotations``: one object per turn, in turn order, with ``utterance_id`` and every other
  per-row column (``timestamp``, ``main_therapist_behaviour``, ``client_talk_type``, and any extra
  column a variant of the file has), values as written (e.g. ``"n/a"``).
* Cells are stripped of surrounding whitespace (the file's topic ``"smoking cessation "``).
* An utterance with empty text (none in the public file) cannot be a turn; it is left out
  with a warning and its row is kept in ``metadata["empty_utterances"]``.
"""
from __future__ import annotations

import hashlib

from pathlib import Path

from care_model.core.records import Session, Turn

from .common import Context, Parsed, SpeakerResolver, at, fail, read_text, validated
from .csvutil import header_index, read_rows

REQUIRED = ("transcript_id", "utterance_id", "interlocutor", "utterance_text")
COLUMNS = ("transcript_id", "mi_quality", "video_title", "video_url", "topic", "utterance_id", "interlocutor",
           "timestamp", "utterance_text", "main_therapist_behaviour", "client_talk_type")
SESSION_COLUMNS = ("mi_quality", "topic", "video_title", "video_url")
BUILTIN_SPEAKERS = {"therapist": "counselor", "client": "client"}


def _client_id(meta: dict, tid: str) -> str:
    url = (meta.get("video_url") or "").strip()
    if not url:
        return f"annomi-client-{tid}"
    return f"annomi-client-{hashlib.sha1(url.encode('utf-8')).hexdigest()[:8]}"
COUNSELOR_ID = "annomi-therapist"


def _sort_key(tid: str):
    return (0, int(tid), "") if tid.isdigit() else (1, 0, tid)


def parse(path: Path, ctx: Context) -> Parsed:
    text = read_text(path)
    out = Parsed()
    rows = read_rows(path, text)
    try:
        header_line, header = next(rows)
    except StopIteration:  # pragma: no cover - read_text already rejects blank files
        raise fail(at(path), "the file is empty.", "Pick the AnnoMI CSV file.") from None
    col = header_index(path, header, COLUMNS, REQUIRED, header_line)
    names = [h.strip() for h in header]
    per_turn = [n for n in dict.fromkeys(names)
                if n not in ("transcript_id", "utterance_id", "interlocutor", "utterance_text") + SESSION_COLUMNS]
    resolver = SpeakerResolver(BUILTIN_SPEAKERS, ctx, what="interlocutor value")
    groups: dict[str, list] = {}
    n_rows = 0
    for line, cells in rows:
        if len(cells) != len(header):
            raise fail(at(path, line), f"the row has {len(cells)} cells but the header has {len(header)}.",
                       'Wrap text that holds commas, quotes or line breaks in "..." (quotes inside doubled: ""), '
                       "and keep one cell per column.", line=line)
        n_rows += 1
        row = {n: cells[col[n]].strip() if n != "utterance_text" else cells[col[n]] for n in col}
        tid = row["transcript_id"]
        if not tid:
            raise fail(at(path, line), "empty transcript_id.", "Give every row the id of its transcript.", line=line)
        try:
            uid = int(row["utterance_id"])
        except ValueError:
            raise fail(at(path, line), f"column utterance_id is {row['utterance_id']!r}, not a whole number.",
                       "utterance_id is the order of the utterance within its transcript: 0, 1, 2, ...",
                       line=line) from None
        role = resolver.see(row["interlocutor"], f"line {line}")
        groups.setdefault(tid, []).append((uid, line, role, row))
    resolver.raise_if_unknown(path)
    if not groups:
        raise fail(at(path), "the file has a header but no utterances.", "Pick the AnnoMI CSV with its rows.")

    for tid in sorted(groups, key=_sort_key):
        rows_t = sorted(groups[tid], key=lambda r: r[0])
        first_line = min(r[1] for r in rows_t)
        where = at(path, first_line, f"transcript {tid}")
        meta: dict = {"transcript_id": tid}
        for name in SESSION_COLUMNS:
            if name not in col:
                continue
            values = {}
            for _, line, _, row in rows_t:
                values.setdefault(row[name], line)
            if len(values) > 1:
                (v1, l1), (v2, l2) = list(values.items())[:2]
                raise fail(where, f"rows disagree on {name}: {v1!r} (line {l1}) vs {v2!r} (line {l2}).",
                           f"Every row of a transcript must have the same {name}; fix the odd row, or "
                           "give rows of different sessions different transcript_ids.")
            meta[name] = rows_t[0][3][name]
        turns, annotations, empty, labels = [], [], [], {}
        prev = None
        for uid, line, role, row in rows_t:
            if uid == prev:
                raise fail(at(path, line), f"transcript {tid} has utterance_id {uid} twice.",
                           "Keep one row per utterance; a file with one row per annotator (like AnnoMI-full.csv) "
                           "is not this format, use AnnoMI-simple.csv.", line=line)
            prev = uid
            note = {"utterance_id": uid, **{n: row[n] for n in per_turn}}
            utterance = row["utterance_text"].strip()
            labels[row["interlocutor"]] = role
            if not utterance:
                empty.append({**note, "interlocutor": row["interlocutor"], "line": line})
                continue
            turns.append(Turn(index=len(turns), speaker=role, text=utterance))
            annotations.append(note)
        meta["speaker_labels"] = labels
        meta["turn_annotations"] = annotations
        if empty:
            meta["empty_utterances"] = empty
            out.warnings.append(f"{where}: left out {len(empty)} utterance{'s' if len(empty) > 1 else ''} with no "
                                f"text (utterance_id {', '.join(str(e['utterance_id']) for e in empty)}); "
                                "kept in metadata['empty_utterances'].")
        session = Session(id=f"annomi-{tid}", turns=turns, language=ctx.language or "en", source="annomi",
                          client_id=_client_id(meta, tid), counselor_id=COUNSELOR_ID, metadata=meta)
        out.sessions.append((validated(session, where), where))
    return out
