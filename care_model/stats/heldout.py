"""Which sessions a model version may be scored on: never the ones of a client it was trained on.

A LoRA version's training sessions are the ``train`` side of its run's split (recorded on the
version when it was registered, else read from ``<run_dir>/split.json``): the adapter learned
their curated labels. Sessions of one client are not independent (the same person, the same
counselor, the same alliance), so a version's held-out set leaves out **every session of every
client** in its training split, not only the sessions it learned. Sessions without a client id
are their own client. The run's validation sessions (other clients) were only predicted, never
learned, and stay eligible. A base model (no adapter) was trained on none of the store's sessions.

Failing closed: a version with an adapter but no recorded split (and no ``split.json``) is
**refused** (:class:`UnknownTrainingSplitError`): nothing says which sessions it learned.
``assume_untrained=True`` (``--assume-untrained``) evaluates it on everything, and every title
then says so (:data:`UNTRAINED_TITLE`). ``include_training=True``
(``--include-training-sessions``) keeps training clients' sessions, and every title says that
(:data:`CONTAMINATED_TITLE`).

Pure module (reads JSON files only): no torch, no tinydb.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from care_model.core.errors import CareError

CONTAMINATED_TITLE = "INCLUDING TRAINING SESSIONS (--include-training-sessions): not a held-out evaluation"
UNTRAINED_TITLE = "TRAINING SPLIT UNKNOWN, ASSUMED UNTRAINED (--assume-untrained): may include training sessions"


class UnknownTrainingSplitError(CareError):
    """A version with an adapter whose training split is not recorded: held-out evaluation is refused."""


def client_key(session_id: str, client: str | None) -> str:
    """The unit of independence: the client id, else the session itself (its own client)."""
    return client or f"session:{session_id}"


def training_sessions(version: Mapping | None) -> list[str] | None:
    """The sessions ``version`` (a ``model_versions`` document) was trained on: [] for a base model,
    None when it has an adapter but its split is unknown."""
    if not version or not version.get("adapter"):
        return []
    split = version.get("split")
    if not split and version.get("run_dir"):
        path = Path(version["run_dir"]) / "split.json"
        if path.is_file():
            split = json.loads(path.read_text(encoding="utf-8"))
    if not split or "train" not in split:
        return None
    return sorted(split.get("train") or [])


def unknown_split_error(version: Mapping) -> UnknownTrainingSplitError:
    vid = version.get("id") or "?"
    return UnknownTrainingSplitError(
        f"Model version {vid} has an adapter ({version.get('adapter')}) but no recorded training split "
        "(no 'split' on the version and no split.json in its run folder): its held-out sessions cannot be told.",
        "Evaluate a version registered by a retraining run, or pass --assume-untrained "
        "(assume_untrained=True) if you know it was trained on none of these sessions; the titles then say so.",
        version=vid)


@dataclass
class HeldOut:
    kept: list[str]
    excluded: dict[str, str] = field(default_factory=dict)   # session id -> why
    included_training: list[str] = field(default_factory=list)
    assumed_untrained: list[str] = field(default_factory=list)   # versions whose split is unknown

    @property
    def contaminated(self) -> bool:
        return bool(self.included_training)

    def note(self) -> str:
        extra = (f" Training split of {', '.join(self.assumed_untrained)} unknown: assumed untrained "
                 "(--assume-untrained)." if self.assumed_untrained else "")
        if self.included_training:
            return (f"{len(self.included_training)} session(s) of training clients INCLUDED "
                    "(--include-training-sessions): these figures are not a held-out evaluation." + extra)
        if not self.excluded:
            return "No session excluded: no evaluated client was trained on." + extra
        reasons: dict[str, int] = {}
        for why in self.excluded.values():
            reasons[why] = reasons.get(why, 0) + 1
        return f"{len(self.excluded)} session(s) excluded: " + "; ".join(f"{n} {why}" for why,
                                                                         n in reasons.items()) + "." + extra

    def title(self, title: str) -> str:
        if self.contaminated:
            title = f"{title} -- {CONTAMINATED_TITLE}"
        return f"{title} -- {UNTRAINED_TITLE}" if self.assumed_untrained else title

    def to_dict(self) -> dict:
        return {"kept": len(self.kept), "excluded": len(self.excluded), "note": self.note(),
                "included_training_sessions": len(self.included_training), "contaminated": self.contaminated,
                "assumed_untrained": list(self.assumed_untrained), "unit": "client"}


def held_out_sessions(session_ids: Iterable[str], versions: Sequence[Mapping | None], *,
                      clients: Mapping[str, str | None], include_training: bool = False,
                      assume_untrained: bool = False) -> HeldOut:
    """Split ``session_ids`` into those no version in ``versions`` trained on (any session of the
    client) and the rest. ``clients``: session id -> client id (None: the session is its own
    client) for every session of the store (training sessions included). Raises
    :class:`UnknownTrainingSplitError` for an adapter without a split unless ``assume_untrained``."""
    if clients is None:
        raise TypeError("held_out_sessions needs clients= (session id -> client id)")
    reasons: dict[str, str] = {}       # client key -> why
    train_ids: dict[str, str] = {}     # session id -> why (a training session missing from ``clients``)
    assumed = []
    for v in versions:
        if not v:
            continue
        train = training_sessions(v)
        if train is None:
            if not assume_untrained:
                raise unknown_split_error(v)
            assumed.append(str(v.get("id")))
            continue
        why = (f"of a client in the training split of {v.get('id')} (run {v.get('run_id') or '?'}, "
               f"data {v.get('data_hash') or '?'})")
        for sid in train:
            reasons.setdefault(client_key(sid, clients.get(sid)), why)
            train_ids.setdefault(sid, why)
    ids = list(dict.fromkeys(session_ids))

    def why_of(sid):
        return train_ids.get(sid) or reasons.get(client_key(sid, clients.get(sid)))

    out = [s for s in ids if why_of(s)]
    if include_training:
        return HeldOut(kept=ids, included_training=out, assumed_untrained=assumed)
    return HeldOut(kept=[s for s in ids if not why_of(s)], excluded={s: why_of(s) for s in out},
                   assumed_untrained=assumed)
