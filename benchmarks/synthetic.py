"""Synthetic stores at the paper's scale (about 800 sessions, 10,000 item labels) for benchmarks.

The text is filler built from a fixed vocabulary with a seeded RNG: it has the size and shape of
real transcripts (80 turns, about 30 KB per session) and no health data.
"""
from __future__ import annotations

import random

from care_model.core.records import Label, Prediction, Session, SHARED

WORDS = ("I you we feel think week work sleep family talk goal plan try change help maybe really "
         "because when then that this about little more time home anxious tired better worse said "
         "know want need people friend mother partner job money drink stop start again notice").split()


def _text(rng: random.Random, n_chars: int) -> str:
    out, size = [], 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return (" ".join(out)).capitalize() + "."


def make_session(i: int, rng: random.Random, turns: int = 80, chars: int = 30_000) -> Session:
    per_turn = chars // turns
    return Session(
        id=f"bench-{i:04d}",
        language="en",
        source="synthetic",
        client_id=f"c-{i // 10:03d}",
        counselor_id=f"t-{i % 7:02d}",
        turns=[{"index": t, "speaker": "counselor" if t % 2 == 0 else "client",
                "text": _text(rng, rng.randint(per_turn // 2, per_turn * 3 // 2))} for t in range(turns)],
        ratings={"client": {k: rng.randint(1, 5) for k in range(1, 13)}},
        metadata={"topic": "synthetic", "summary": f"synthetic session {i}"},
    )


def make_predictions(session: Session, rng: random.Random, model_version: str = "bench-model") -> list[Prediction]:
    preds = []
    for item in range(1, 13):
        probs = [rng.random() for _ in range(5)]
        total = sum(probs)
        probs = [p / total for p in probs]
        preds.append(Prediction(
            id=f"{session.id}|{model_version}|{item}", session_id=session.id, item=item, model_version=model_version,
            score=max(range(5), key=lambda k: probs[k]) + 1,
            expected_score=sum((k + 1) * p for k, p in enumerate(probs)),
            probs=probs, rationale=_text(rng, 600), evidence=[rng.randrange(len(session.turns))],
            raw_output="", prompt_hash="bench"))
    return preds


def make_labels(session: Session, rng: random.Random, n: int, annotator: str = SHARED) -> list[Label]:
    return [Label(session_id=session.id, item=item, annotator=annotator, score=rng.randint(1, 5),
                  rationale=_text(rng, 700), evidence=sorted(rng.sample(range(len(session.turns)), 2)),
                  status=rng.choice(["draft", "submitted", "submitted"]))
            for item in range(1, n + 1)]


def build_store(repo, n_sessions: int = 800, n_labels: int = 10_000, seed: int = 0, turns: int = 80,
                chars: int = 30_000) -> dict:
    """Fill ``repo`` with sessions, one model's 12 predictions each, and ``n_labels`` labels."""
    rng = random.Random(seed)
    sessions = [make_session(i, rng, turns, chars) for i in range(n_sessions)]
    repo.add_sessions(sessions)
    repo.add_predictions([p for s in sessions for p in make_predictions(s, rng)])
    # 12 shared labels per session, the rest as a second expert's independent labels
    shared = min(12, n_labels // n_sessions)
    extra = n_labels - shared * n_sessions
    total = 0
    for k, s in enumerate(sessions):
        labels = make_labels(s, rng, shared)
        take = min(12, extra)
        if take > 0:
            labels += make_labels(s, rng, take, annotator="expert-b")
            extra -= take
        repo.save_labels([(lab, 0) for lab in labels], actor="bench")
        total += len(labels)
    return {"sessions": n_sessions, "labels": total}
