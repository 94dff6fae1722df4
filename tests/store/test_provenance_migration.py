"""store.migrations 2 -> 3: labels stored before provenance get a ``rationale_source``."""
from __future__ import annotations

from care_model.core.records import SHARED, Label
from store import Repository
from store.files import dumps, read_json
from store.storage import FileSet

from factories import make_prediction, make_session


def test_old_labels_get_accepted_or_unknown_provenance(tmp_path):
    root = tmp_path / "v2"
    with Repository(root) as repo:
        repo.add_sessions([make_session("s1")])
        repo.add_predictions([make_prediction("s1", i, score=3) for i in (1, 2, 3)])  # rationale "model says 3"
        old = [Label(session_id="s1", item=1, annotator=SHARED, score=3, rationale="model says 3",
                     accepted_suggestion="s1|m1|1"),                                  # recorded as accepted
               Label(session_id="s1", item=2, annotator=SHARED, score=3, rationale="model   says 3"),  # equal text
               Label(session_id="s1", item=3, annotator=SHARED, score=2, rationale="my own words")]
        for lab in old:
            repo.save_label(lab, actor="x", expected_version=0)
    files = FileSet(root)
    for path in root.glob("sessions/*/labels.json"):
        table = files.db(str(path.relative_to(root))).table("labels")
        for doc in table.all():  # as version 2 stored them: no provenance fields
            table.update(lambda d: (d.pop("rationale_source"), d.pop("rationale_edit_distance")), doc_ids=[doc.doc_id])
    meta = read_json(root / "meta.json")
    (root / "meta.json").write_bytes(dumps({**meta, "schema_version": 2}))
    with Repository(root) as repo:
        assert repo.meta["schema_version"] == 3 and repo.meta["migrated_from"] == 2
        got = {lab.item: (lab.rationale_source, lab.rationale_edit_distance) for lab in repo.labels()}
        assert got == {1: ("accepted", 0), 2: ("accepted", 0), 3: ("unknown", None)}
        raw = FileSet(root).db(f"sessions/{repo._keys['s1']}/labels.json").table("labels").all()
    assert sorted(d["rationale_source"] for d in raw) == ["accepted", "accepted", "unknown"]  # stored, not defaulted
