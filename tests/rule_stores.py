"""Stores for the retraining and cross-validation tests (real stores, curated labels), kept out of
the product: sessions whose client keeps saying GOOD (all items 5) or BAD (all items 1), a store
of them, and a cross-validation store with repeated and missing clients.

Used by tests/training/, tests/stats/test_heldout.py, tests/studio/test_crossval_runs.py and
tests/inference/test_vllm_backend.py (``from rule_stores import make_rule_store``).
"""
from __future__ import annotations

from pathlib import Path

from care_model.core.records import SHARED, Label, Session
from store import Repository
from tiny_model import _EN

GOOD, BAD = "this really helps", "this is useless"


def rule_sessions(n: int, seed: int = 0) -> list[Session]:
    """Sessions whose client keeps saying GOOD (all items 5) or BAD (all items 1); one client each."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        phrase, score = (GOOD, 5) if i % 2 == 0 else (BAD, 1)
        turns = []
        for t in range(8):
            text = rng.choice(_EN)
            if t % 2:
                text = f"{text} Honestly, {phrase}. Yes, {phrase}."
            turns.append({"index": t, "speaker": "client" if t % 2 else "counselor", "text": text})
        out.append(Session(id=f"rule-{i:02d}", turns=turns, client_id=f"c-{i:02d}",
                           ratings={"client": {k: score for k in range(1, 13)}}))
    return out


def make_rule_store(root: Path, n: int = 32) -> Path:
    with Repository(root) as repo:
        repo.add_user("boss", "password123", "admin")
        sessions = rule_sessions(n)
        repo.add_sessions(sessions)
        for s in sessions:
            score = s.ratings["client"][1]
            why = f'The client said "{GOOD if score == 5 else BAD}" [1].'
            repo.save_labels([(Label(session_id=s.id, item=k, annotator=SHARED, score=score, rationale=why,
                                     status="submitted", score_source="client_self_report",
                                     rationale_source="expert"), 0)
                              for k in range(1, 13)], actor="boss")
    return root


def make_cv_store(root: Path) -> Path:
    """14 sessions: clients c-00..c-09, two clients with two sessions each, two sessions without a client."""
    sessions = rule_sessions(14, seed=3)
    for i, s in enumerate(sessions):
        s.client_id = ([f"c-{j:02d}" for j in range(10)] + ["c-00", "c-01", "", ""])[i]
        # vary self-reports so correlations are defined
        s.ratings["client"] = {k: 1 + (i + k) % 5 for k in range(1, 13)}
        if i % 2 == 0:
            s.ratings["counselor"] = {k: 1 + (i + 2 * k) % 5 for k in range(1, 13)}
    with Repository(root) as repo:
        repo.add_user("boss", "password123", "admin")
        repo.add_sessions(sessions)
        for s in sessions:
            repo.save_labels([(Label(session_id=s.id, item=k, annotator=SHARED, score=s.ratings["client"][k],
                                     rationale="The client said so [1].", status="submitted",
                                     score_source="client_self_report", rationale_source="expert"), 0)
                              for k in range(1, 13)], actor="boss")
    return root
