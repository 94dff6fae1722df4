"""A small curated store for the publish and interchange tests (issue 22): six sample sessions of
six clients with quoting suggestions, and submitted labels of every kind the published set describes.

* sample-en-01, -02: shared, client-anchored (the client's score), rationales edited from the
  model's suggestion (``edited``, ``prediction_id`` set) on items 1-6, written (``expert``) on
  7-12, evidence [1];
* sample-en-04: items 1-12 coded independently by ``ann`` and ``bob`` (expert-judged scores,
  ``expert``): equal on odd items, one apart on even items;
* sample-en-05: shared, the model's text accepted unchanged (``accepted``) on items 1-12;
* sample-en-06, -07: shared, ``expert``, expert-judged scores 3.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from care_model.core.records import SHARED, Label

SESSIONS = ["sample-en-01", "sample-en-02", "sample-en-04", "sample-en-05", "sample-en-06", "sample-en-07"]


def curated_store(root: Path):
    from store.formats import read_files
    from studio.bootstrap import DATA_DIR, SESSIONS_FILE
    from studio_testing import make_store

    sessions = [s for s in read_files([DATA_DIR / SESSIONS_FILE], "jsonl").sessions if s.id in SESSIONS]
    repo = make_store(root, sessions=sessions)
    batch = []
    for sid in SESSIONS:
        s = repo.get_session(sid)
        preds = {p.item: p for p in repo.predictions(sid)}
        for i in range(1, 13):
            p = preds[i]
            if sid in ("sample-en-01", "sample-en-02"):
                edited = i <= 6
                text = p.rationale + " The expert adds: this is consistent." if edited else f"Expert text {sid}/{i}."
                batch.append(Label(session_id=sid, item=i, annotator=SHARED, score=s.ratings["client"][i],
                                   rationale=text, evidence=[1], status="submitted", prediction_id=p.id,
                                   score_source="client_self_report",
                                   rationale_source="edited" if edited else "expert"))
            elif sid == "sample-en-04":
                for who, score in (("ann", 3), ("bob", 3 if i % 2 else 4)):
                    batch.append(Label(session_id=sid, item=i, annotator=who, score=score, evidence=[2],
                                       rationale=f"{who} judged {score}.", status="submitted", prediction_id=p.id,
                                       score_source="expert", rationale_source="expert"))
            elif sid == "sample-en-05":
                batch.append(Label(session_id=sid, item=i, annotator=SHARED, score=p.score, rationale=p.rationale,
                                   evidence=list(p.evidence), status="submitted", prediction_id=p.id,
                                   score_source="expert", rationale_source="accepted"))
            else:
                batch.append(Label(session_id=sid, item=i, annotator=SHARED, score=3, rationale=f"Judged 3 ({i}).",
                                   status="submitted", prediction_id=p.id, score_source="expert",
                                   rationale_source="expert"))
    repo.save_labels([(lab, 0) for lab in batch], actor="ann")
    repo.assign(["sample-en-04"], ["ann", "bob"], actor="admin", mode="independent")
    repo.assign([s for s in SESSIONS if s != "sample-en-04"], ["ann"], actor="admin", mode="shared")
    return repo


def store_digest(root: Path) -> str:
    """sha256 over every file of the store folder (names and bytes), the lock file aside."""
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and "lock" not in path.name:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


INTERCHANGE_SESSIONS = ["sample-en-03", "sample-en-08"]   # client-anchored; expert-judged (set below)


def interchange_store(root: Path):
    """Two sample sessions with quoting suggestions and the test users; sample-en-08 expert-judged.
    The Label Studio and Argilla fixtures (tests/fixtures/interchange/) were exported from this store."""
    from store.formats import read_files
    from studio.bootstrap import DATA_DIR, SESSIONS_FILE
    from studio_testing import make_store

    sessions = [s for s in read_files([DATA_DIR / SESSIONS_FILE], "jsonl").sessions if s.id in INTERCHANGE_SESSIONS]
    repo = make_store(root, sessions=sessions)
    repo.collection("curation_modes").put({"id": "sample-en-08", "mode": "expert_judged", "show_ratings": None},
                                          actor="test")
    return repo
