"""Sessions for the inference benchmarks: the sample sessions, or synthetic ones grown to a prompt length."""
from __future__ import annotations

import json
from pathlib import Path


def load_sessions(path: Path):
    from care_model.core.records import Session

    sessions = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                sessions.append(Session.from_dict(json.loads(line)))
    return sessions


def synthetic_sessions(count_tokens, render, target: int, n: int):
    """Fallback when data/sessions.jsonl is missing: sessions grown to about ``target`` prompt tokens."""
    from care_model.text.prompt import build_session_prompt
    from care_model.core.records import Session, Turn
    from tests.tiny_model import _EN

    out = []
    for s in range(n):
        turns: list[Turn] = []
        i = 0
        while True:
            text = " ".join(_EN[(i * 5 + s + k) % len(_EN)] for k in range(3))
            turns.append(Turn(i, ("counselor", "client")[i % 2], text))
            i += 1
            if i % 4 == 0:
                sp = build_session_prompt(Session(f"synthetic-{s}", turns), render_chat=render)
                if count_tokens(sp.prefix + max(sp.suffixes.values(), key=len)) >= target:
                    break
        out.append(Session(f"synthetic-{s}", turns))
    return out
