"""care_model.training.versions: candidates, admin-only promotion, one-step rollback, all audited."""
from __future__ import annotations

import pytest

from care_model.jobs import versions as versions_job
from care_model.training import versions as V
from care_model.core.errors import ModelError, PermissionDenied, ValidationError
from care_model.inference.models import ModelSpec, model_version_id
from store import Repository


def fake_run(tmp_path, base, name: str, status: str = "done") -> dict:
    """A finished run's record with a real (tiny) adapter folder, as execute_run writes it."""
    adapter = tmp_path / name / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
    (adapter / "adapter_model.safetensors").write_bytes(name.encode())
    return {"run_id": name, "run_dir": str(tmp_path / name), "status": status, "adapter": str(adapter),
            "config": {"base_model": str(base)}, "data_hash": f"hash-{name}", "metrics": {"validation_loss_after": 1.0},
            "evaluation": {"versions": {}, "predictions": {"candidate": []}}, "code_commit": {"commit": "abc"},
            "baseline": {"version_id": "the-base"}}


def test_register_promote_rollback_with_audit(repo, tmp_path, tiny_model_dir):
    base = str(tiny_model_dir)
    r1 = V.register_candidate(repo, fake_run(tmp_path, base, "run-1"), actor="boss")
    assert r1["status"] == "candidate" and r1["data_hash"] == "hash-run-1" and r1["parent"] == "the-base"
    assert r1["id"] == model_version_id(ModelSpec(base=base, adapter=r1["adapter"]))
    assert "predictions" not in r1["evaluation"]
    assert V.register_candidate(repo, fake_run(tmp_path / "again", base, "run-1"), actor="boss")["id"] == r1["id"]
    assert V.active_version_id(repo) is None and V.active_spec(repo) == ModelSpec()

    V.promote(repo, r1["id"], actor="boss", reason="better Goal r")
    assert V.active_version_id(repo) == r1["id"]
    assert V.active_spec(repo) == ModelSpec(base=base, adapter=r1["adapter"])
    base_id = model_version_id(ModelSpec(base=base))
    assert V.get_version(repo, base_id)["kind"] == "base"                # the base became a rollback target

    r2 = V.register_candidate(repo, fake_run(tmp_path, base, "run-2"), actor="boss")
    V.promote(repo, r2["id"], actor="boss")
    assert V.get_version(repo, r1["id"])["status"] == "retired"
    V.rollback(repo, actor="boss", reason="r2 writes worse rationales")    # one action: back to r1
    assert V.active_version_id(repo) == r1["id"]
    assert V.get_version(repo, r2["id"])["status"] == "retired"
    V.rollback(repo, base_id, actor="boss")                                 # any earlier version, incl. the base
    assert V.active_version_id(repo) == base_id and V.active_spec(repo).adapter is None

    history = V.activation_history(repo)
    assert [(h["action"], h["from"], h["to"], h["who"]) for h in history] == [
        ("promote", base_id, r1["id"], "boss"), ("promote", r1["id"], r2["id"], "boss"),
        ("rollback", r2["id"], r1["id"], "boss"), ("rollback", r1["id"], base_id, "boss")]
    assert history[0]["reason"] == "better Goal r"
    actions = [(a["entity"], a["action"]) for a in repo.audit(entity_id=r1["id"])]
    assert ("model_versions", "register") in actions and ("model_versions", "promote") in actions
    assert ("model_versions", "retire") in actions and ("model_versions", "rollback") in actions


def test_only_admins_change_versions(repo, tmp_path, tiny_model_dir):
    r1 = V.register_candidate(repo, fake_run(tmp_path, tiny_model_dir, "run-1"), actor="boss")
    with pytest.raises(PermissionDenied, match="ann .annotator. may not promote"):
        V.promote(repo, r1["id"], actor="ann")
    with pytest.raises(PermissionDenied):
        V.rollback(repo, actor="ann")
    with pytest.raises(PermissionDenied):
        V.reject(repo, r1["id"], actor="ann")
    assert V.active_version_id(repo) is None
    assert [a for a in repo.audit() if a["action"] in ("promote", "rollback", "reject")] == []


def test_refusals_name_the_fix(repo, tmp_path, tiny_model_dir):
    with pytest.raises(ValidationError, match="only finished runs"):
        V.register_candidate(repo, fake_run(tmp_path, tiny_model_dir, "run-c", status="cancelled"), actor="boss")
    r1 = V.register_candidate(repo, fake_run(tmp_path, tiny_model_dir, "run-1"), actor="boss")
    r2 = V.register_candidate(repo, fake_run(tmp_path, tiny_model_dir, "run-2"), actor="boss")
    with pytest.raises(ValidationError, match="never active"):
        V.rollback(repo, r2["id"], actor="boss")
    V.promote(repo, r1["id"], actor="boss")
    with pytest.raises(ValidationError, match="already the active"):
        V.promote(repo, r1["id"], actor="boss")
    V.reject(repo, r2["id"], actor="boss", reason="worse")
    assert V.get_version(repo, r2["id"])["status"] == "rejected"
    for p in (tmp_path / "run-2" / "adapter").iterdir():
        p.unlink()
    with pytest.raises(ModelError, match="holds no adapter"):
        V.promote(repo, r2["id"], actor="boss")
    assert V.active_version_id(repo) == r1["id"]


def test_cli_lists_promotes_and_rolls_back(tmp_path, tiny_model_dir, capsys):
    store = tmp_path / "store"
    with Repository(store) as repo:
        repo.add_user("boss", "password123", "admin")
        repo.add_user("ann", "password123", "annotator")
        r1 = V.register_candidate(repo, fake_run(tmp_path, tiny_model_dir, "run-1"), actor="boss")
    assert versions_job.main(["--store", str(store), "list"]) == 0
    assert "candidate" in capsys.readouterr().out
    assert versions_job.main(["--store", str(store), "--actor", "ann", "promote", r1["id"]]) == 2
    assert "may not promote" in capsys.readouterr().err
    assert versions_job.main(["--store", str(store), "--actor", "boss", "promote", r1["id"]]) == 0
    assert capsys.readouterr().out.strip() == f"active: {r1['id']}"
    assert versions_job.main(["--store", str(store), "--actor", "boss", "rollback"]) == 0
    assert capsys.readouterr().out.strip() == f"active: {model_version_id(ModelSpec(base=str(tiny_model_dir)))}"
    assert versions_job.main(["--store", str(store), "history"]) == 0
    out = capsys.readouterr().out
    assert "boss promote" in out and "boss rollback" in out
