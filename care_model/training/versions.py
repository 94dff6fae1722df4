"""Model versions: candidates with lineage, the active version, promotion and rollback.

A version document: ``id, kind ("base" | "lora"), status, base, adapter, run_id, run_dir,
data_hash, config, metrics, evaluation, parent (the version it was compared with),
code_commit, learned_from (score sources, rationales policy and counts of its training snapshot:
:func:`care_model.text.snapshot.learned_from`), activations (when it was made active), created_by``.

Statuses: ``base`` (a plain base model, registered so it can be rolled back to), ``candidate``
(a finished run, waiting for an admin), ``active``, ``retired`` (was active), ``rejected``.

Actions (all need ``repo.role_of(actor) == "admin"`` except registration, which the run's owner does):

* :func:`register_candidate` -- audit action ``register``;
* :func:`promote` -- makes a candidate the active version (``promote`` on the settings document
  and the version, ``retire`` on the one it replaces);
* :func:`rollback` -- makes an earlier version active again in one call (``rollback``); without
  ``to_version`` it goes back to the previous active version;
* :func:`reject` -- a candidate the admin does not want (``reject``).


The command line: ``care versions`` (:mod:`care_model.jobs.versions`).
"""
from __future__ import annotations

from pathlib import Path

from care_model.core.errors import ModelError, NotFoundError, PermissionDenied, ValidationError
from care_model.core.records import now_iso
from care_model.inference.models import ModelSpec, model_version_id
from care_model.text.snapshot import learned_from

VERSIONS = "model_versions"
SETTINGS = "settings"
ACTIVE_DOC = "active_model"
STATUSES = ("base", "candidate", "active", "retired", "rejected")


def require_admin(repo, actor: str, what: str) -> None:
    role = repo.role_of(actor)
    if role != "admin":
        raise PermissionDenied(f"{actor} ({role}) may not {what}.",
                               "Ask an admin to do it; only admins manage model versions.")


# ----------------------------------------------------------------------------- reading
def list_versions(repo) -> list[dict]:
    """All versions, oldest first."""
    return sorted(repo.collection(VERSIONS).all(), key=lambda d: d.get("created_at", ""))


def get_version(repo, version_id: str) -> dict:
    doc = repo.collection(VERSIONS).get(version_id)
    if doc is None:
        known = ", ".join(d["id"] for d in list_versions(repo)) or "none yet"
        raise NotFoundError(f"No model version {version_id!r}.", f"Use one of: {known}.")
    return doc


def active_setting(repo) -> dict | None:
    return repo.collection(SETTINGS).get(ACTIVE_DOC)


def active_version_id(repo) -> str | None:
    doc = active_setting(repo)
    return doc.get("model_version") if doc else None


def active_version(repo) -> dict | None:
    vid = active_version_id(repo)
    return repo.collection(VERSIONS).get(vid) if vid else None


def active_spec(repo, default: ModelSpec | None = None) -> ModelSpec:
    """The spec the Predictor should load: the active version, else ``default`` (the embedded SmolLM2)."""
    doc = active_setting(repo)
    if not doc:
        return default or ModelSpec()
    return ModelSpec(base=doc["base"], adapter=doc.get("adapter") or None)


def activation_history(repo) -> list[dict]:
    """Every change of the active version (oldest first): at, who, action, from, to."""
    rows = []
    for a in repo.collection(SETTINGS).audit():
        if a.get("entity_id") != ACTIVE_DOC:
            continue
        rows.append({"at": a["at"], "who": a["who"], "action": a["action"],
                     "from": (a.get("after") or {}).get("previous"), "to": (a.get("after") or {}).get("model_version"),
                     "reason": (a.get("after") or {}).get("reason", "")})
    return rows


# ----------------------------------------------------------------------------- registering
def register_base_version(repo, base: str, *, actor: str = "system") -> dict:
    """Register a plain base model (idempotent), so it can be compared with and rolled back to."""
    vid = model_version_id(ModelSpec(base=base))
    existing = repo.collection(VERSIONS).get(vid)
    if existing:
        return existing
    doc = {"id": vid, "kind": "base", "status": "base", "base": base, "adapter": None, "run_id": None,
           "data_hash": None, "config": None, "metrics": None, "parent": None, "code_commit": None,
           "activations": [], "created_by": actor}
    return repo.collection(VERSIONS).put(doc, actor=actor, action="register")


def baseline_of(repo, default_base: str) -> dict:
    """The version a new candidate is compared with: the active one, else the base model."""
    doc = active_version(repo)
    if doc is not None:
        return doc
    return register_base_version(repo, default_base)


def register_candidate(repo, run: dict, *, actor: str) -> dict:
    """Register a finished run (its ``run.json`` content) as a candidate version.

    Idempotent for the same adapter: registering the same run twice returns the stored version.
    """
    if run.get("status") != "done" or not run.get("adapter"):
        raise ValidationError(f"Run {run.get('run_id')!r} has status {run.get('status')!r}; only finished runs "
                              "become candidates.", "Finish (or resume) the run first.")
    adapter = str(Path(run["adapter"]).resolve())
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelError(f"The run's adapter folder {adapter} has no adapter_config.json.",
                         "The run did not finish writing its adapter; resume it (--resume).")
    base = run["config"]["base_model"]
    vid = run.get("version_id") or model_version_id(ModelSpec(base=base, adapter=adapter))
    existing = repo.collection(VERSIONS).get(vid)
    if existing:
        return existing
    evaluation = dict(run.get("evaluation") or {})
    evaluation.pop("predictions", None)
    doc = {"id": vid, "kind": "lora", "status": "candidate", "base": base, "adapter": adapter,
           "run_id": run.get("run_id"), "run_dir": run.get("run_dir"), "data_hash": run.get("data_hash"),
           "config": run.get("config"), "metrics": run.get("metrics"), "evaluation": evaluation,
           "parent": (run.get("baseline") or {}).get("version_id"), "code_commit": run.get("code_commit"),
           "split": run.get("split"), "learned_from": learned_from(run.get("snapshot")), "activations": [],
           "created_by": actor}
    return repo.collection(VERSIONS).put(doc, actor=actor, action="register")


# ----------------------------------------------------------------------------- changing the active version
def _activate(repo, target: dict, actor: str, action: str, reason: str, implicit_previous: str | None = None) -> dict:
    if target.get("adapter") and not (Path(target["adapter"]) / "adapter_config.json").is_file():
        raise ModelError(f"Version {target['id']} points to {target['adapter']}, which holds no adapter any more.",
                         "Restore the run folder from a backup, or choose another version.")
    settings = repo.collection(SETTINGS)
    current = settings.get(ACTIVE_DOC)
    prev_id = current.get("model_version") if current else implicit_previous
    if prev_id == target["id"]:
        raise ValidationError(f"{target['id']} is already the active version.", "Choose another version.")
    stamp = now_iso()
    settings.put({"id": ACTIVE_DOC, "model_version": target["id"], "base": target["base"],
                  "adapter": target.get("adapter"), "previous": prev_id, "reason": reason,
                  "changed_at": stamp}, actor=actor, action=action,
                 expected_version=current["version"] if current else None)
    versions = repo.collection(VERSIONS)
    if prev_id:
        prev = versions.get(prev_id)
        if prev is not None and prev["status"] == "active":
            prev["status"] = "retired"
            versions.put(prev, actor=actor, action="retire")
    target = versions.get(target["id"])
    target["status"] = "active"
    target["activations"] = list(target.get("activations") or []) + [{"at": stamp, "by": actor, "action": action}]
    return versions.put(target, actor=actor, action=action)


def promote(repo, version_id: str, *, actor: str, reason: str = "") -> dict:
    """Make a candidate the active version (admins only); recorded in the audit trail."""
    require_admin(repo, actor, "promote a model version")
    target = get_version(repo, version_id)
    if active_version_id(repo) == version_id:
        raise ValidationError(f"{version_id} is already the active version.", "Choose another version.")
    if target["status"] not in ("candidate", "base", "rejected"):
        raise ValidationError(f"{version_id} has status {target['status']!r}; promote takes a candidate.",
                              "Use rollback to return to a version that was active before.")
    implicit = None
    if active_version_id(repo) is None:  # the base model was in use: make it a rollback target
        implicit = register_base_version(repo, target["base"], actor=actor)["id"]
        implicit = None if implicit == target["id"] else implicit   # promoting the base model itself
    return _activate(repo, target, actor, "promote", reason, implicit_previous=implicit)


def rollback(repo, to_version: str | None = None, *, actor: str, reason: str = "") -> dict:
    """Make an earlier version active again (admins only). ``to_version=None``: the previous active one."""
    require_admin(repo, actor, "roll back the model version")
    if to_version is None:
        current = active_setting(repo)
        to_version = (current or {}).get("previous")
        if not to_version:
            base = (current or {}).get("base")
            if not base:
                raise ValidationError("There is no earlier version to roll back to.",
                                      "Nothing to do: no version was promoted yet.")
            to_version = register_base_version(repo, base, actor=actor)["id"]
    target = get_version(repo, to_version)
    if target["status"] not in ("retired", "base") and target.get("kind") != "base" and not target.get("activations"):
        raise ValidationError(f"{to_version} was never active (status {target['status']!r}), so it is not a rollback "
                              f"target.",
                              "Promote it instead, after looking at its metrics.")
    return _activate(repo, target, actor, "rollback", reason)


def reject(repo, version_id: str, *, actor: str, reason: str = "") -> dict:
    """Mark a candidate as not wanted (admins only); the active version stays."""
    require_admin(repo, actor, "reject a model version")
    doc = get_version(repo, version_id)
    if doc["status"] != "candidate":
        raise ValidationError(f"{version_id} has status {doc['status']!r}; only candidates can be rejected.",
                              "Pick a candidate.")
    doc["status"], doc["rejected_reason"] = "rejected", reason
    return repo.collection(VERSIONS).put(doc, actor=actor, action="reject")


# ----------------------------------------------------------------------------- quality against baselines
QUALITY_KEYS = ("beats_baselines", "verdict", "n_sessions", "n_clients", "score_field", "evaluated_at",
                "assumed_untrained", "report")


def record_quality(repo, version_id: str, quality: dict, *, actor: str) -> dict:
    """Store ``quality`` (held-out evaluation against the constant baselines:
    :func:`care_model.stats.version_quality.quality_record`) on the version; audit action ``quality``."""
    missing = [k for k in QUALITY_KEYS if k not in quality]
    if missing:
        raise ValidationError(f"The quality record of {version_id} lacks {', '.join(missing)}.",
                              "Build it with care_model.stats.version_quality.quality_record().")
    doc = get_version(repo, version_id)
    doc["quality"] = dict(quality)
    return repo.collection(VERSIONS).put(doc, actor=actor, action="quality")


def version_quality(doc: dict | None) -> dict | None:
    """The recorded quality of a version document, or None when it was never evaluated against the baselines."""
    return (doc or {}).get("quality") or None
