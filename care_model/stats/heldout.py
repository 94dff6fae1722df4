"""Which sessions a model version may be scored on: never the ones it was trained on.

A LoRA version's training sessions are the ``train`` side of its run's split (recorded on the
version when it was registered, else read from ``<run_dir>/split.json``): the adapter learned
their curated labels, so scoring it on them measures memory, not skill. The run's validation
sessions (other clients) were only predicted, never learned, and stay eligible: that is where a
candidate is compared with the active version. A base model (no adapter) was trained on none of
the store's sessions.

By default evaluation leaves training sessions out and says how many and why;
``include_training=True`` (``--include-training-sessions``) keeps them, and every title then
says that the figures include training sessions.

Pure module (reads JSON files only): no torch, no tinydb.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

CONTAMINATED_TITLE = "INCLUDING TRAINING SESSIONS (--include-training-sessions): not a held-out evaluation"


def training_sessions(version: Mapping | None) -> list[str]:
    """The sessions ``version`` (a ``model_versions`` document) was trained on; [] for a base model."""
    if not version or not version.get("adapter"):
        return []
    split = version.get("split")
    if not split and version.get("run_dir"):
        path = Path(version["run_dir"]) / "split.json"
        if path.is_file():
            split = json.loads(path.read_text(encoding="utf-8"))
    return sorted((split or {}).get("train") or [])


@dataclass
class HeldOut:
    kept: list[str]
    excluded: dict[str, str] = field(default_factory=dict)   # session id -> why
    included_training: list[str] = field(default_factory=list)

    @property
    def contaminated(self) -> bool:
        return bool(self.included_training)

    def note(self) -> str:
        if self.included_training:
            return (f"{len(self.included_training)} training session(s) INCLUDED (--include-training-sessions): "
                    "these figures are not a held-out evaluation.")
        if not self.excluded:
            return "No session excluded: none of the evaluated sessions was trained on."
        reasons: dict[str, int] = {}
        for why in self.excluded.values():
            reasons[why] = reasons.get(why, 0) + 1
        return f"{len(self.excluded)} session(s) excluded: " + "; ".join(f"{n} {why}" for why,
                                                                         n in reasons.items()) + "."

    def title(self, title: str) -> str:
        return f"{title} -- {CONTAMINATED_TITLE}" if self.contaminated else title

    def to_dict(self) -> dict:
        return {"kept": len(self.kept), "excluded": len(self.excluded), "note": self.note(),
                "included_training_sessions": len(self.included_training), "contaminated": self.contaminated}


def held_out_sessions(session_ids: Iterable[str], versions: Sequence[Mapping | None], *,
                      include_training: bool = False) -> HeldOut:
    """Split ``session_ids`` into those every version in ``versions`` may be scored on and the rest."""
    reasons: dict[str, str] = {}
    for v in versions:
        for sid in training_sessions(v):
            reasons.setdefault(sid, f"in the training split of {v.get('id')} (run {v.get('run_id') or '?'}, "
                                    f"data {v.get('data_hash') or '?'})")
    ids = list(dict.fromkeys(session_ids))
    if include_training:
        return HeldOut(kept=ids, included_training=[s for s in ids if s in reasons])
    return HeldOut(kept=[s for s in ids if s not in reasons], excluded={s: reasons[s] for s in ids if s in reasons})
