"""The training snapshot: the curated set (:mod:`care_model.text.curation`) frozen and hashed, what
it learns from, and its split by client.

What a training snapshot learns from
------------------------------------
:func:`take_snapshot` keeps curated labels whose ``score_source`` is in ``score_sources``
(default :data:`DEFAULT_SCORE_SOURCES`: client self-reports with curated rationales, as in the
paper). ``rationales``:

* ``"curated"`` (default): only curated labels, each with the expert's rationale;
* ``"curated_or_none"``: in addition, every item of a session with a client self-report that
  has no curated label gets the client's self-reported score **with no rationale**
  (``source="self_report_no_rationale"``; the model learns the score line only: the paper's
  "CARE without rationales" ablation, for those items). An explicit choice, recorded in the
  snapshot's rule and header (``rationales``, ``items_without_rationale``) and so in every run
  and model version trained on it. The sample store (self-reports, no expert rationales) trains
  this way.

Rationale provenance
--------------------
Curated labels are kept only when their rationale's provenance
(:mod:`care_model.core.provenance`) is in ``rationale_provenance``: by default ``expert`` and
``edited`` (:data:`~care_model.core.provenance.DEFAULT_PROVENANCE`), so model text saved unchanged
(``accepted``, ``bulk_accepted``) or of unknown origin never becomes a training target unless a
recipe names it. A left-out item of a self-reported session is then learned like an item without
curated label (a score without rationale) under ``curated_or_none``, and not at all otherwise. The
header counts the kept rationales per provenance (``provenance_counts``) and those left out
(``excluded_provenance_counts``).

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from care_model.core.errors import TrainingError, ValidationError
from care_model.core.provenance import DEFAULT_PROVENANCE, check_provenance, provenance_counts
from care_model.core.records import SCORE_SOURCES, Session, now_iso, stable_hash
from care_model.text.curation import CURATION_RULE, CuratedLabel, curate_item, submitted_by_item

SNAPSHOT_FORMAT = "care-curated-snapshot"
SNAPSHOT_VERSION = 2
DEFAULT_SCORE_SOURCES = ("client_self_report",)
RATIONALE_POLICIES = ("curated", "curated_or_none")
NO_RATIONALE = "self_report_no_rationale"

SOURCE_NAMES = {"client_self_report": "client self-reports", "expert": "expert judgements",
                "adjudicated": "adjudicated labels"}


def learned_from(header: dict | None) -> dict:
    """What a run or model version learned from, out of its snapshot header (runs and versions
    store it as ``learned_from``): score sources, rationales policy and counts."""
    h = header or {}
    if "score_sources" not in h and h.get("self_reports"):  # a version-1 demo snapshot
        return {"score_sources": ["client_self_report"], "rationales": "fixed demo text",
                "score_source_counts": {}, "items_without_rationale": None}
    return {"score_sources": list(h.get("score_sources") or []), "rationales": h.get("rationales"),
            "score_source_counts": dict(h.get("score_source_counts") or {}),
            "items_without_rationale": h.get("items_without_rationale"),
            "rationale_provenance": list(h.get("rationale_provenance") or []),
            "provenance_counts": dict(h.get("provenance_counts") or {}),
            "excluded_provenance_counts": dict(h.get("excluded_provenance_counts") or {})}


def describe_provenance(counts: dict | None) -> str:
    """"expert 3, edited 2, accepted 0, ..." (the non-zero counts; "none" when all are zero)."""
    parts = [f"{k.replace('_', ' ')} {v}" for k, v in (counts or {}).items() if v]
    return ", ".join(parts) or "none"


def describe_learned_from(info: dict | None) -> str:
    """One line for people, e.g. "client self-reports (120 items, 96 of them without rationale)"."""
    info = info or {}
    if not info.get("score_sources"):
        return "unknown (recorded before score sources existed)"
    counts = info.get("score_source_counts") or {}
    parts = [SOURCE_NAMES.get(s, s) + (f" ({counts[s]} items)" if s in counts else "") for s in info["score_sources"]]
    text = ", ".join(parts) + {"curated": ", with curated rationales",
                               "curated_or_none": ", with curated rationales where there are any"}.get(
        info.get("rationales") or "", f", rationales: {info.get('rationales')}")
    if info.get("rationale_provenance"):
        text += (f"; rationales by provenance: {describe_provenance(info.get('provenance_counts'))} (taking "
                 f"{', '.join(info['rationale_provenance'])})")
    if info.get("items_without_rationale"):
        text += f"; {info['items_without_rationale']} items learned as scores without rationale"
    return text


def check_sources(score_sources: Iterable[str], rationales: str = "curated") -> tuple[str, ...]:
    """``score_sources`` in :data:`SCORE_SOURCES` order, after checking it and ``rationales``."""
    wanted = list(score_sources or ())
    bad = [s for s in wanted if s not in SCORE_SOURCES]
    if bad or not wanted:
        raise ValidationError(f"Score sources {wanted!r} are not a non-empty list of known sources.",
                              f"Use one or more of {', '.join(SCORE_SOURCES)} (the paper: client_self_report).")
    if rationales not in RATIONALE_POLICIES:
        raise ValidationError(f"Unknown rationales policy {rationales!r}.",
                              f"Use one of {', '.join(RATIONALE_POLICIES)}.")
    if rationales == "curated_or_none" and "client_self_report" not in wanted:
        raise ValidationError("rationales: curated_or_none fills in clients' self-reported scores, but the score "
                              "sources leave client_self_report out.",
                              "Add client_self_report to score_sources, or use rationales: curated.")
    return tuple(s for s in SCORE_SOURCES if s in wanted)



@dataclass
class Snapshot:
    sessions: dict[str, Session]                 # id -> session (turns included)
    labels: dict[str, list[CuratedLabel]]        # session id -> curated labels, by item
    hash: str
    rule: str = CURATION_RULE
    created_at: str = ""
    score_sources: tuple = DEFAULT_SCORE_SOURCES
    rationales: str = "curated"
    rationale_provenance: tuple = DEFAULT_PROVENANCE
    excluded_provenance: dict | None = None  # provenance -> curated labels left out by rationale_provenance

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

    def score_source_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for labs in self.labels.values():
            for lab in labs:
                counts[lab.score_source] = counts.get(lab.score_source, 0) + 1
        return dict(sorted(counts.items()))

    def header(self) -> dict:
        return {"kind": "header", "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "hash": self.hash,
                "rule": self.rule, "created_at": self.created_at, "score_sources": list(self.score_sources),
                "rationales": self.rationales, "sessions": len(self.sessions), "items": self.n_items,
                "sources": self.source_counts(), "score_source_counts": self.score_source_counts(),
                "items_without_rationale": sum(lab.source == NO_RATIONALE for labs in self.labels.values()
                                               for lab in labs),
                "rationale_provenance": list(self.rationale_provenance),
                "provenance_counts": provenance_counts(lab.rationale_source for labs in self.labels.values()
                                                       for lab in labs if lab.source != NO_RATIONALE),
                "excluded_provenance_counts": dict(self.excluded_provenance or provenance_counts(())),
                "clients": len({self.client_of(s) for s in self.sessions})}




def _no_rationale_labels(session: Session, have: set[int]) -> list[CuratedLabel]:
    """The client's self-reported score, without a rationale, for the items not in ``have``."""
    return [CuratedLabel(session.id, int(item), int(score), "", [], NO_RATIONALE, [], session.created_at,
                         "client_self_report")
            for item, score in sorted((session.ratings.get("client") or {}).items()) if int(item) not in have]


def snapshot_hash(sessions: dict[str, Session], labels: dict[str, list[CuratedLabel]], rule: str) -> str:
    """Content hash of a curated set (see the module docstring): sha256 of canonical JSON, 16 hex digits."""
    body = [{"session": sid, "content": sessions[sid].content_hash, "client": sessions[sid].client_id,
             "language": sessions[sid].language, "form": sessions[sid].form,
             "labels": [[lab.item, lab.score, lab.rationale, sorted(lab.evidence)]
                        for lab in sorted(labels[sid], key=lambda x: x.item)]}
            for sid in sorted(labels)]
    return stable_hash({"rule": rule, "set": body})


def snapshot_rule(score_sources: Iterable[str], rationales: str,
                  rationale_provenance: Iterable[str] = DEFAULT_PROVENANCE) -> str:
    """The rule string a snapshot records (and hashes): the curation rule and what it learns from."""
    return (f"{CURATION_RULE}; score sources: {', '.join(score_sources)}; rationales: {rationales}; "
            f"rationale provenance: {', '.join(rationale_provenance)}")


def take_snapshot(repo, *, session_ids: Iterable[str] | None = None,
                  score_sources: Iterable[str] = DEFAULT_SCORE_SOURCES, rationales: str = "curated",
                  rationale_provenance: Iterable[str] | None = None) -> Snapshot:
    """Freeze the curated set of ``repo`` now (optionally only ``session_ids``): the curated labels
    whose score source is in ``score_sources`` and whose rationale's provenance is in
    ``rationale_provenance`` (None: expert and edited), and with ``rationales="curated_or_none"``
    the self-reported scores without rationale described in the module docstring."""
    sources = check_sources(score_sources, rationales)
    try:
        prov = check_provenance(rationale_provenance)
    except ValueError as err:
        raise ValidationError(str(err), "Set rationale_provenance in the recipe to a list such as "
                                        "[expert, edited] or [expert, edited, accepted].") from None
    excluded: list[str] = []
    wanted = set(session_ids) if session_ids is not None else None
    labels: dict[str, list[CuratedLabel]] = {}
    grouped = submitted_by_item(lab for lab in repo.labels(status="submitted")
                                 if wanted is None or lab.session_id in wanted)
    for (sid, _item), labs in sorted(grouped.items()):
        cur = curate_item(labs)
        if cur is not None and cur.score_source in sources:
            if cur.rationale_source in prov:
                labels.setdefault(sid, []).append(cur)
            else:
                excluded.append(cur.rationale_source)
    sessions = {sid: repo.get_session(sid) for sid in labels}
    if rationales == "curated_or_none":
        for sid in repo.session_ids():
            if wanted is not None and sid not in wanted:
                continue
            sess = sessions.get(sid) or repo.get_session(sid)
            extra = _no_rationale_labels(sess, {lab.item for lab in labels.get(sid, [])})
            if extra:
                sessions[sid] = sess
                labels[sid] = sorted(labels.get(sid, []) + extra, key=lambda lab: lab.item)
    rule = snapshot_rule(sources, rationales, prov)
    return Snapshot(sessions=sessions, labels=labels, hash=snapshot_hash(sessions, labels, rule), rule=rule,
                    created_at=now_iso(), score_sources=sources, rationales=rationales, rationale_provenance=prov,
                    excluded_provenance=provenance_counts(excluded))


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
                            "Prepare the run first (care retrain --store DIR ..., or start it "
                            "from the app).")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    try:
        header = json.loads(lines[0]) if lines else {}
        rows = [json.loads(ln) for ln in lines[1:]]
    except json.JSONDecodeError as err:
        raise TrainingError(f"The snapshot {path} is not valid JSON lines ({err}).", "Prepare the run again.") from err
    if header.get("format") != SNAPSHOT_FORMAT:
        raise TrainingError(f"{path} is not a curated snapshot.",
                            "Point the run at the snapshot.jsonl the run prepared.")
    sessions, labels = {}, {}
    for row in rows:
        sess = Session.from_dict(row["session"])
        sessions[sess.id] = sess
        labels[sess.id] = [CuratedLabel.from_dict(d) for d in row["labels"]]
    actual = snapshot_hash(sessions, labels, header["rule"])
    if actual != header["hash"]:
        raise TrainingError(f"The snapshot {path} was changed after it was taken (hash {actual}, recorded "
                            f"{header['hash']}).",
                            "Do not edit snapshot files; prepare a new run to train on other data.")
    return Snapshot(sessions=sessions, labels=labels, hash=header["hash"], rule=header["rule"],
                    created_at=header.get("created_at", ""),
                    score_sources=tuple(header.get("score_sources") or DEFAULT_SCORE_SOURCES),
                    rationales=header.get("rationales", "curated"),
                    rationale_provenance=tuple(header.get("rationale_provenance") or ()),
                    excluded_provenance=header.get("excluded_provenance_counts"))


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
        raise TrainingError("The curated set is empty: no session has a submitted label from the recipe's score "
                            "sources.",
                            "Submit curated labels in the Review tab first, check the recipe's score_sources, or "
                            "learn clients' self-reported scores without rationales (rationales: curated_or_none).")
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
