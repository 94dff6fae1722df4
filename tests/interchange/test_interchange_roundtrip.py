"""Label Studio and Argilla round trips (care_model.jobs.interchange, interchange.label_studio/argilla):
export, the tool's edits (fixtures in the tool's export format, tests/fixtures/interchange/), import;
labels arrive with their scores, rationales, evidence and provenance, and nothing else changes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from publish_testing import interchange_store, store_digest

from care_model.core.errors import ConflictError, ValidationError
from care_model.core.records import SHARED, Label
from care_model.interchange.argilla import read_responses
from care_model.interchange.label_studio import read_annotations
from care_model.jobs.interchange import export_argilla, export_label_studio, import_answers

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "interchange"
UUID = "0b6f6b1e-3c55-4b8e-9a51-6f2d3f1b9c21"


def _digest_except(root: Path, session_id: str, repo) -> str:
    """The store's digest with that session's labels file left out."""
    key = repo._keys[session_id]
    skip = root / "sessions" / key / "labels.json"
    import hashlib

    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "lock" not in path.name and path != skip:
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def repo(tmp_path):
    r = interchange_store(tmp_path / "store")
    yield r
    r.close()


def test_the_export_is_what_the_fixtures_were_made_from(repo, tmp_path):
    export_label_studio(repo, tmp_path / "ls", ["sample-en-03"])
    task = json.loads((tmp_path / "ls" / "tasks.json").read_text())[0]
    assert task["data"] == json.loads((FIX / "label_studio_export.json").read_text())[0]["data"]
    pred = task["predictions"][0]
    assert pred["model_version"] == "test-model" and 0 < pred["score"] <= 1
    ratings = [r for r in pred["result"] if r["type"] == "rating"]
    assert len(ratings) == 12 and all(0 < r["score"] <= 1 for r in ratings)
    assert {r["type"] for r in pred["result"]} == {"rating", "textarea", "paragraphlabels"}
    config = (tmp_path / "ls" / "labeling_config.xml").read_text()
    assert 'layout="dialogue"' in config and config.count("<Rating ") == 12 and config.count("<TextArea ") == 12
    assert oct((tmp_path / "ls" / "tasks.json").stat().st_mode)[-3:] == "600"
    export_argilla(repo, tmp_path / "ar", ["sample-en-08"], name="care-fixture")
    mine = json.loads((tmp_path / "ar" / "records.json").read_text())
    fixture = json.loads((FIX / "argilla" / "records.json").read_text())
    assert [r["fields"] for r in mine[:4]] == [r["fields"] for r in fixture]
    assert mine[0]["suggestions"]["score"]["agent"] == "test-model"


def test_label_studio_annotations_arrive_as_labels_and_nothing_else_changes(repo, tmp_path):
    root = tmp_path / "store"
    before = _digest_except(root, "sample-en-03", repo)
    answers = read_annotations(json.loads((FIX / "label_studio_export.json").read_text()))
    assert [(a.item, a.user_key) for a in answers] == [(1, "1"), (2, "1"), (3, "1")]  # the cancelled one skipped
    out = import_answers(repo, answers, {"1": "ann"}, tool="Label Studio")
    assert out == {"labels": 3, "sessions": 1, "provenance": {"accepted": 1, "edited": 1, "expert": 1}}
    client = repo.get_session("sample-en-03").ratings["client"]
    preds = {p.item: p for p in repo.predictions("sample-en-03")}
    labs = {lab.item: lab for lab in repo.labels("sample-en-03")}
    assert set(labs) == {1, 2, 3}
    assert all(lab.annotator == SHARED and lab.status == "submitted" for lab in labs.values())
    assert [labs[i].score for i in (1, 2, 3)] == [client[1], client[2], client[3]]
    assert all(lab.score_source == "client_self_report" and lab.updated_by == "ann" for lab in labs.values())
    assert labs[1].rationale == preds[1].rationale and labs[1].evidence == preds[1].evidence
    assert labs[2].rationale == preds[2].rationale + " The counselor reflects it back." and labs[2].evidence == [4, 5]
    assert labs[3].rationale_source == "expert" and labs[3].evidence == [6]
    assert labs[2].prediction_id == preds[2].id
    assert _digest_except(root, "sample-en-03", repo) == before
    # the same file again: the labels it expected to create exist now -> a conflict, nothing written
    again = store_digest(root)
    with pytest.raises(ConflictError, match="Nothing was imported"):
        import_answers(repo, answers, {"1": "ann"}, tool="Label Studio")
    assert store_digest(root) == again


def test_refusals_write_nothing(repo, tmp_path):
    root = tmp_path / "store"
    data = json.loads((FIX / "label_studio_export.json").read_text())
    before = store_digest(root)
    with pytest.raises(ValidationError, match='--user-map "1=USERNAME"'):
        import_answers(repo, read_annotations(data), {}, tool="Label Studio")
    # a client-anchored item scored unlike the client's rating is refused, as the app refuses it
    data[0]["annotations"][0]["result"][0]["value"]["rating"] = 1 + repo.get_session("sample-en-03").ratings[
        "client"][1] % 5
    with pytest.raises(ValidationError, match="Nothing was imported"):
        import_answers(repo, read_annotations(data), {"1": "ann"}, tool="Label Studio")
    assert store_digest(root) == before
    # someone saved item 2 in the store after the export: conflict, and the other items are not written either
    repo.save_label(Label(session_id="sample-en-03", item=2, annotator=SHARED,
                          score=repo.get_session("sample-en-03").ratings["client"][2],
                          rationale="saved in the app meanwhile", score_source="client_self_report",
                          rationale_source="expert"), actor="bob", expected_version=0)
    saved = store_digest(root)
    data = json.loads((FIX / "label_studio_export.json").read_text())
    with pytest.raises(ConflictError, match="since the Label Studio export"):
        import_answers(repo, read_annotations(data), {"1": "ann"}, tool="Label Studio")
    assert store_digest(root) == saved and len(repo.labels("sample-en-03")) == 1


def test_argilla_responses_arrive_as_labels_and_nothing_else_changes(repo, tmp_path):
    root = tmp_path / "store"
    before = _digest_except(root, "sample-en-08", repo)
    answers = read_responses(json.loads((FIX / "argilla" / "records.json").read_text()))
    assert [(a.item, a.score, a.evidence) for a in answers][1:] == [(2, 4, [1, 3]), (3, 5, [2])]
    out = import_answers(repo, answers, {UUID: "bob"}, tool="Argilla")
    assert out["labels"] == 3 and out["provenance"] == {"accepted": 1, "edited": 1, "expert": 1}
    labs = {lab.item: lab for lab in repo.labels("sample-en-08")}
    preds = {p.item: p for p in repo.predictions("sample-en-08")}
    assert [labs[i].score for i in (1, 2, 3)] == [2, 4, 5] and 4 not in labs
    assert all(lab.score_source == "expert" and lab.updated_by == "bob" for lab in labs.values())
    assert labs[1].rationale == preds[1].rationale and labs[1].evidence == preds[1].evidence
    assert labs[3].rationale == "A new rationale: the client names the goal."
    assert _digest_except(root, "sample-en-08", repo) == before


def test_the_command_line_imports_argilla_folders(repo, tmp_path, capsys):
    from care_model.cli import main

    repo.close()
    assert main(["interchange", "argilla-import", "--store", str(tmp_path / "store"), "--user-map", f"{UUID}=bob",
                 str(FIX / "argilla")]) == 0
    assert "Imported 3 labels of 1 sessions" in capsys.readouterr().out
    assert main(["store", "interchange", "label-studio-import", "--store", str(tmp_path / "store"),
                 str(FIX / "label_studio_export.json")]) == 2
    assert "cannot be mapped" in capsys.readouterr().err


def test_the_argilla_files_read_back_with_the_argilla_sdk():
    """The SDK's own classes parse the settings and records (it needs a client object; none connects)."""
    rg = pytest.importorskip("argilla")
    import types

    stub = object.__new__(rg.Argilla)
    stub.api = types.SimpleNamespace(fields=None, questions=None, metadata=None, vectors=None, records=None)
    saved, rg.Argilla._default_client = getattr(rg.Argilla, "_default_client", None), stub
    try:
        settings = rg.Settings._from_dict(json.loads((FIX / "argilla" / ".argilla" / "settings.json").read_text()))
        assert [q.name for q in settings.questions] == ["score", "rationale", "evidence"]
        assert settings.questions[0].values == [1, 2, 3, 4, 5] and settings.fields[0].type == "chat"
        records = [rg.Record.from_dict(r) for r in json.loads((FIX / "argilla" / "records.json").read_text())]
        assert records[0].suggestions["score"].agent == "test-model"
        assert [(r.question_name, r.value) for r in records[1].responses][0] == ("score", 4)
    finally:
        rg.Argilla._default_client = saved


def test_the_label_studio_config_follows_its_documented_rules(tmp_path):
    """Every control names an object tag (toName), names are unique, Rating's maxRating is the scale,
    predictions refer to existing controls with values of their type; with label-studio-sdk
    installed (not a dependency: it pins numpy 2.2) its parser validates config and prediction too."""
    import xml.etree.ElementTree as ET

    from care_model.interchange.label_studio import labeling_config

    config = labeling_config()
    root = ET.fromstring(config)
    objects = {e.get("name") for e in root.iter() if e.tag == "Paragraphs"}
    controls = [e for e in root.iter() if e.tag in ("Rating", "TextArea", "ParagraphLabels")]
    assert objects == {"dialogue"} and all(c.get("toName") in objects for c in controls)
    names = [c.get("name") for c in controls]
    assert len(names) == len(set(names)) == 25
    assert {c.get("maxRating") for c in controls if c.tag == "Rating"} == {"5"}
    task = json.loads((FIX / "label_studio_export.json").read_text())[0]
    for region in task["annotations"][0]["result"]:
        assert region["from_name"] in names and region["to_name"] == "dialogue"
    try:
        from label_studio_sdk.label_interface import LabelInterface
    except ImportError:
        return
    li = LabelInterface(config)
    assert li.validate_task({"data": task["data"]}) and li.validate_annotation(task["annotations"][0])
    repo = interchange_store(tmp_path / "store")
    export_label_studio(repo, tmp_path / "ls")
    repo.close()
    for t in json.loads((tmp_path / "ls" / "tasks.json").read_text()):
        assert li.validate_prediction(t["predictions"][0], return_errors=True) == []
