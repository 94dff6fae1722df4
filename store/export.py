"""Export a store as JSONL: one session per line with all its predictions and labels.

The file is the ``jsonl`` import format, so ``import --format jsonl`` reads it back losslessly
(every field of every record: ids, versions, statuses, timestamps). Written to a temporary file
and renamed, so a failed export never leaves half a file behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .repository import Repository
from .storage import replace_file


def session_lines(repo: Repository, session_ids: Iterable[str] | None = None) -> Iterable[str]:
    for sid in session_ids if session_ids is not None else repo.session_ids():
        doc = repo.get_session(sid).to_dict()
        doc["predictions"] = [p.to_dict() for p in repo.predictions(sid, history=True)]
        doc["labels"] = [lab.to_dict() for lab in repo.labels(sid)]
        yield json.dumps(doc, ensure_ascii=False)


def export_jsonl(repo: Repository, out: Path | str, session_ids: Iterable[str] | None = None) -> int:
    """Write the export to ``out``; returns the number of sessions written."""
    lines = list(session_lines(repo, session_ids))
    out = Path(out)
    replace_file(out, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    os.chmod(out, 0o600)  # transcripts are health data: readable by the owner only
    return len(lines)
