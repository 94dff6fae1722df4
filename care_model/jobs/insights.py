"""``care insights``: counselor profiles, interaction patterns, trajectories and known groups as one HTML file.

CPU smoke (any store with predictions or self-reports; the AnnoMI fixture shown)::

    care store import --store /tmp/ins --format annomi tests/fixtures/formats/annomi_small.csv
    care insights --store /tmp/ins --out /tmp/ins-report --source self-report --n-boot 200

Real use (the 133 AnnoMI sessions scored by the embedded default, scores only)::

    care store import --store /tmp/annomi-store --format annomi ../shared/data/annomi/AnnoMI-simple.csv
    care predict --store /tmp/annomi-store --scores-only
    care insights --store /tmp/annomi-store --out /tmp/annomi-insights [--model-version V]
    python -m care_model.insights --store /tmp/annomi-store --out /tmp/annomi-insights --source self-report

Writes ``insights.html`` (self-contained: inline CSS, plots as data URIs, opens offline), the
same plots as PNGs (``profiles.png``, ``patterns.png``, ``trajectories.png``, ``groups.png``) and
``insights.json`` (every number). What it computes: :mod:`care_model.insights`.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from care_model.core.errors import CareError, ValidationError
from care_model.insights import page
from care_model.insights.build import Options, compute
from care_model.insights.codes import load_mapping
from care_model.insights.table import SOURCES, session_rows
from care_model.insights.trajectories import low_sessions


def placeholder_counselors() -> set[str]:
    """Counselor ids that importers give sessions of corpora that identify no counselor."""
    from store.formats import annomi, esconv

    return {annomi.COUNSELOR_ID, esconv.COUNSELOR_ID}


def load_records(repo) -> tuple[list, list]:
    """(sessions, the latest prediction per (session, version, item)) of the whole store."""
    sessions, preds = [], []
    for sid in repo.session_ids():
        sessions.append(repo.get_session(sid))
        preds.extend(repo.predictions(sid))
    return sessions, preds


def default_version(repo, predictions) -> str | None:
    """The active version when it has predictions here, else the version that predicted the most sessions."""
    from care_model.training.versions import active_version_id

    counts = Counter(v for v, _ in {(p.model_version, p.session_id) for p in predictions})
    active = active_version_id(repo)
    if active and counts.get(active):
        return active
    return counts.most_common(1)[0][0] if counts else None


def prepare(repo, opts: Options, records=None):
    """(rows, predictions, options with the model version filled in, sessions' sources)."""
    sessions, preds = records or load_records(repo)
    if opts.source == "model" and not opts.model_version:
        opts.model_version = default_version(repo, preds)
        if not opts.model_version:
            raise ValidationError("No model has predicted any session in this store.",
                                  "Run `care predict --store DIR --scores-only` first, or use --source self-report.")
    rows = session_rows(sessions, source=opts.source, predictions=preds, model_version=opts.model_version,
                        score_field=opts.score_field, placeholders=placeholder_counselors())
    return rows, preds, opts, [s.source for s in sessions]


def build_insights(repo, opts: Options | None = None, *, codes: str | None = None, records=None):
    """(data, {plot name: PNG}, HTML body) for the store."""
    opts = opts or Options()
    rows, _preds, opts, sources = prepare(repo, opts, records)
    data = compute(rows, opts, mapping=load_mapping(codes) if codes else None, sources=sources)
    pngs = page.render_plots(data)
    return data, pngs, page.body(data, pngs)


def drilldown(repo, opts: Options, *, dim: str, threshold: float, counselor: str = "", client: str = "",
              records=None) -> tuple[dict, str]:
    rows, preds, opts, _ = prepare(repo, opts, records)
    version = opts.model_version
    if opts.source != "model":
        version = default_version(repo, preds)  # rationales come from a model even when the scores do not
    d = low_sessions(rows, preds, version, dim=dim, threshold=threshold, counselor=counselor, client=client)
    from care_model.insights.table import source_title

    return d, page.drilldown_html(d, source_title(opts.source, opts.model_version, opts.score_field))


def write_insights(repo, out: Path | str, opts: Options | None = None, *, codes: str | None = None,
                   drill: dict | None = None) -> dict:
    out = Path(out)
    opts = opts or Options()
    records = load_records(repo)
    data, pngs, body = build_insights(repo, opts, codes=codes, records=records)
    if drill:
        d, dhtml = drilldown(repo, opts, records=records, **drill)
        data["drilldown"] = d
        body += f'<section id="ins-sec-drill"><h2>Low-alliance drill-down</h2>{dhtml}</section>'
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves nothing behind
    (out / "insights.html").write_text(page.page(body), encoding="utf-8")
    for name, png in pngs.items():
        (out / f"{name}.png").write_bytes(png)
    (out / "insights.json").write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return {"report": str(out / "insights.html"), "plots": [str(out / f"{n}.png") for n in pngs],
            "json": str(out / "insights.json"), "source": data["source"], "n_scored": data["n_scored"]}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="care insights", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="store folder (stop the app first: a store is open in one process)")
    ap.add_argument("--out", required=True, help="folder for insights.html, its PNGs and insights.json")
    ap.add_argument("--source", choices=SOURCES, default="model",
                    help="whose scores: a model version's predictions (default), the client's self-report, or the "
                         "counselor's self-rating")
    ap.add_argument("--model-version", default=None,
                    help="model version for --source model (default: the active one, else the one that predicted "
                         "the most sessions)")
    ap.add_argument("--score-field", choices=("score", "expected_score"), default="score",
                    help="predicted score (the paper's) or the probability-weighted expected score")
    ap.add_argument("--codes", default=None, help="code mapping: annomi, esconv, clientbehavior or a JSON file "
                                                  "(default: the one for the sessions' corpus)")
    ap.add_argument("--group-field", default=None, help="session field for known groups (default: mi_quality, "
                                                        "arm, site, ... whichever the sessions have)")
    ap.add_argument("--groups", default=None, help="the two levels to compare, A,B (default: the two most common)")
    ap.add_argument("--min-sessions", type=int, default=Options.min_counselor_sessions,
                    help="sessions a counselor needs for a profile")
    ap.add_argument("--rupture-drop", type=float, default=Options.rupture_drop,
                    help="a drop of at least this many points between sessions is a rupture")
    ap.add_argument("--drill-counselor", default="", help="also list this counselor's low-alliance sessions")
    ap.add_argument("--drill-client", default="", help="also list this client's low-alliance sessions")
    ap.add_argument("--dim", default="bond", help="dimension for the drill-down")
    ap.add_argument("--threshold", type=float, default=2.0, help="drill-down: sessions at or below this score")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    ap.add_argument("--json", action="store_true", help="print what was written as JSON")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    levels = tuple(x.strip() for x in args.groups.split(",")) if args.groups else None
    if levels is not None and len(levels) != 2:
        print("error: --groups takes two levels, A,B (e.g. high,low).", file=sys.stderr)
        return 2
    opts = Options(source=args.source, model_version=args.model_version, score_field=args.score_field,
                   min_counselor_sessions=args.min_sessions, rupture_drop=args.rupture_drop,
                   group_field=args.group_field, group_levels=levels, n_boot=args.n_boot)
    drill = None
    if args.drill_counselor or args.drill_client:
        drill = dict(dim=args.dim, threshold=args.threshold, counselor=args.drill_counselor, client=args.drill_client)
    try:
        from store import Repository

        with Repository.open(args.store, create=False) as repo:
            done = write_insights(repo, args.out, opts, codes=args.codes, drill=drill)
    except CareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(done, ensure_ascii=False) if args.json else f"wrote {done['report']} ({done['source']})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
