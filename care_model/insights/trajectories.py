"""Client trajectories and the low-alliance drill-down (the paper's "actionable insights").

* :func:`trajectories` -- for every client with at least two scored sessions: each dimension
  across the sessions in order (the session number or date in the metadata, else the transcript
  id or session id: :func:`care_model.insights.table.order_key`), with a **rupture** flagged where a
  dimension drops by at least ``drop`` (default 1 point) from one session to the next.
* :func:`low_sessions` -- for a counselor or a client: the sessions with a dimension at or below
  ``threshold``, each with the model's rationale and evidence turns for that dimension's items
  (scores-only predictions have none, and the result says so).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from care_model.core.errors import ValidationError
from care_model.core.records import Prediction
from care_model.core.wai import load_form
from care_model.insights.table import SessionRow, dims_of
from care_model.stats.evaluate import latest_predictions

RUPTURE_DROP = 1.0


def trajectories(rows: Sequence[SessionRow], *, drop: float = RUPTURE_DROP) -> dict:
    dims = dims_of(rows)
    by_client: dict[str, list[SessionRow]] = defaultdict(list)
    for r in rows:
        if r.client_id and any(r.dims.get(d) is not None for d in dims):
            by_client[r.client_id].append(r)
    clients = []
    for cid in sorted(by_client):
        mine = sorted(by_client[cid], key=lambda r: (r.order, r.session_id))
        if len(mine) < 2:
            continue
        ruptures = []
        for d in dims:
            prev = None
            for r in mine:
                v = r.dims.get(d)
                if v is None:
                    continue
                if prev is not None and prev[1] - v >= drop - 1e-12:
                    ruptures.append({"dim": d, "from_session": prev[0], "to_session": r.session_id,
                                     "from": prev[1], "to": v, "drop": prev[1] - v})
                prev = (r.session_id, v)
        clients.append({"client": cid, "sessions": [{"session_id": r.session_id, "dims": dict(r.dims)} for r in mine],
                        "ruptures": ruptures})
    n_with_client = len({r.client_id for r in rows if r.client_id})
    return {"dims": dims, "drop": drop, "clients": clients, "n_clients": n_with_client,
            "statement": None if clients else
            f"No client has two or more scored sessions ({n_with_client} clients, one session each): "
            "there is no trajectory to show."}


def low_sessions(rows: Sequence[SessionRow], predictions: Iterable[Prediction], model_version: str | None, *,
                 dim: str, threshold: float, counselor: str = "", client: str = "", form: str = "wai-sr") -> dict:
    if bool(counselor) == bool(client):
        raise ValidationError("Give a counselor or a client (one of them) for the drill-down.",
                              "Pick a counselor id or a client id.")
    f = load_form(form)
    if dim not in f.dimension_keys:
        raise ValidationError(f"Unknown dimension {dim!r}.", f"Use one of {', '.join(f.dimension_keys)}.")
    mine = [r for r in rows if (r.counselor_id == counselor if counselor else r.client_id == client)]
    hits = sorted((r for r in mine if r.dims.get(dim) is not None and r.dims[dim] <= threshold + 1e-12),
                  key=lambda r: (r.dims[dim], r.order, r.session_id))
    items = set(f.dimension(dim).item_ids)
    preds: dict[str, list[Prediction]] = defaultdict(list)
    if model_version:
        wanted = {r.session_id for r in hits}
        for p in latest_predictions((p for p in predictions if p.session_id in wanted), model_version):
            if int(p.item) in items:
                preds[p.session_id].append(p)
    sessions = []
    for r in hits:
        its = [{"item": int(p.item), "score": p.score, "rationale": p.rationale or "",
                "evidence": list(p.evidence or []), "mode": p.mode}
               for p in sorted(preds.get(r.session_id, []), key=lambda p: int(p.item))]
        sessions.append({"session_id": r.session_id, "value": r.dims[dim], "items": its,
                         "has_rationales": any(i["rationale"] for i in its)})
    who = f"counselor {counselor}" if counselor else f"client {client}"
    return {"who": who, "dim": dim, "threshold": threshold, "n_sessions": len(mine), "sessions": sessions}
