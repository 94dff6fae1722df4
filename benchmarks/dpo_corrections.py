"""A measurement store for the DPO stage: the sample sessions with *scripted* corrections.

The sample data has no expert corrections (data/README.md): only the embedded default's free
suggestions and, per item, a rationale drafted for the client's own self-reported score. This script
builds a store in which a scripted "expert" corrected every suggestion the way client-anchored
curation does, so that the SFT and SFT+DPO stages can be measured on real sessions:

* the label's score is the client's self-report (``score_source: client_self_report``);
* its rationale is the drafting model's text written for that score (the shipped ``draft``), saved as
  if the expert had typed it over the card's free suggestion (``prediction_id``: that suggestion).
  Its provenance is what :func:`care_model.core.provenance.classify` says against the suggestion the
  card showed (the drafts are not imported, so the card offered only the suggestion): ``expert`` or
  ``edited``.

So a preference pair is (client's score + drafted rationale) over (model's score + its rationale).
**These are simulated corrections, not an expert's**: they measure whether the DPO machinery moves
held-out predictions when its pairs carry the self-reported score, nothing about real experts.

    .venv/bin/python -m benchmarks.dpo_corrections /tmp/care-dpo-store 10     # the first 10 sessions
    nice -n 5 .venv/bin/python -m care_model.cli crossval --store /tmp/care-dpo-store \\
        --recipe recipes/cpu-dpo-smoke.yaml --folds 2 --actor admin
    .venv/bin/python -m care_model.cli report --store /tmp/care-dpo-store --out /tmp/care-dpo-report
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from care_model.core.provenance import classify
from care_model.core.records import SHARED, Label, Prediction, Session

ROOT = Path(__file__).resolve().parents[1]


def build_store(root: Path | str, *, password: str = "password123", first: int | None = None) -> dict:
    """The store (see the module docstring); ``first``: only the first N sample sessions (a CPU budget)."""
    from store import Repository

    sessions = [Session.from_dict(json.loads(ln)) for ln in (ROOT / "data" / "sessions.jsonl").read_text(
        encoding="utf-8").splitlines() if ln.strip()][:first]
    preds = [Prediction.from_dict(json.loads(ln)) for ln in (ROOT / "data" / "sample_predictions.jsonl").read_text(
        encoding="utf-8").splitlines() if ln.strip()]
    keep = {s.id for s in sessions}
    suggestions = {(p.session_id, p.item): p for p in preds if not p.is_draft and p.session_id in keep}
    drafts = {(p.session_id, p.item, p.drafted_for_score): p for p in preds if p.is_draft}
    counts = {"labels": 0, "score_changed": 0, "provenance": {}}
    with Repository(root) as repo:
        repo.add_user("admin", password, "admin")
        repo.add_sessions(sessions)
        repo.add_predictions(suggestions.values())
        for s in sessions:
            batch = []
            for item, score in sorted((s.ratings.get("client") or {}).items()):
                sug, draft = suggestions.get((s.id, int(item))), drafts.get((s.id, int(item), int(score)))
                if sug is None or draft is None or not draft.rationale:
                    continue
                prov, dist = classify(draft.rationale, [sug.rationale])
                batch.append((Label(session_id=s.id, item=int(item), annotator=SHARED, score=int(score),
                                    rationale=draft.rationale, evidence=list(draft.evidence), status="submitted",
                                    prediction_id=sug.id, score_source="client_self_report",
                                    rationale_source=prov, rationale_edit_distance=dist,
                                    comment="scripted correction (benchmarks.dpo_corrections)"), 0))
                counts["labels"] += 1
                counts["score_changed"] += int(sug.score != int(score))
                counts["provenance"][prov] = counts["provenance"].get(prov, 0) + 1
            if batch:
                repo.save_labels(batch, actor="admin")
    return counts


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.dpo_corrections", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="folder of the new store (must not hold one)")
    parser.add_argument("first", nargs="?", type=int, default=None, help="only the first N sample sessions")
    args = parser.parse_args(argv)
    print(json.dumps(build_store(args.store, first=args.first)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
