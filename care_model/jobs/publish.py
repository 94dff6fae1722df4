"""``care publish``: the curated set as a Hugging Face dataset folder (Parquet splits by client + card).

    care publish --store DIR --out DIR [--session ID ...] [--include-transcripts] [--folds 5] [--seed 0]
    care store publish ...            # the same command, under the store's tools

CPU smoke (the sample store the app creates, after some labels were submitted)::

    care publish --store care_store --out /tmp/care-dataset
    python -c "import datasets; print(datasets.load_dataset('/tmp/care-dataset'))"

Real release, transcripts included, after every session passed the de-identification review::

    care publish --store /data/lab_store --out release-2026-12 --include-transcripts
    hf upload ORG/NAME release-2026-12 --repo-type dataset     # on a machine with Hub access

What it writes (:mod:`care_model.interchange.hf_dataset`, :mod:`~care_model.interchange.dataset_card`,
:mod:`~care_model.interchange.sft_export`): ``README.md`` (the card), ``data/<split>-*.parquet``
(one row per curated session-item), ``publish.json`` (what was published, by whom, when), and with
``--include-transcripts`` the training-ready exports ``sft/`` and ``preference/`` (their prompts
hold the transcript). Transcripts leave the store only after :func:`care_model.jobs.deid.require_reviewed`
passes; without the flag nothing but scores, rationales and turn numbers is written. The folder is
built beside ``--out`` and renamed into place: a failed publish leaves nothing. Nothing here calls
the network.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from care_model.core.errors import CareError, ValidationError
from care_model.core.records import now_iso


def _load(repo, session_ids):
    sessions = {}
    wanted = None if session_ids is None else set(session_ids)
    for sid in sorted(wanted or repo.session_ids()):
        if not repo.has_session(sid):
            raise ValidationError(f"No session {sid!r} in the store.", "Check the id (care store stats lists counts).")
        sessions[sid] = repo.get_session(sid)
    labels = [lab for lab in repo.labels(status="submitted") if lab.session_id in sessions]
    with_labels = {lab.session_id for lab in labels}
    sessions = {sid: s for sid, s in sessions.items() if sid in with_labels}
    preds = [p for sid in sessions for p in repo.predictions(sid, history=True)]
    return sessions, labels, preds


def publish(repo, out, *, session_ids=None, include_transcripts: bool = False, k: int = 5, seed: int = 0,
            actor: str = "system", override_by: str | None = None) -> dict:
    """Write the dataset folder ``out`` from ``repo`` (see the module docstring); returns a summary."""
    from care_model.interchange.dataset_card import card_numbers, render_card
    from care_model.interchange.hf_dataset import curated_rows, split_sessions, write_parquet
    from care_model.interchange.sft_export import exports_note, write_exports

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(f"{out} already exists and is not empty.", "Choose a new folder for --out (a release "
                              "is written once), or remove the old one first.")
    sessions, labels, preds = _load(repo, session_ids)
    if not sessions:
        raise ValidationError("No submitted labels in the chosen sessions: nothing is curated to publish.",
                              "Review and submit sessions first, or choose other sessions.")
    if include_transcripts:
        from care_model.jobs.deid import require_reviewed

        require_reviewed(repo, sorted(sessions), override_by=override_by)
    rows = curated_rows(sessions, labels, preds, include_transcripts=include_transcripts)
    split_info = split_sessions(rows, k=k, seed=seed)
    tmp = out.with_name(f".{out.name}.publishing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        os.chmod(tmp, 0o700)
        data_files = write_parquet(tmp, rows, split_info, include_transcripts=include_transcripts)
        exports = None
        if include_transcripts:
            exports = write_exports(tmp, sessions, labels, preds, split_info["splits"])
        card = render_card(rows, split_info, data_files, include_transcripts=include_transcripts,
                           extra_configs=(exports or {}).get("configs"), store_name=Path(repo.root).name,
                           exports_note=exports_note(exports) if exports else "")
        (tmp / "README.md").write_text(card, encoding="utf-8")
        summary = {"published_at": now_iso(), "by": actor, "sessions": sorted(sessions),
                   "include_transcripts": include_transcripts, "split": split_info,
                   "numbers": card_numbers(rows, split_info), "data_files": data_files,
                   "exports": exports}
        (tmp / "publish.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "out": str(out)}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care publish", description=__doc__.split("\n\n")[0],
                                 epilog="examples:\n  care publish --store care_store --out /tmp/care-dataset\n"
                                        "  care publish --store DIR --out release --include-transcripts",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="the store folder")
    ap.add_argument("--out", required=True, help="the dataset folder to create (must not exist, or be empty)")
    ap.add_argument("--session", action="append", default=None, help="only these sessions (repeatable)")
    ap.add_argument("--include-transcripts", action="store_true",
                    help="also the transcripts and the training-ready exports (after the de-identification review)")
    ap.add_argument("--folds", type=int, default=5, help="folds by client (fold 0 = test; default 5)")
    ap.add_argument("--seed", type=int, default=0, help="the fold split's seed (default 0, as crossval)")
    ap.add_argument("--actor", default="cli", help="who publishes (recorded in publish.json)")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from store import Repository

    try:
        with Repository(args.store, create=False) as repo:
            out = publish(repo, args.out, session_ids=args.session, include_transcripts=args.include_transcripts,
                          k=args.folds, seed=args.seed, actor=args.actor)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = out["numbers"]
    print(f"Wrote {n['rows']} rows ({n['sessions']} sessions, {n['clients']} clients; splits "
          + ", ".join(f"{k} {v}" for k, v in n["splits"].items()) + f") to {out['out']}"
          + (" with transcripts and training-ready exports." if out["include_transcripts"] else
             " without transcripts."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
