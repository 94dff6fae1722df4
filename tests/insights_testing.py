"""Synthetic sessions for the insights tests: alliance built from known pattern effects and known
counselor offsets, with per-turn codes in the ClientBehavior scheme (data/codes/clientbehavior.json).

Everything is made here (no shared data): sessions are real :class:`Session` records with
``metadata.turn_annotations``; predictions carry the session's dimension value as every item's
``expected_score`` (a continuous score, so the regression sees the built alliance exactly) and its
rounded value as ``score``.
"""
from __future__ import annotations

import numpy as np

from care_model.core.records import Prediction, Session
from care_model.core.wai import load_form

PATTERNS = ["supporting->positive", "supporting->negative", "challenging->positive", "challenging->negative"]
CODES = {"supporting": "Supporting", "challenging": "Challenging", "positive": "Positive", "negative": "Negative"}
# true effects (vs the reference supporting->positive) per dimension, and intercepts
TRUE = {"goal": {"intercept": 4.0, "supporting->negative": -0.8, "challenging->positive": 0.5,
                 "challenging->negative": -1.5},
        "task": {"intercept": 3.2, "supporting->negative": -0.4, "challenging->positive": 0.9,
                 "challenging->negative": -1.0},
        "bond": {"intercept": 4.2, "supporting->negative": -1.2, "challenging->positive": -0.3,
                 "challenging->negative": -2.0}}


def synthetic_sessions(n_clients: int = 90, per_client: int = 3, *, counselors: dict[str, float] | None = None,
                       noise: float = 0.25, client_sd: float = 0.15, pairs: int = 30, seed: int = 0,
                       codes: bool = True, source: str = "clientbehavior"):
    """(sessions, {session id: {dim: value}}, {session id: {pattern: proportion}}).

    ``counselors``: counselor id -> offset added to every dimension; clients are nested in
    counselors (each client sees one counselor), assigned in turn."""
    rng = np.random.default_rng(seed)
    names = list(counselors or {"": 0.0})
    sessions, values, props = [], {}, {}
    for c in range(n_clients):
        counselor = names[c % len(names)]
        offset = (counselors or {}).get(counselor, 0.0)
        client_effect = rng.normal(0, client_sd)
        for k in range(per_client):
            sid = f"syn-{c:03d}-{k}"
            mix = rng.dirichlet([2.0, 1.0, 1.0, 1.0])
            seq = rng.choice(len(PATTERNS), size=pairs, p=mix)
            turns, notes = [], []
            for j, p in enumerate(seq):
                intent, react = PATTERNS[p].split("->")
                turns += [{"index": 2 * j, "speaker": "counselor", "text": f"Counselor turn {j} of {sid}."},
                          {"index": 2 * j + 1, "speaker": "client", "text": f"Client turn {j} of {sid}."}]
                notes += [{"coarse_strategy": CODES[intent] if codes else "n/a"},
                          {"coarse_behav_label": CODES[react] if codes else "n/a"}]
            prop = {name: float(np.mean(seq == i)) for i, name in enumerate(PATTERNS)}
            dims = {}
            for d, eff in TRUE.items():
                v = eff["intercept"] + sum(b * prop[t] for t, b in eff.items() if t != "intercept")
                dims[d] = float(v + offset + client_effect + rng.normal(0, noise))
            sessions.append(Session(id=sid, turns=turns, source=source, client_id=f"client-{c:03d}",
                                    counselor_id=counselor,
                                    metadata={"session_number": k + 1, "turn_annotations": notes,
                                              "arm": "a" if c % 2 == 0 else "b"}))
            values[sid], props[sid] = dims, prop
    return sessions, values, props


def predictions_for(values: dict, version: str = "syn-model") -> list[Prediction]:
    form = load_form("wai-sr")
    preds = []
    for sid, dims in values.items():
        for d, v in dims.items():
            for item in form.dimension(d).item_ids:
                preds.append(Prediction(id=f"{sid}|{version}|{item}", session_id=sid, item=item, model_version=version,
                                        score=int(min(5, max(1, round(v)))), expected_score=float(v),
                                        probs=[0.2] * 5, rationale=f"Synthetic rationale for item {item}.",
                                        evidence=[1], mode="full", created_at="2026-01-01T00:00:00+00:00"))
    return preds
