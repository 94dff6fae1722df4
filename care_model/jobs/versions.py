"""``care versions``: model versions: candidates with lineage, the active version, promotion and rollback.

Storage (both audited by :meth:`store.collections.Collection.put`, every write with an action
name and who did it)::

    collection "model_versions"   one document per version, id = the model version id that
                                  predictions carry (care_model.inference.models.model_version_id), e.g.
                                  "smollm2-135m-instruct" or "smollm2-135m-instruct+adapter@1a2b3c4d"
    collection "settings"         document "active_model": {"model_version", "base", "adapter",
                                  "previous", "reason"} -- the app and the Predictor read it

What it does: :mod:`care_model.training.versions`.
"""
from __future__ import annotations

import sys

from care_model.core.errors import PermissionDenied
from care_model.text.snapshot import describe_learned_from
from care_model.training.versions import (
    activation_history,
    active_version_id,
    get_version,
    list_versions,
    promote,
    reject,
    rollback,
)


# ----------------------------------------------------------------------------- model cards
CARD = "README.md"
EXPORT_META = "care_version.json"


def _adapter_config(folder) -> dict | None:
    import json
    from pathlib import Path

    path = Path(folder) / "adapter_config.json" if folder else None
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None


def write_card(repo, version_id: str) -> str | None:
    """(Re)write the model card ``README.md`` in the version's adapter folder, from what the store
    records now (quality, calibration, status); the folder's path, None for a base model (no folder)."""
    from pathlib import Path

    from care_model.interchange.model_card import render_model_card

    doc = get_version(repo, version_id)
    folder = doc.get("adapter")
    if not folder or not Path(folder).is_dir():
        return None
    (Path(folder) / CARD).write_text(render_model_card(doc, _adapter_config(folder)), encoding="utf-8")
    return str(folder)


def export_version(repo, version_id: str, out) -> dict:
    """The version's adapter as a standalone folder: its files, the model card and ``care_version.json``
    (the version's document); loads with ``peft.PeftModel.from_pretrained`` as it stands."""
    import json
    import shutil
    from pathlib import Path

    from care_model.core.errors import ModelError, ValidationError
    from care_model.interchange.model_card import render_model_card

    doc = get_version(repo, version_id)
    if not doc.get("adapter"):
        raise ValidationError(f"{version_id} is a base model: it has no adapter folder to export.",
                              f"Use the base model {doc.get('base')!r} itself, or export a trained version.")
    src, out = Path(doc["adapter"]), Path(out)
    if not (src / "adapter_config.json").is_file():
        raise ModelError(f"Version {version_id} points to {src}, which holds no adapter any more.",
                         "Restore the run folder from a backup, or export another version.")
    if out.exists() and any(out.iterdir()):
        raise ValidationError(f"{out} already exists and is not empty.", "Choose a new folder for --out.")
    tmp = out.with_name(f".{out.name}.exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(CARD, "checkpoint*", "optimizer*", "*.pt"))
    (tmp / CARD).write_text(render_model_card(doc, _adapter_config(src)), encoding="utf-8")
    (tmp / EXPORT_META).write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return {"version": version_id, "out": str(out), "files": sorted(p.name for p in out.iterdir())}


# ----------------------------------------------------------------------------- CLI
def _table(rows: list[dict]) -> str:
    lines = []
    for d in rows:
        m = (d.get("metrics") or {})
        loss = m.get("validation_loss_after")
        lines.append(f"{d['status']:<10} {d['id']}  run={d.get('run_id') or '-'}  data={d.get('data_hash') or '-'}"
                     + (f"  val_loss={loss:.4f}" if isinstance(loss, (int, float)) else "")
                     + (f"\n{'':<11}learned from: {describe_learned_from(d['learned_from'])}"
                        if d.get("learned_from") else ""))
    return "\n".join(lines) or "(no model versions yet)"


def _choose_calibration(repo, args) -> tuple[dict, str]:
    from care_model.stats.calibration_rule import format_choice
    from care_model.training.calibration_choice import choose_on_store
    from care_model.training.versions import require_admin

    require_admin(repo, args.actor, "choose a model version's calibration")
    predictor = None
    if args.predict:
        from care_model.inference.models import ModelSpec
        from care_model.inference.predictor import PredictConfig, Predictor

        doc = get_version(repo, args.version)
        predictor = Predictor(ModelSpec(base=doc["base"], adapter=doc.get("adapter") or None),
                              PredictConfig(calibration="content-free"), model_version=doc["id"])
    try:
        out = choose_on_store(repo, args.version, actor=args.actor, predictor=predictor, n_boot=args.n_boot,
                              progress=lambda i, n: print(f"predicted {i}/{n} sessions", file=sys.stderr))
    finally:
        if predictor is not None:
            predictor.close()
    return out, f"{args.version}\n{format_choice(out)}"


EXAMPLES = """examples:
  care versions --store DIR list
  care versions --store DIR show VERSION_ID
  care versions --store DIR history
  care versions --store DIR --actor admin promote VERSION_ID
  care versions --store DIR --actor admin rollback [VERSION_ID]
  care versions --store DIR --actor admin reject VERSION_ID
  care versions --store DIR --actor admin choose-calibration VERSION_ID [--predict]
  care versions --store DIR export VERSION_ID --out DIR     # adapter + model card, standalone
  care versions --store DIR card VERSION_ID                 # (re)write the model card in its folder"""


def main(argv=None) -> int:
    """``care versions --store DIR {list,show,promote,rollback,reject,history} ...``"""
    import argparse
    import json
    import os
    import sys

    from care_model.core.errors import CareError

    ap = argparse.ArgumentParser(prog="care versions", description="Model versions of a store.", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="store folder")
    ap.add_argument("--actor", default=os.environ.get("CARE_USER", ""),
                    help="the admin who acts (recorded in the audit trail)")
    ap.add_argument("--json", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="all versions, oldest first")
    sub.add_parser("history", help="every change of the active version")
    p = sub.add_parser("show", help="one version with its lineage and metrics")
    p.add_argument("version")
    for name, help_ in (("promote", "make a candidate the active version"), ("reject", "reject a candidate")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("version")
        p.add_argument("--reason", default="")
    p = sub.add_parser("choose-calibration", help="choose a version's calibration (none or content-free) on its "
                       "held-out sessions with client self-reports, by the fixed rule, and record it in that version")
    p.add_argument("version")
    p.add_argument("--predict", action="store_true",
                   help="predict (scores only, in memory) the held-out sessions that have no stored prediction "
                        "with both distributions")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over clients (default 1000)")
    p = sub.add_parser("export", help="the version's adapter with its model card (README.md), standalone")
    p.add_argument("version")
    p.add_argument("--out", required=True, help="folder to create")
    p = sub.add_parser("card", help="(re)write the model card README.md in the version's adapter folder")
    p.add_argument("version")
    p = sub.add_parser("rollback", help="make an earlier version active again (default: the previous one)")
    p.add_argument("version", nargs="?", default=None)
    p.add_argument("--reason", default="")
    args = ap.parse_args(argv)
    from store import Repository

    try:
        with Repository.open(args.store, create=False) as repo:
            if args.command in ("promote", "rollback", "reject", "choose-calibration") and not args.actor:
                raise PermissionDenied("No --actor was given.", "Pass --actor ADMIN_NAME (or set CARE_USER).")
            if args.command == "list":
                out = list_versions(repo)
                text = _table(out) + f"\nactive: {active_version_id(repo) or '(none: the default base model)'}"
            elif args.command == "history":
                out = activation_history(repo)
                text = "\n".join(f"{h['at']} {h['who']} {h['action']}: {h['from']} -> {h['to']}"
                                 for h in out) or "(none)"
            elif args.command == "show":
                out = get_version(repo, args.version)
                text = json.dumps(out, ensure_ascii=False, indent=1, default=str)
            elif args.command == "promote":
                out = promote(repo, args.version, actor=args.actor, reason=args.reason)
                text = f"active: {out['id']}"
            elif args.command == "choose-calibration":
                out, text = _choose_calibration(repo, args)
            elif args.command == "rollback":
                out = rollback(repo, args.version, actor=args.actor, reason=args.reason)
                text = f"active: {out['id']}"
            elif args.command == "export":
                out = export_version(repo, args.version, args.out)
                text = f"Wrote {args.version} to {out['out']} ({', '.join(out['files'])})."
            elif args.command == "card":
                out = {"folder": write_card(repo, args.version)}
                text = f"model card: {out['folder']}/{CARD}" if out["folder"] else "a base model has no folder"
            else:
                out = reject(repo, args.version, actor=args.actor, reason=args.reason)
                text = f"rejected: {out['id']}"
            if args.command in ("promote", "rollback", "reject", "choose-calibration"):
                write_card(repo, out.get("id") or args.version)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False, default=str) if args.json else text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
