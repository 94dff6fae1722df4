"""``care evaluate``: evaluate one model version's predictions in a JSONL export
or a store (the store is read here, lazily: :mod:`care_model.stats.evaluate` itself stays pure).

    care evaluate --store DIR [--model-version V] [--score-field expected_score] [--cv 5] [--json]
    care evaluate --store DIR --model-version CANDIDATE --compare-with active
    care evaluate --input export.jsonl --model-version V [--n-boot 1000] [--no-text]

With ``--store`` a model version is scored only on sessions outside its training split (and, with
``--compare-with``, outside the other version's too); the output says how many sessions were left
out and why (:mod:`care_model.stats.heldout`): every session of every client in its training split is left
out, and a version with an adapter but no recorded split is refused (``--assume-untrained`` evaluates it
anyway; every title then says so). ``--include-training-sessions`` keeps them, and every title then says
so. An export does not record training splits: evaluate a retrained version with --store.

Beside the metrics, the version's agreement with the client self-reports is printed next to two
constant baselines (:mod:`care_model.stats.baselines`: the training split's per-item mean and most
frequent score, else leaving one client out), for the parsed score and, where the predictions carry
the distributions, the raw and calibrated argmax; intervals resample clients. ``--record`` (with
--store) stores the parsed score's verdict on the version (``care_model.training.versions.record_quality``).

CPU smoke: ``care evaluate --store /tmp/care_store --json`` after the sample
store's first app start (it holds the embedded model's predictions).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from care_model.core.errors import CareError, ImportFormatError, ValidationError
from care_model.stats.evaluate import evaluate_predictions, latest_predictions
from care_model.stats.folds import cross_validate
from care_model.core.provenance import DEFAULT_PROVENANCE
from care_model.text.curation import curated_labels, resolve_unresolved
from care_model.stats.baselines import format_table
from care_model.stats.heldout import held_out_sessions
from care_model.stats.version_quality import RECORDED_FIELD, quality_record, version_quality_reports
from store.export import records_from_lines


def _similarity():
    """The embedding similarity of rationales (the model loads on first use, only if text metrics run)."""
    from care_model.inference.embeddings import cosine_similarities

    return cosine_similarities


def _read_export(path: str):
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise ImportFormatError(f"Cannot open {path}: {exc.strerror}.", "Check the --input path.") from exc
    with fh:
        return records_from_lines(fh, path)


def _read_store(root: str):
    """Sessions, predictions and labels straight from a store (imports tinydb: CLI only). The
    store is locked while it is read, so a running app makes this fail with a clear message."""
    from care_model.training.versions import active_version_id, list_versions
    from store.export import session_lines
    from store.repository import Repository

    repo = Repository.open(root, create=False)
    try:
        return (*records_from_lines(list(session_lines(repo)), root), active_version_id(repo),
                {v["id"]: v for v in list_versions(repo)})
    finally:
        repo.close()


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_rows(rows: list[dict], out) -> None:
    for r in rows:
        ci = f" [{_fmt(r['low'])}, {_fmt(r['high'])}]" if r.get("low") is not None else ""
        why = f"  ({r['reason']})" if r.get("value") is None and r.get("reason") else ""
        print(f"{r['section']:<19} {r['target']:<9} {r['metric']:<11} {_fmt(r['value'])}{ci}  n={r['n']}{why}",
              file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="care evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="JSONL: one Session.to_dict() per line, with optional 'predictions' and "
                                     "'labels' lists (care store export writes it)")
    src.add_argument("--store", help="read a store folder directly (stop the app first: the store is locked "
                                     "while it runs)")
    parser.add_argument("--model-version", help="the version to evaluate (default with --store: the active one)")
    parser.add_argument("--score-field", choices=("score", "expected_score"), default="score",
                        help="the generated option (paper) or the probability-weighted expected score")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="report the metrics of existing predictions per test fold of K folds split by client, and "
                             "mean +- "
                             "sd (nothing is retrained: the paper's protocol is care crossval)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (0 = no intervals)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-text", action="store_true", help="skip rationale similarity")
    parser.add_argument("--no-embeddings", action="store_true", help="skip the embedding similarity only")
    parser.add_argument("--include-training-sessions", action="store_true",
                        help="also score the version on the sessions it was trained on (titles then say so)")
    parser.add_argument("--assume-untrained", action="store_true",
                        help="evaluate a version whose training split is unknown as if it was trained on none of "
                             "these sessions (titles then say so)")
    parser.add_argument("--record", action="store_true",
                        help="with --store: record the verdict against the baselines on the model version")
    parser.add_argument("--compare-with", metavar="V",
                        help="compare with this version ('active': the active one) on the same held-out sessions")
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        if args.store:
            sessions, predictions, labels, active, docs = _read_store(args.store)
        else:
            (sessions, predictions, labels), active, docs = _read_export(args.input), None, {}
        version = args.model_version or active
        found = sorted({p.model_version for p in predictions})
        if not version:
            raise ValidationError("No --model-version given and the store has no active version.",
                                  f"Pass --model-version, one of: {', '.join(found) or '(no predictions yet)'}.")
        preds = latest_predictions(predictions, version)
        if not preds:
            raise ValidationError(f"No predictions of model version {version!r} in {args.store or args.input}.",
                                  f"Use one of: {', '.join(found)}." if found else "Run predictions first.")
        other = None
        if args.compare_with:
            other = active if args.compare_with == "active" else args.compare_with
            if not other or not latest_predictions(predictions, other):
                raise ValidationError(f"No predictions of {args.compare_with!r} to compare with.",
                                      f"Use one of: {', '.join(found) or '(none)'}.")
        if args.record and not args.store:
            raise ValidationError("--record needs --store (an export has no model versions to record on).",
                                  "Evaluate with --store DIR --record.")
        held = held_out_sessions([s.id for s in sessions], [docs.get(version)] + ([docs.get(other)] if other else []),
                                 clients={s.id: s.client_id for s in sessions},
                                 include_training=args.include_training_sessions,
                                 assume_untrained=args.assume_untrained)
        all_sessions = {s.id: s for s in sessions}
        kept = set(held.kept)
        sessions = [s for s in sessions if s.id in kept]
        preds = [p for p in preds if p.session_id in kept]
        print(f"held-out: {held.note()}" + ("" if args.store else " (an export does not record training "
                                             "splits: use --store to leave training sessions out)"), file=sys.stderr)
        # rationale references: expert-written or edited only (model text saved unchanged is no reference)
        curated, unresolved = curated_labels(labels, rationale_provenance=DEFAULT_PROVENANCE)
        curated += resolve_unresolved(labels, unresolved, rationale_provenance=DEFAULT_PROVENANCE)
        if other:
            return _compare(sessions, preds, latest_predictions(predictions, other), version, other, held, args, out)
        kwargs = dict(with_text_metrics=not args.no_text, similarity=None if args.no_embeddings else _similarity(),
                      seed=args.seed, score_field=args.score_field)
        if not args.cv:
            quality = version_quality_reports(all_sessions, preds, docs.get(version), held, n_boot=args.n_boot,
                                              seed=args.seed)
            if args.record:
                _record(args.store, version, quality_record(quality[RECORDED_FIELD], held))
            report = evaluate_predictions(sessions, preds, curated, n_boot=args.n_boot, **kwargs)
            report.notes.append(held.note())
            if unresolved:
                report.notes.append(f"{len(unresolved)} item(s) have several experts' labels and no adjudication: "
                                    "scored by the lower median of their scores (the curation rule).")
            if args.json:
                json.dump({**report.to_dict(), "title": held.title(f"model {report.model_version}"),
                           "held_out": held.to_dict(), "baselines": {f: q.to_dict() for f, q in quality.items()}},
                          out, ensure_ascii=False, indent=2)
                print(file=out)
            else:
                print(held.title(f"model {report.model_version}: {report.n_sessions} sessions, {report.n_predictions} "
                                 f"predictions, {report.n_labels} curated labels"), file=out)
                _print_rows(report.summary_rows(), out)
                for note in report.notes:
                    print(f"note: {note}", file=out)
                for q in quality.values():
                    print(file=out)
                    print(held.title(format_table(q)), file=out)
            return 0
        result = cross_validate(sessions, preds, curated, k=args.cv, **kwargs)
        result["held_out"] = held.to_dict()
        if args.json:
            json.dump(result, out, ensure_ascii=False, indent=2)
            print(file=out)
        else:
            for fold in result["folds"]:
                print(f"fold {fold['fold']}: {len(fold['test_sessions'])} test sessions", file=out)
            print(held.title(f"{args.cv}-fold cross-validation split by client, mean +- sd over folds:"), file=out)
            for r in result["summary"]:
                sd = "" if r["sd"] is None else f" +- {r['sd']:.3f}"
                print(f"{r['section']:<19} {r['target']:<9} {r['metric']:<11} {_fmt(r['mean'])}{sd}  "
                      f"folds={r['n_folds']}", file=out)
        return 0
    except CareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _record(root: str, version: str, quality: dict) -> None:
    from care_model.jobs.quality import ensure_version_doc
    from care_model.training.versions import record_quality
    from store.repository import Repository

    with Repository.open(root, create=False) as repo:
        ensure_version_doc(repo, version, "care evaluate")
        record_quality(repo, version, quality, actor="care evaluate")
    print(f"recorded on {version}: {quality['verdict']}", file=sys.stderr)


def _compare(sessions, cand, act, cand_id, act_id, held, args, out) -> int:
    from care_model.stats.compare import compare_versions, too_small_message

    result = compare_versions({s.id: s for s in sessions}, cand, act, n_boot=args.n_boot, seed=args.seed)
    title = held.title(f"{cand_id} (candidate) vs {act_id} on the same {result['n_sessions']} held-out session(s)")
    if args.json:
        json.dump({**result, "title": title, "candidate": cand_id, "active": act_id, "held_out": held.to_dict()}, out,
                  ensure_ascii=False, indent=2)
        print(file=out)
        return 0
    print(title, file=out)
    print(f"intervals: {result['method']}; {result['n_clients']} client(s). Primary metric (pre-declared): "
          f"{result['primary']}; every other row is exploratory.", file=out)
    if result["too_small"]:
        print(too_small_message(result["n_sessions"]), file=out)
    for r in result["rows"]:
        ci = f"[{_fmt(r['low'])}, {_fmt(r['high'])}]"
        print(f"{r['score_field']:<14} {r['target']:<5} {r['metric']:<8} ({r['better']} is better) "
              f"candidate {_fmt(r['candidate'])} active {_fmt(r['active'])} difference {_fmt(r['difference'])} {ci}  "
              f"p={_fmt(r['p'])} Holm p={_fmt(r['p_holm'])}  {r['verdict']} [{r['role']}]", file=out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
