"""``care interchange``: Label Studio and Argilla: export sessions with suggestions, import annotations as labels.

    care interchange label-studio-export --store DIR --out DIR [--session ID ...]
    care interchange label-studio-import --store DIR --user-map "1=ann,2=bob" EXPORT.json
    care interchange argilla-export --store DIR --out DIR [--session ID ...] [--name NAME]
    care interchange argilla-import --store DIR --user-map "UUID=ann" FOLDER_OR_records.json

CPU smoke (the app's sample store)::

    care interchange label-studio-export --store care_store --out /tmp/ls --session sample-en-01
    # Label Studio: new project, Labeling Setup -> Code: paste /tmp/ls/labeling_config.xml;
    # Import: /tmp/ls/tasks.json; annotate; Export -> JSON; then label-studio-import that file.

Exports write the transcript (the tools must show it) to files readable by their owner only.
Imports (:func:`import_answers`): each annotation's user is mapped to a store user (``--user-map
KEY=USERNAME``; a key that is a store user's name maps to itself); the label goes to that user's
slot when the session is coded independently, else to the shared slot; its score source follows the
session's curation mode (a client-anchored score that is not the client's is refused, as in the
app); its provenance is measured against the suggestion the export showed (unchanged text is
``accepted``, not ``expert``); its expected version is the one the export saw, so a label saved in
the store since the export is a conflict. Any refusal refuses the whole file: nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from care_model.core.errors import CareError, ConflictError, ValidationError
from care_model.core.provenance import classify
from care_model.core.records import SHARED, Label, label_id
from care_model.core.wai import load_form
from care_model.text.curation import default_curation_mode, score_source_for

CURATION_MODES_COLLECTION = "curation_modes"  # studio.curation_modes.COLLECTION (an admin's choice per session)


def suggestions_of(repo, session_id: str) -> list:
    """The latest suggestion per item of the active version if it predicted the session, else of
    the most recently predicting version (the rule the review screen uses)."""
    from care_model.training.versions import active_version_id

    preds = repo.predictions(session_id)
    if not preds:
        return []
    version = active_version_id(repo)
    if version not in {p.model_version for p in preds}:
        version = max(preds, key=lambda p: p.created_at).model_version
    return [p for p in preds if p.model_version == version]


def _sessions(repo, session_ids):
    ids = session_ids or repo.session_ids()
    for sid in ids:
        if not repo.has_session(sid):
            raise ValidationError(f"No session {sid!r} in the store.", "Check the id (care store stats).")
    return [repo.get_session(sid) for sid in ids]


def _versions(repo, sid: str) -> dict[str, int]:
    return {lab.id: lab.version for lab in repo.labels(sid)}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def export_label_studio(repo, out, session_ids=None) -> dict:
    from care_model.interchange.label_studio import labeling_config, session_task

    sessions = _sessions(repo, session_ids)
    forms = {s.form for s in sessions}
    if len(forms) > 1:
        raise ValidationError(f"The sessions use several forms ({', '.join(sorted(forms))}); one Label Studio "
                              "project has one labeling config.", "Export the sessions of each form apart (--session).")
    out = Path(out)
    tasks = [session_task(s, suggestions_of(repo, s.id), _versions(repo, s.id)) for s in sessions]
    _write(out / "labeling_config.xml", labeling_config(forms.pop() if forms else "wai-sr"))
    _write(out / "tasks.json", json.dumps(tasks, ensure_ascii=False, indent=1))
    return {"tasks": len(tasks), "out": str(out)}


def export_argilla(repo, out, session_ids=None, name: str = "care-review") -> dict:
    from care_model.interchange.argilla import dataset_info, record, settings

    sessions = _sessions(repo, session_ids)
    out = Path(out)
    records = []
    for s in sessions:
        by_item = {p.item: p for p in suggestions_of(repo, s.id)}
        versions = _versions(repo, s.id)
        records += [record(s, i, by_item.get(i), versions) for i in load_form(s.form).item_ids]
    _write(out / ".argilla" / "settings.json", json.dumps(settings(sessions[0].form if sessions else "wai-sr")))
    _write(out / ".argilla" / "dataset.json", json.dumps(dataset_info(name)))
    _write(out / "records.json", json.dumps(records, ensure_ascii=False))
    return {"records": len(records), "out": str(out)}


def parse_user_map(text: str | None) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        if part.strip():
            key, sep, user = part.partition("=")
            if not sep or not key.strip() or not user.strip():
                raise ValidationError(f"--user-map entry {part.strip()!r} is not KEY=USERNAME.",
                                      'Write e.g. --user-map "1=ann,2=bob".')
            out[key.strip()] = user.strip()
    return out


def _users(repo, answers, user_map: dict[str, str]) -> dict[str, str]:
    known = {u["username"]: u for u in repo.users()}
    mapped, missing = {}, set()
    for key in sorted({a.user_key for a in answers}):
        name = user_map.get(key) or (key if key in known else None)
        if name is None:
            missing.add(key)
        elif name not in known or not known[name].get("active", True):
            raise ValidationError(f"--user-map names {name!r}, which is not an active user of the store.",
                                  f"Add the user (care store add-user --username {name} --role annotator) or map "
                                  "the annotator to another user.")
        else:
            mapped[key] = name
    if missing:
        raise ValidationError(f"Annotations by {', '.join(sorted(missing))} cannot be mapped to store users.",
                              "Pass --user-map \"" + ",".join(f"{k}=USERNAME" for k in sorted(missing)) + "\".")
    return mapped


def import_answers(repo, answers, user_map: dict[str, str], *, tool: str) -> dict:
    """Save ``answers`` as submitted labels, all or nothing (see the module docstring)."""
    users = _users(repo, answers, user_map)
    assignments = repo.assignments()
    batch: dict[str, list[tuple[Label, int]]] = {}
    seen: dict[str, str] = {}
    for a in answers:
        if not repo.has_session(a.session_id):
            raise ValidationError(f"{a.source}: no session {a.session_id!r} in the store.",
                                  "Import into the store the tasks were exported from.")
        session = repo.get_session(a.session_id)
        user = users[a.user_key]
        independent = (assignments.get(a.session_id) or {}).get("mode") == "independent"
        slot = user if independent else SHARED
        lid = label_id(a.session_id, a.item, slot)
        if lid in seen:
            raise ConflictError(f"{a.source} and {seen[lid]} both label item {a.item} of {a.session_id} in the "
                                f"{'shared' if slot == SHARED else slot} slot.",
                                "Keep one annotation per item in the file, or assign the session for independent "
                                "coding (care store assign --mode independent) so each expert has a slot.")
        seen[lid] = a.source
        chosen = (repo.collection(CURATION_MODES_COLLECTION).get(a.session_id) or {}).get("mode")
        mode = chosen if chosen in ("client_anchored", "expert_judged") else default_curation_mode(session)
        pid = (a.care.get("suggestions") or {}).get(str(a.item))
        pred = repo.get_prediction(a.session_id, pid) if pid else None
        source, dist = classify(a.rationale, [pred.rationale] if pred is not None else [])
        lab = Label(session_id=a.session_id, item=a.item, annotator=slot, score=a.score, rationale=a.rationale,
                    evidence=list(a.evidence), status="submitted", prediction_id=pid,
                    score_source=score_source_for(mode, slot), rationale_source=source, rationale_edit_distance=dist,
                    comment=f"imported from {tool}")
        expected = int((a.care.get("label_versions") or {}).get(lid, 0))
        batch.setdefault(user, []).append((lab, expected))
    try:
        with repo.files.transaction():
            saved = [lab for user, labs in sorted(batch.items())
                     for lab in repo.save_labels(labs, actor=user, action=f"import:{tool}")]
    except ConflictError as err:
        raise ConflictError(f"{err.problem} (since the {tool} export)", "Nothing was imported. Export the sessions "
                            f"again, redo those items in {tool}, and import the new export.") from None
    except CareError as err:
        raise type(err)(f"{err.problem} Nothing was imported.", err.fix) from None
    return {"labels": len(saved), "sessions": len({lab.session_id for lab in saved}),
            "provenance": {k: sum(lab.rationale_source == k for lab in saved)
                           for k in sorted({lab.rationale_source for lab in saved})}}


def _read_json(path: Path):
    if path.is_dir():
        path = path / "records.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), path.name
    except (OSError, ValueError) as err:
        raise ValidationError(f"Cannot read {path}: {err}.", "Pass the JSON file the tool exported.") from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care interchange", description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("label-studio-export", "argilla-export"):
        p = sub.add_parser(name, help="write the sessions with their suggestions for " + name.split("-e")[0])
        p.add_argument("--store", required=True)
        p.add_argument("--out", required=True, help="folder to write")
        p.add_argument("--session", action="append", default=None, help="only these sessions (repeatable)")
        if name == "argilla-export":
            p.add_argument("--name", default="care-review", help="the Argilla dataset's name")
    for name in ("label-studio-import", "argilla-import"):
        p = sub.add_parser(name, help="save the tool's annotations as submitted labels (all or nothing)")
        p.add_argument("--store", required=True)
        p.add_argument("--user-map", default="", help='the tool\'s users -> store users, e.g. "1=ann,2=bob"')
        p.add_argument("file", help="Label Studio's JSON export / Argilla's folder or records.json")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from store import Repository

    try:
        with Repository(args.store, create=False) as repo:
            if args.command == "label-studio-export":
                out = export_label_studio(repo, args.out, args.session)
                text = f"Wrote {out['tasks']} tasks and the labeling config to {out['out']}."
            elif args.command == "argilla-export":
                out = export_argilla(repo, args.out, args.session, args.name)
                text = f"Wrote {out['records']} records and the settings to {out['out']}."
            else:
                from care_model.interchange.argilla import read_responses
                from care_model.interchange.label_studio import read_annotations

                data, name = _read_json(Path(args.file))
                tool = "Label Studio" if args.command == "label-studio-import" else "Argilla"
                answers = (read_annotations if tool == "Label Studio" else read_responses)(data, name=name)
                out = import_answers(repo, answers, parse_user_map(args.user_map), tool=tool)
                text = f"Imported {out['labels']} labels of {out['sessions']} sessions ({out['provenance']})."
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
