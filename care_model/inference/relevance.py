"""Which transcript turns an item's rationale may quote: the turns most similar to the item.

Item text and turn texts are embedded with all-MiniLM-L6-v2 (:mod:`care_model.inference.embeddings`, the
model the project ships) in one batch per session; for each item the ``k`` most similar turns of
the speaker of interest (the client's; the other speaker's only when the client never speaks) are
the candidates (:func:`care_model.text.grounding_turns.rank_candidates`). When the embedding package is not
installed, the candidates are the speaker's ``k`` longest turns and a warning says so.

Public API::

    candidate_turns(session, item_texts, *, k=8, speaker="client") -> (candidates, warnings)
        candidates: {item: [Turn.index, ...]} best first
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from care_model.text.grounding_turns import rank_candidates


_ITEM_VECTORS: dict[str, object] = {}  # item text -> its embedding (the 12 items repeat in every session)


def candidate_turns(session, item_texts: Mapping[int, str], *, k: int = 8,
                    speaker: str = "client") -> tuple[dict[int, list[int]], list[str]]:
    from care_model.inference import embeddings

    turns = [t for t in session.turns if str(t.text).strip()]
    items = list(item_texts)
    if not turns:
        return {item: [] for item in items}, ["the transcript has no text to quote"]
    # only the speaker's turns can be candidates (the other speaker's when the speaker has none)
    turns = [t for t in turns if t.speaker == speaker] or turns
    if not embeddings.is_available():
        lengths = [len(str(t.text)) for t in turns]
        return ({item: rank_candidates(turns, lengths, k, speaker) for item in items},
                ["the embedding model is not installed: candidate turns are the longest, not the most relevant"])
    new = [item_texts[i] for i in items if item_texts[i] not in _ITEM_VECTORS]
    vecs = embeddings.embed(new + [str(t.text) for t in turns])
    if len(_ITEM_VECTORS) > 1000:
        _ITEM_VECTORS.clear()
    _ITEM_VECTORS.update(zip(new, vecs[:len(new)]))
    item_vecs = np.stack([_ITEM_VECTORS[item_texts[i]] for i in items])
    sims = item_vecs @ vecs[len(new):].T
    return {item: rank_candidates(turns, sims[n], k, speaker) for n, item in enumerate(items)}, []
