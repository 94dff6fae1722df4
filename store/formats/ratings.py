"""WAI ratings CSV: ``session_id, rater, item_1 ... item_12`` (one row per session and rater).

Every score is checked against the WAI-SR form (whole numbers 1-5, all 12 items). Headers
match case-insensitively, and ``item 1`` / ``item1`` / ``Item_1`` are read as ``item_1``; a
``;``- or tab-separated file (Excel in some locales) is read too. Extra columns are ignored with a
warning. Whether the session exists is the repository's question, not this module's.
"""
from __future__ import annotations

import re
from pathlib import Path

from care_model.core.errors import ValidationError
from care_model.core.wai import Form, wai_sr

from .common import Context, Parsed, RatingRecord, at, fail, read_text
from .csvutil import header_index, read_rows, sniff_delimiter

RATERS = ("client", "counselor")
_ITEM_RE = re.compile(r"item[\s_\-]*(\d+)")


def _normalise(name: str) -> str:
    low = " ".join(name.strip().lower().split())
    m = _ITEM_RE.fullmatch(low)
    if m:
        return f"item_{int(m.group(1))}"
    return low.replace(" ", "_")


def expected_columns(form: Form) -> tuple[str, ...]:
    return ("session_id", "rater") + tuple(f"item_{i}" for i in form.item_ids)


def parse(path: Path, ctx: Context, form: Form | None = None) -> Parsed:
    form = form or wai_sr()
    text = read_text(path)
    out = Parsed()
    rows = read_rows(path, text, sniff_delimiter(text.split("\n", 1)[0]))
    header_line, header = next(rows)
    expected = expected_columns(form)
    col = header_index(path, header, expected, expected, header_line, normalise=_normalise)
    extra = [h.strip() for h in header if _normalise(h) not in expected]
    if extra:
        out.warnings.append(f"{at(path, header_line)}: ignored column{'s' if len(extra) > 1 else ''} "
                            f"{', '.join(repr(e) for e in extra)}.")
    scale = ", ".join(f"{k} {v}" for k, v in form.scale_labels().items())
    for line, cells in rows:
        where = at(path, line)
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise fail(where, f"the row has {len(cells)} cells but the header has {len(header)}.",
                       "Keep one cell per column; quote cells that hold the delimiter.", line=line)
        if len(cells) < len(header):
            cells = cells + [""] * (len(header) - len(cells))
        session_id = cells[col["session_id"]].strip()
        if not session_id:
            raise fail(where, "empty session_id.", "Give every row the id of the session it rates.", line=line)
        rater = cells[col["rater"]].strip().lower()
        if rater not in RATERS:
            raise fail(where, f"column rater is {cells[col['rater']].strip()!r}.",
                       "Write client (the client's own ratings) or counselor.", line=line, column="rater")
        ratings = {}
        for item in form.item_ids:
            name = f"item_{item}"
            raw = cells[col[name]].strip()
            place = f"{where}, column {name} (column {col[name] + 1})"
            if not raw:
                raise fail(place, f"no score for item {item}.",
                           f"Give all {len(form.items)} items a whole number from {form.scale.min} to "
                           f"{form.scale.max} ({scale}).", line=line, column=name)
            try:
                ratings[item] = form.check_score(raw, item)
            except ValidationError:
                raise fail(place, f"score {raw!r} is not allowed.",
                           f"Use a whole number from {form.scale.min} to {form.scale.max} ({scale}).",
                           line=line, column=name) from None
        out.ratings.append(RatingRecord(session_id=session_id, rater=rater, ratings=ratings, where=where))
    if not out.ratings:
        raise fail(at(path), "the file has a header but no rows.", "Add one row per session and rater.")
    return out
