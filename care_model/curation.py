"""The curated set: one expert label per (session, item), frozen as a hashed snapshot for training.

Which label counts (``CURATION_RULE``)
--------------------------------------
Only labels with status ``submitted`` are curated; drafts and discarded labels never are. For
each (session, item):

1. the :data:`~care_model.records.ADJUDICATED` slot's label, when it is submitted (an
   adjudicator settled the item: that is final);
2. else the :data:`~care_model.records.SHARED` slot's submitted label (the paper's workflow:
   the assigned experts edit one label set together);
3. else the independently coded labels (slots named by an expert, double coding): the score is
   the **lower median** of their submitted scores (``statistics.median_low``), so it is always a
   score some expert chose and, when two experts disagree, the more conservative of the two; the
   rationale and evidence come from the most recently submitted label with that score.

An item without a submitted label is not curated; a session enters the set when at least one
of its items is. ``CuratedLabel.source`` records which rule chose the label and ``label_ids``
the labels it came from.

Demo fallback (``self_reports=True``): a session with the client's own WAI-SR ratings but no
curated label gets one curated label per item from those ratings, with a fixed rationale that
says so (``source="self_report"``). The sample store has no expert labels yet, so its demo
retraining runs use this; a real curated set never should, and the snapshot header records it.

Snapshot
--------
:func:`take_snapshot` reads the store once and returns a :class:`Snapshot`; its ``hash`` is a
content hash (sha256 of canonical JSON) of the rule, every curated session's content hash,
client id, language and form, and every curated label's item, score, rationale and evidence --
not of timestamps or label versions, so the same curated content gives the same hash.
:func:`write_snapshot` / :func:`read_snapshot` store it as JSON lines (a header, then one line
per session with its turns and curated labels); reading recomputes the hash and refuses a file
that was edited. The training process reads only this file, never the store.

Split
-----
:func:`split_by_client` puts whole clients on one side: no client has sessions in both the
training and the validation set. A session without a ``client_id`` counts as its own client.

Pure module apart from the repository it is handed: no torch.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import TrainingError, ValidationError
from .records import ADJUDICATED, SHARED, Label, Session, now_iso, stable_hash
from .wai import load_form

SNAPSHOT_FORMAT = "care-curated-snapshot"
SNAPSHOT_VERSION = 1
CURATION_RULE = "adjudicated > shared > median_low(independent); submitted only; v1"
SELF_REPORT_RATIONALE = {
    "en": "The client rated this item {score} ({label}) in their own WAI-SR after the session.",
    "zh": "来访者在会谈后自评的工作联盟量表中，这一项选择了{score}（{label}）。",
}


@dataclass
class CuratedLabel:
    session_id: str
    item: int
    score: int
    rationale: str = ""
    evidence: list[int] = field(default_factory=list)
    source: str = "shared"          # adjudicated | shared | median_of_<n> | self_report
    label_ids: list[str] = field(default_factory=list)
    curated_at: str = ""            # the latest updated_at of the labels it came from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CuratedLabel":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Snapshot:
    sessions: dict[str, Session]                 # id -> session (turns included)
    labels: dict[str, list[CuratedLabel]]        # session id -> curated labels, by item
    hash: str
    rule: str = CURATION_RULE
    created_at: str = ""
    self_reports: bool = False

    @property
    def n_items(self) -> int:
        return sum(len(v) for v in self.labels.values())

    def client_of(self, session_id: str) -> str:
        return self.sessions[session_id].client_id or f"session:{session_id}"

    def source_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for labs in self.labels.values():
            for lab in labs:
                key = "independent" if lab.source.startswith("median_of_") else lab.source
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def header(self) -> dict:
        return {"kind": "header", "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "hash": self.hash,
                "rule": self.rule, "created_at": self.created_at, "self_reports": self.self_reports,
                "sessions": len(self.sessions), "items": self.n_items, "sources": self.source_counts(),
                "clients": len({self.client_of(s) for s in self.sessions})}


# ----------------------------------------------------------------------------- the rule
def _latest(labels: list[Label]) -> Label:
    return max(labels, key=lambda lab: (lab.updated_at, lab.annotator))


def curate_item(labels: Iterable[Label]) -> CuratedLabel | None:
    """The curated label of one (session, item) from all its labels, by ``CURATION_RULE``."""
    submitted = [lab for lab in labels if lab.status == "submitted" and lab.score is not None]
    if not submitted:
        return None
    by_slot = {lab.annotator: lab for lab in submitted}
    for slot, source in ((ADJUDICATED, "adjudicated"), (SHARED, "shared")):
        if slot in by_slot:
            lab = by_slot[slot]
            return CuratedLabel(lab.session_id, int(lab.item), int(lab.score), lab.rationale, list(lab.evidence),
                                source, [lab.id], lab.updated_at)
    experts = [lab for lab in submitted if lab.annotator not in (ADJUDICATED, SHARED)]
    score = int(statistics.median_low(sorted(int(lab.score) for lab in experts)))
    chosen = _latest([lab for lab in experts if int(lab.score) == score])
    return CuratedLabel(chosen.session_id, int(chosen.item), score, chosen.rationale, list(chosen.evidence),
                        f"median_of_{len(experts)}", sorted(lab.id for lab in experts),
                        max(lab.updated_at for lab in experts))


def _self_report_labels(session: Session) -> list[CuratedLabel]:
    ratings = session.ratings.get("client") or {}
    form = load_form(session.form)
    text = SELF_REPORT_RATIONALE.get(session.language, SELF_REPORT_RATIONALE["en"])
    return [CuratedLabel(session.id, int(item), int(score),
                         text.format(score=score, label=form.scale.label(int(score), session.language)),
                         [], "self_report", [], session.created_at)
            for item, score in sorted(ratings.items())]


def snapshot_hash(sessions: dict[str, Session], labels: dict[str, list[CuratedLabel]], rule: str) -> str:
    """Content hash of a curated set (see the module docstring): sha256 of canonical JSON, 16 hex digits."""
    body = [{"session": sid, "content": sessions[sid].content_hash, "client": sessions[sid].client_id,
             "language": sessions[sid].language, "form": sessions[sid].form,
             "labels": [[lab.item, lab.score, lab.rationale, sorted(lab.evidence)]
                        for lab in sorted(labels[sid], key=lambda x: x.item)]}
            for sid in sorted(labels)]
    return stable_hash({"rule": rule, "set": body})


def take_snapshot(repo, *, session_ids: Iterable[str] | None = None, self_reports: bool = False) -> Snapshot:
    """Freeze the curated set of ``repo`` now (optionally only ``session_ids``)."""
    wanted = set(session_ids) if session_ids is not None else None
    grouped: dict[tuple[str, int], list[Label]] = {}
    for lab in repo.labels(status="submitted"):
        if wanted is None or lab.session_id in wanted:
            grouped.setdefault((lab.session_id, int(lab.item)), []).append(lab)
    labels: dict[str, list[CuratedLabel]] = {}
    for (sid, _item), labs in sorted(grouped.items()):
        cur = curate_item(labs)
        if cur is not None:
            labels.setdefault(sid, []).append(cur)
    sessions = {sid: repo.get_session(sid) for sid in labels}
    if self_reports:
        for sid in repo.session_ids():
            if sid in labels or (wanted is not None and sid not in wanted):
                continue
            sess = repo.get_session(sid)
            if sess.ratings.get("client"):
                sessions[sid] = sess
                labels[sid] = _self_report_labels(sess)
    rule = CURATION_RULE + (" + client self-reports for sessions without labels (demo)" if self_reports else "")
    return Snapshot(sessions=sessions, labels=labels, hash=snapshot_hash(sessions, labels, rule), rule=rule,
                    created_at=now_iso(), self_reports=self_reports)


def new_curated_sessions(repo, since: str | None) -> list[str]:
    """Sessions with a submitted label saved after ``since`` (an ISO time; None: all curated sessions).

    The app enables retraining once this list reaches the configured threshold.
    """
    out = set()
    for lab in repo.labels(status="submitted"):
        if since is None or (lab.updated_at or "") > since:
            out.add(lab.session_id)
    return sorted(out)


# ----------------------------------------------------------------------------- files
def write_snapshot(snapshot: Snapshot, path: Path | str) -> Path:
    """Write the snapshot as JSON lines (atomically: temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(snapshot.header(), ensure_ascii=False) + "\n")
        for sid in sorted(snapshot.labels):
            line = {"kind": "session", "session": snapshot.sessions[sid].to_dict(),
                    "labels": [lab.to_dict() for lab in sorted(snapshot.labels[sid], key=lambda x: x.item)]}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_snapshot(path: Path | str) -> Snapshot:
    """Read a snapshot file; the recomputed content hash must equal the recorded one."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"No curated snapshot at {path}.",
                            "Prepare the run first (python -m care_model.retrain --store DIR ..., or start it from the app).")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    try:
        header = json.loads(lines[0]) if lines else {}
        rows = [json.loads(ln) for ln in lines[1:]]
    except json.JSONDecodeError as err:
        raise TrainingError(f"The snapshot {path} is not valid JSON lines ({err}).", "Prepare the run again.") from err
    if header.get("format") != SNAPSHOT_FORMAT:
        raise TrainingError(f"{path} is not a curated snapshot.", "Point the run at the snapshot.jsonl the run prepared.")
    sessions, labels = {}, {}
    for row in rows:
        sess = Session.from_dict(row["session"])
        sessions[sess.id] = sess
        labels[sess.id] = [CuratedLabel.from_dict(d) for d in row["labels"]]
    actual = snapshot_hash(sessions, labels, header["rule"])
    if actual != header["hash"]:
        raise TrainingError(f"The snapshot {path} was changed after it was taken (hash {actual}, recorded {header['hash']}).",
                            "Do not edit snapshot files; prepare a new run to train on other data.")
    return Snapshot(sessions=sessions, labels=labels, hash=header["hash"], rule=header["rule"],
                    created_at=header.get("created_at", ""), self_reports=bool(header.get("self_reports")))


# ----------------------------------------------------------------------------- split
@dataclass
class Split:
    train: list[str]
    validation: list[str]
    train_clients: list[str]
    validation_clients: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def split_by_client(snapshot: Snapshot, validation_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split sessions so that no client is on both sides.

    Clients are ordered by a seeded hash and moved to validation until it holds at least
    ``validation_fraction`` of the sessions (at least one client, and at least one left for
    training). ``validation_fraction=0`` puts everything in training.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValidationError(f"validation_fraction={validation_fraction} is outside [0, 1).",
                              "Use e.g. 0.2 for a fifth of the sessions, or 0 for no validation set.")
    by_client: dict[str, list[str]] = {}
    for sid in sorted(snapshot.labels):
        by_client.setdefault(snapshot.client_of(sid), []).append(sid)
    if not by_client:
        raise TrainingError("The curated set is empty: no session has a submitted label.",
                            "Submit expert labels in the Review tab first (or, for a demo store, allow client self-reports).")
    order = sorted(by_client, key=lambda c: hashlib.sha256(f"{seed}:{c}".encode("utf-8")).hexdigest())
    val_clients: list[str] = []
    if validation_fraction > 0:
        if len(order) < 2:
            raise TrainingError(f"The curated set has only one client ({order[0]}), so it cannot be split by client.",
                                "Curate sessions of at least two clients, or set validation_fraction: 0.")
        total = sum(len(v) for v in by_client.values())
        n_val = 0
        for client in order[:-1]:
            if n_val >= validation_fraction * total:
                break
            val_clients.append(client)
            n_val += len(by_client[client])
    train_clients = [c for c in order if c not in val_clients]
    return Split(train=sorted(s for c in train_clients for s in by_client[c]),
                 validation=sorted(s for c in val_clients for s in by_client[c]),
                 train_clients=sorted(train_clients), validation_clients=sorted(val_clients))
