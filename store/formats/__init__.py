"""Read real transcript formats into validated records, all or nothing.

>>> batch = read_files(["AnnoMI-simple.csv"], "annomi")            # doctest: +SKIP
>>> batch = read_files(["notes/"], "text", speaker_map=parse_speaker_map("Dr. Lee=counselor,Patient=client"))

Formats (one module each): ``jsonl`` (this project's own format and its export, with
predictions and labels), ``annomi`` (AnnoMI CSV), ``esconv`` (ESConv JSON), ``text`` (plain
``Counselor: ...`` / ``来访者：...`` chat transcripts, one session per file) and ``ratings``
(WAI ratings CSV). Every session is checked with ``Session.validate()``; any problem raises
:class:`care_model.core.errors.ImportFormatError` naming the file, the line or record, the problem and
the fix, before anything is returned. Within one call, a session id seen twice with different
content is an error; the same content twice is kept once (with a warning). Same for prediction
ids, label ids and (session, rater) ratings.

A folder among ``paths`` stands for its files with the format's extension (``*.txt``,
``*.jsonl``, ``*.csv``, ``*.json``), sorted by name. Pure module: no tinydb.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from care_model.core.errors import ImportFormatError

from . import annomi, esconv, jsonl, ratings, text
from .common import (Context, ImportBatch, Parsed, RatingRecord, fail, first_difference, make_context,
                     parse_speaker_map)

__all__ = ["FORMATS", "ImportBatch", "RatingRecord", "read_files", "parse_speaker_map", "EXTENSIONS"]

FORMATS = ("jsonl", "annomi", "esconv", "text", "ratings")
_PARSERS = {"jsonl": jsonl.parse, "annomi": annomi.parse, "esconv": esconv.parse, "text": text.parse,
            "ratings": ratings.parse}
EXTENSIONS = {"jsonl": (".jsonl",), "annomi": (".csv",), "esconv": (".json",), "text": (".txt",),
              "ratings": (".csv",)}


def _expand(paths, fmt: str) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS[fmt])
            if not found:
                raise ImportFormatError(f"{p}: the folder has no {' or '.join(EXTENSIONS[fmt])} files.",
                                        f"Point at the files themselves, or check the format (now {fmt!r}).")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise ImportFormatError(f"{p}: no such file.",
                                    "Check the path (relative paths start at the current folder).")
    if not files:
        raise ImportFormatError("No files to import.", "Give at least one file or folder.")
    return files


def _merge(parsed: list[Parsed], fmt: str, files: list[str], ctx: Context) -> ImportBatch:
    batch = ImportBatch(format=fmt, files=files)
    rename = {"text": "rename one of the files (the id comes from the file name)",
              "esconv": "remove one copy of the conversation"}.get(fmt,
                                                                   "give one of them another id, or remove the stale "
                                                                   "copy")

    def keep(kind: str, key, record, where, seen: dict, out: list, as_dict):
        if key in seen:
            first, first_where = seen[key]
            if as_dict(first) == as_dict(record):
                batch.warnings.append(f"{where}: {kind} {key!r} repeats {first_where} with the same content; "
                                      "kept once.")
                return
            differ = first_difference(as_dict(first), as_dict(record))
            raise ImportFormatError(
                f"{where}: {kind} {key!r} was already read at {first_where} with different content "
                f"(they differ in {', '.join(differ)}).",
                f"Ids must be unique within an import: {rename}.", where=where, first=first_where)
        seen[key] = (record, where)
        out.append(record)

    sessions: dict = {}
    preds: dict = {}
    labels: dict = {}
    rates: dict = {}
    for p in parsed:
        batch.warnings.extend(p.warnings)
        for s, where in p.sessions:
            keep("session", s.id, s, where, sessions, batch.sessions, lambda r: r.to_dict())
        for pr, where in p.predictions:
            keep("prediction", pr.id, pr, where, preds, batch.predictions, lambda r: r.to_dict())
        for lab, where in p.labels:
            keep("label", lab.id, lab, where, labels, batch.labels, lambda r: r.to_dict())
        for r in p.ratings:
            keep("ratings", f"{r.session_id} by {r.rater}", r, r.where, rates, batch.ratings,
                 lambda x: {f"item_{k}": v for k, v in x.ratings.items()})
    unused = [ctx.speaker_map_labels[k] for k in ctx.speaker_map if k not in ctx.used_map_keys]
    if unused:
        batch.warnings.append(f"speaker map: no speaker is labelled {', '.join(repr(u) for u in unused)} "
                              "in these files; those entries did nothing.")
    return batch


def read_files(paths: str | Path | Iterable[str | Path], fmt: str, *, speaker_map: dict[str, str] | None = None,
               language: str | None = None) -> ImportBatch:
    """Read ``paths`` (files or folders) in format ``fmt`` into one validated :class:`ImportBatch`.

    ``speaker_map`` (label -> ``counselor``/``client``, see :func:`parse_speaker_map`) names
    speakers the format does not know and overrides its built-in labels. ``language`` (``en`` or
    ``zh``) sets the language where the file does not state one (text, AnnoMI, ESConv, and jsonl
    lines without ``language``). Raises :class:`ImportFormatError`; returns only when every file
    read cleanly.
    """
    if fmt not in FORMATS:
        raise ImportFormatError(f"Unknown import format {fmt!r}.", f"Use one of {', '.join(FORMATS)}.")
    ctx = make_context(speaker_map, language)
    files = _expand(paths, fmt)
    parsed = []
    for path in files:
        try:
            parsed.append(_PARSERS[fmt](path, ctx))
        except OSError as err:
            raise fail(str(path), f"cannot be read: {err.strerror or err}.", "Check the file's permissions.") from None
    return _merge(parsed, fmt, [str(f) for f in files], ctx)
