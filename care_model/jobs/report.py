"""``care report``: the evaluation report: the paper's Table 2 for everything in a store, plots, candidate vs active.

CPU smoke (the sample store after a cross-validation run, or any store with predictions)::

    care report --store /tmp/cv_store --out /tmp/cv_report
    care report --store /tmp/cv_store --out /tmp/cv_report --subject cv-20261126-...

Real use::

    care report --store /data/care_store --out reports/$(date +%F) [--subject VERSION]

What it does: :mod:`care_model.report.page`.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from pathlib import Path

from care_model.core.errors import CareError
from care_model.core.records import Prediction, now_iso
from care_model.report.data import StoreData, subject_data, table_rows
from care_model.report.page import CAPTIONS, comparison_html, page, render_plots, table2_html, text_html
from care_model.stats.heldout import CONTAMINATED_TITLE, UNTRAINED_TITLE


def build_report(repo, subject: str = "active", *, include_training: bool = False, n_boot: int = 1000,
                 seed: int = 0, data=None, assume_untrained: bool = False) -> tuple[str, dict[str, bytes], dict]:
    """(report HTML, {plot name: PNG bytes}, the rows and subject as data) for ``subject``."""
    data = data or load_store(repo)
    rows = table_rows(data, include_training=include_training, n_boot=n_boot, seed=seed,
                      assume_untrained=assume_untrained)
    subj = subject_data(data, subject, include_training=include_training, n_boot=n_boot, seed=seed,
                        assume_untrained=assume_untrained)
    pngs = render_plots(data, subj)
    figs = "".join(f'<figure><img id="care-plot-{k}" alt="{k}" src="data:image/png;base64,'
                   f'{base64.b64encode(v).decode()}"><figcaption>{CAPTIONS[k]}</figcaption></figure>'
                   for k, v in pngs.items())
    contaminated = include_training
    warn = (f'<div class="warn">{html.escape(CONTAMINATED_TITLE)}</div>' if contaminated else "")
    if assume_untrained:
        warn += f'<div class="warn">{html.escape(UNTRAINED_TITLE)}</div>'

    body = (f'<div class="care-report" id="care-report">{warn}{table2_html(rows, contaminated=contaminated)}'
            f'<h2 id="care-subject-title">{html.escape(subj["title"])}</h2>'
            f'<div class="note">{html.escape(subj.get("note") or "")}</div>'
            f'{comparison_html(subj.get("comparison"))}<div class="plots">{figs}</div>{text_html(subj.get("text"))}'
            f'<div class="note">Generated {now_iso()[:19].replace("T", " ")} UTC.</div></div>')
    meta = {"rows": rows, "subject": {k: v for k, v in subj.items() if k != "predictions"}}
    return body, pngs, meta


def write_report(repo, out: Path | str, subject: str = "active", **kwargs) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body, pngs, meta = build_report(repo, subject, **kwargs)
    (out / "report.html").write_text(page(body), encoding="utf-8")
    for name, data in pngs.items():
        (out / f"{name}.png").write_bytes(data)
    return {"report": str(out / "report.html"), "plots": [str(out / f"{n}.png") for n in pngs],
            "rows": len(meta["rows"]), "subject": meta["subject"]["id"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="care report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="store folder (stop the app first: a store is open in one process)")
    ap.add_argument("--out", required=True, help="folder for report.html and its PNGs")
    ap.add_argument("--subject", default="active", help="'active' (default), a model version id or a crossval run id")
    ap.add_argument("--include-training-sessions", action="store_true",
                    help="score versions on their training sessions too (the titles then say so)")
    ap.add_argument("--assume-untrained", action="store_true",
                    help="report versions whose training split is unknown as if untrained (the titles then say so)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    ap.add_argument("--json", action="store_true", help="print what was written as JSON")
    args = ap.parse_args(argv)
    try:
        from store import Repository

        with Repository.open(args.store, create=False) as repo:
            done = write_report(repo, args.out, args.subject, include_training=args.include_training_sessions,
                                n_boot=args.n_boot, assume_untrained=args.assume_untrained)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(done, ensure_ascii=False, default=str) if args.json else f"wrote {done['report']}")
    return 0



def load_store(repo) -> StoreData:
    from care_model.training.crossval import CROSSVAL_RUNS
    from care_model.training.versions import active_version_id, list_versions
    from store.export import records_from_lines, session_lines

    sessions, predictions, labels = records_from_lines(list(session_lines(repo)), str(repo.root))
    versions = {v["id"]: v for v in list_versions(repo)}
    for doc in versions.values():
        path = Path(doc.get("run_dir") or "/nonexistent") / "eval_predictions.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    d.pop("role", None)
                    predictions.append(Prediction.from_dict(d))
    runs = sorted(repo.collection(CROSSVAL_RUNS).all(), key=lambda d: d.get("created_at", ""))
    return StoreData({s.id: s for s in sessions}, predictions, labels, versions, active_version_id(repo), runs)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
