"""The label methods of :class:`store.repository.Repository` (a mixin): reading, checking and
saving expert labels with their audit, and restoring labels from an export.

A label save rewrites only that session's ``labels.json`` journal (a few hundred bytes, fsynced),
together with its audit entry, in one transaction; a stale ``expected_version`` raises
:class:`~care_model.core.errors.ConflictError` with the current label. The mixin uses the repository's
``_lock``, ``files``, ``_keys``, ``_rel`` and ``_session_doc``.
"""
from __future__ import annotations

import copy

from tinydb import Query

from care_model.core.errors import ConflictError, ValidationError
from care_model.core.records import CHANGE_REASONS, LABEL_STATUSES, Label, check_score_source, label_id, now_iso
from care_model.core.provenance import RATIONALE_SOURCES
from care_model.core.wai import load_form

from .journal import replace_with

Q = Query()


class LabelsMixin:
    def _labels_db(self, session_id: str):
        return self.files.db(self._rel(session_id, "labels"))

    def get_label(self, session_id: str, item: int, annotator: str) -> Label | None:
        with self._lock:
            doc = self._labels_db(session_id).table("labels").get(Q.id == label_id(session_id, item, annotator))
            return Label.from_dict(copy.deepcopy(dict(doc))) if doc else None

    def labels(self, session_id: str | None = None, *, annotator: str | None = None,
               status: str | None = None) -> list[Label]:
        with self._lock:
            sids = [session_id] if session_id is not None else sorted(self._keys)
            out = []
            for sid in sids:
                for d in self._labels_db(sid).table("labels").all():
                    if (annotator is None or d["annotator"] == annotator) and (status is None or d["status"] == status):
                        out.append(Label.from_dict(copy.deepcopy(dict(d))))
        return sorted(out, key=lambda lab: (lab.session_id, lab.item, lab.annotator))

    def _check_label(self, label: Label) -> None:
        doc = self._session_doc(label.session_id)
        form = load_form(doc.get("form", "wai-sr"))
        label.item = form.check_item(label.item)
        if label.score is not None:
            label.score = form.check_score(label.score, label.item)
        check_score_source(label, {int(k): v for k, v in ((doc.get("ratings") or {}).get("client") or {}).items()})
        if label.status not in LABEL_STATUSES:
            raise ValidationError(f"Unknown label status {label.status!r}.", f"Use one of {', '.join(LABEL_STATUSES)}.")
        if label.status == "submitted" and label.score is None:
            raise ValidationError(f"Item {label.item} cannot be submitted without a score.",
                                  "Choose a score from 1 to 5.")
        if label.rationale_source not in RATIONALE_SOURCES:
            raise ValidationError(f"Unknown rationale source {label.rationale_source!r} on item {label.item}.",
                                  f"Use one of {', '.join(RATIONALE_SOURCES)}.")
        bad = [r for r in label.change_reasons if r not in CHANGE_REASONS]
        if bad:
            raise ValidationError(f"Unknown change reason(s) {bad}.", f"Use {', '.join(CHANGE_REASONS)}.")
        n_turns = len(doc["turns"])
        wrong = [i for i in label.evidence if not isinstance(i, int) or not 0 <= i < n_turns]
        if wrong:
            raise ValidationError(f"Evidence turns {wrong} are not in session {label.session_id!r} (turns "
                                  f"0-{n_turns - 1}).",
                                  "Pick evidence among the session's numbered turns.")
        label.evidence = sorted(set(label.evidence))

    def _save_label_locked(self, label: Label, actor: str, expected_version: int, action: str | None = None) -> Label:
        label = copy.deepcopy(label)
        self._check_label(label)
        db = self._labels_db(label.session_id)
        table = db.table("labels")
        current = table.get(Q.id == label.id)
        cur_version = int(current["version"]) if current else 0
        if cur_version != expected_version:
            cur = Label.from_dict(copy.deepcopy(dict(current))) if current else None
            raise ConflictError(
                f"Item {label.item} of session {label.session_id} was saved by {cur.updated_by if cur else '?'} "
                f"at {cur.updated_at if cur else '?'} (version {cur_version}) after you loaded version "
                                f"{expected_version}.",
                "Compare your version with theirs, choose or merge, and save again on top of the current version.",
                current=cur,
            )
        stamp = now_iso()
        label.version = cur_version + 1
        label.updated_at = stamp
        label.updated_by = actor
        label.created_at = current["created_at"] if current else stamp
        label.created_by = current.get("created_by", actor) if current else actor
        new = label.to_dict()
        with self.files.transaction():
            if current is None:
                table.insert(new)
            else:
                table.update(replace_with(new), doc_ids=[current.doc_id])
            db.table("audit").insert({
                "at": stamp, "who": actor, "entity": "label", "entity_id": label.id,
                "action": action or ("create" if current is None else f"save:{label.status}"),
                "before": copy.deepcopy(dict(current)) if current else None, "after": copy.deepcopy(new),
            })
        return Label.from_dict(copy.deepcopy(new))

    def save_label(self, label: Label, *, actor: str, expected_version: int, action: str | None = None) -> Label:
        """Save an expert label durably; raises ConflictError if someone saved it since ``expected_version``."""
        with self._lock:
            if label.session_id not in self._keys:
                self._rel(label.session_id, "labels")
            return self._save_label_locked(label, actor, expected_version, action)

    def save_labels(self, labels: list[tuple[Label, int]], *, actor: str, action: str | None = None) -> list[Label]:
        """Save several labels (each with its expected version) all or nothing, e.g. a submit."""
        with self._lock, self.files.transaction():
            return [self._save_label_locked(lab, actor, ver, action) for lab, ver in labels]

    def _import_label_locked(self, label: Label, actor: str) -> bool:
        """Restore a label from an export as it was (version, timestamps); skip if identical."""
        self._check_label(label)
        db = self._labels_db(label.session_id)
        current = db.table("labels").get(Q.id == label.id)
        new = label.to_dict()
        if current is not None:
            if dict(current) == new:
                return False
            if int(current["version"]) >= label.version:
                raise ValidationError(
                    f"Label {label.id!r} in the file (version {label.version}) is not newer than the stored one "
                    f"(version {current['version']}).", "Export the store again or drop that label from the file.")
            db.table("labels").update(replace_with(new), doc_ids=[current.doc_id])
        else:
            db.table("labels").insert(new)
        db.table("audit").insert({"at": now_iso(), "who": actor, "entity": "label", "entity_id": label.id,
                                  "action": "import", "before": copy.deepcopy(dict(current)) if current else None,
                                  "after": copy.deepcopy(new)})
        return True
