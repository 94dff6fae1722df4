"""Command line for the store.

    care store import --store DIR --format {jsonl,annomi,esconv,text,ratings} FILE...
                           [--speaker-map "A=counselor,B=client"] [--language en|zh]
    care store export --store DIR --out FILE [--session ID ...]
    care store stats  --store DIR [--json]
    care store add-user --store DIR --username NAME --role {annotator,adjudicator,admin} [--password PW]
    care store set-role --store DIR --username NAME --role ROLE
    care store users  --store DIR
    care store assign --store DIR --session ID [--session ID ...] --user NAME [--user NAME ...]
                           [--mode shared|independent]
    care store publish ...        = care publish ... (the curated set as a Hugging Face dataset)
    care store interchange ...    = care interchange ... (Label Studio and Argilla)

Errors print one line that names the problem and the fix, and exit with status 2; an import is
all or nothing. Passwords are asked for interactively when not given (or read from
CARE_NEW_PASSWORD), and only a salted hash is stored.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from care_model.core.errors import CareError
from care_model.core.records import ROLES


EXAMPLES = """examples:
  care store import --store DIR --format jsonl data/sessions.jsonl
  care store export --store DIR --out export.jsonl
  care store stats --store DIR --json
  care store add-user --store DIR --username NAME --role annotator
  care store audit --store DIR --out audit.jsonl --action submit
  care store publish --store DIR --out DATASET_DIR     # = care publish (care publish --help)
  care store COMMAND --help    # one tool's options"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care store", description="CARE Review Studio store tools.", epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def cmd(name, help_):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--store", required=True, help="store folder (created by import if missing)")
        return p

    from .formats import FORMATS

    p = cmd("import", "import sessions, ratings or an export, all or nothing")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--speaker-map", default=None,
                   help='map unknown speaker labels, e.g. "Dr. Lee=counselor,Patient=client"')
    p.add_argument("--language", choices=("en", "zh"), default=None, help="language when the file does not say")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("files", nargs="+")
    p = cmd("export", "write sessions with predictions and labels as JSONL")
    p.add_argument("--out", required=True)
    p.add_argument("--session", action="append", default=None, help="only these sessions (repeatable)")
    p = cmd("stats", "print counts")
    p.add_argument("--json", action="store_true")
    p = cmd("add-user", "add a user")
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--password", default=None, help="omit to be asked (or set CARE_NEW_PASSWORD)")
    p = cmd("set-role", "change a user's role")
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, choices=ROLES)
    cmd("users", "list users and roles")
    p = cmd("audit", "write the audit trail as JSONL (oldest first; whole entries with before and after)")
    p.add_argument("--out", default="-", help="file to write (default -: standard output)")
    p.add_argument("--session", default="", help="only this session's label changes")
    p.add_argument("--user", default="", help="only changes made by this user, or to this user's account")
    p.add_argument("--action", default="", help="only actions containing this text (e.g. submit, reopen, promote)")
    p = cmd("assign", "assign sessions to experts")
    p.add_argument("--session", action="append", required=True)
    p.add_argument("--user", action="append", required=True)
    p.add_argument("--mode", choices=("shared", "independent"), default="shared")
    return ap


def _password(args) -> str:
    if args.password:
        return args.password
    if os.environ.get("CARE_NEW_PASSWORD"):
        return os.environ["CARE_NEW_PASSWORD"]
    first = getpass.getpass(f"Password for {args.username}: ")
    if first != getpass.getpass("Again: "):
        raise CareError("The two passwords differ.", "Run the command again and type the same password twice.")
    return first


def run(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .repository import Repository

    create = args.command == "import"
    with Repository(args.store, create=create) as repo:
        if args.command == "import":
            from .formats import parse_speaker_map, read_files

            batch = read_files(args.files, args.format, speaker_map=parse_speaker_map(args.speaker_map) or None,
                               language=args.language)
            report = repo.import_batch(batch, actor=f"cli:{getpass.getuser()}")
            out = report.to_dict()
            if args.json:
                print(json.dumps(out, ensure_ascii=False))
            else:
                print(f"Imported {out['added']} new sessions ({out['skipped']} already stored), "
                      f"{out['ratings_set']} ratings, {out['predictions_added']} predictions, {out['labels_added']} "
                      "labels.")
                for w in out["warnings"]:
                    print(f"warning: {w}")
        elif args.command == "export":
            from .export import export_jsonl

            n = export_jsonl(repo, args.out, args.session)
            print(f"Wrote {n} sessions to {args.out}.")
            left = repo.deid_unreviewed(args.session or repo.session_ids())
            if left:  # the owner's own copy: a warning here; the app's export and publish refuse
                print(f"warning: {len(left)} session(s) are not cleared by the de-identification check "
                      f"({', '.join(left[:5])}{' ...' if len(left) > 5 else ''}): do not share this file before "
                      "`care deid scan` and a review (`care deid review` or the Admin tab).", file=sys.stderr)
        elif args.command == "audit":
            from .export import export_audit

            n = export_audit(repo, args.out, session_id=args.session, user=args.user, action=args.action)
            if args.out != "-":
                print(f"Wrote {n} audit entries to {args.out}.")
        elif args.command == "stats":
            stats = repo.stats()
            print(json.dumps(stats) if args.json else "\n".join(f"{k}: {v}" for k, v in stats.items()))
        elif args.command == "add-user":
            user = repo.add_user(args.username, _password(args), args.role, actor=f"cli:{getpass.getuser()}")
            print(f"Added {user['username']} ({user['role']}).")
        elif args.command == "set-role":
            user = repo.set_role(args.username, args.role, actor=f"cli:{getpass.getuser()}")
            print(f"{user['username']} is now {user['role']}.")
        elif args.command == "users":
            for u in repo.users():
                print(f"{u['username']}\t{u['role']}\t{'active' if u.get('active', True) else 'inactive'}")
        elif args.command == "assign":
            n = repo.assign(args.session, args.user, actor=f"cli:{getpass.getuser()}", mode=args.mode)
            print(f"{n} new assignments.")
    return 0


# Tools that read the curated set run in the jobs layer, which this package may not import:
# `python -m store publish ...` runs `care store publish ...` in a child process.
JOB_TOOLS = ("publish", "interchange")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOB_TOOLS:
        import subprocess

        return subprocess.call([sys.executable, "-m", "care_model.cli", "store", *argv])
    try:
        return run(argv)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
