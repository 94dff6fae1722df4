"""CSV reading shared by the AnnoMI and ratings importers: rows with the line they start on."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from .common import at, fail


def sniff_delimiter(header_line: str) -> str:
    """``,`` unless the header line splits into more fields on ``;`` or a tab (Excel locales)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] > counts[","] else ","


def read_rows(path: Path, text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(start line, cells)`` per record; quoted cells may hold commas, quotes and new lines.

    Blank lines are skipped. A broken quote raises with the line it starts on.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    last = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise fail(at(path, last + 1), f"the CSV cannot be read from this line: {err}.",
                       'Check the quoting: a cell with commas, quotes or line breaks must be wrapped in "...", '
                       'and a quote inside it written twice ("").', line=last + 1) from None
        start, last = last + 1, reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        yield start, row


def header_index(path: Path, header: list[str], expected: tuple[str, ...], required: tuple[str, ...],
                 line: int = 1, normalise=lambda name: name.strip()) -> dict[str, int]:
    """Column name -> position; missing required columns raise listing what is expected."""
    names = [normalise(h) for h in header]
    index: dict[str, int] = {}
    for pos, name in enumerate(names):
        index.setdefault(name, pos)
    missing = [c for c in required if c not in index]
    if missing:
        optional = [c for c in expected if c not in required]
        raise fail(at(path, line), f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}. "
                                   f"The header has: {', '.join(h.strip() for h in header) or '(nothing)'}.",
                   f"The first line must name the columns {', '.join(required)}"
                   + (f" (optional: {', '.join(optional)})" if optional else "")
                   + "; add the missing ones or fix their spelling.", missing=missing, line=line)
    return index
