"""Count, in a predictions file, quotes given to the wrong speaker, evidence that points at the wrong
turn, and rationales that end in a dangling "(Line" (issue 17's smaller fixes). No model needed.

For every prediction with a rationale (suggestions and drafts), against its session's transcript:

* **misattributed quotes**: a quote presented as the counselor's words (the speaker named last
  before its opening mark, :func:`care_model.text.evidence.attributed_speaker`: "... and the
  counselor says "...") that occurs in no counselor turn but in a client turn -- the client's words
  given to the counselor -- and the reverse. A rationale counts once however many it has.
* **evidence links to counselor turns**, and of all links those **not backed by a quote** of that
  turn's speaker (a link to a counselor turn for a quote the rationale gives to the client, as the
  old transcript-wide search made when a counselor echoed the client).
* **rationales ending in "(Line"** (the model starting a "(Line 12)" reference that grounded
  decoding's ban on digits cuts), and rationales containing "(Line" anywhere.

Usage::

    .venv/bin/python -m benchmarks.quote_attribution                       # data/sample_predictions.jsonl
    .venv/bin/python -m benchmarks.quote_attribution PREDICTIONS.jsonl --sessions data/sessions.jsonl --json

``PREDICTIONS.jsonl``: one prediction per line, as in ``data/sample_predictions.jsonl`` or a store
export (fields ``session_id``, ``rationale``, ``evidence``, ``mode``); sessions as in
``data/sessions.jsonl``. Predictions of sessions not in the sessions file are counted as skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from care_model.text.evidence import TranscriptIndex, quote_attributions

ROOT = Path(__file__).resolve().parents[1]
OTHER = {"client": "counselor", "counselor": "client"}


def _read_jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        sys.exit(f"No {what} file at {path}: pass its path (see --help).")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{n} is not JSON ({exc.msg}): the {what} file must hold one JSON object a line.")
    return rows


class _Transcript:
    def __init__(self, session: dict):
        turns = session.get("turns") or []
        self.speaker = {int(t.get("index", i)): t.get("speaker") for i, t in enumerate(turns)}
        self.all = TranscriptIndex(turns)
        self.by = {who: TranscriptIndex([t for t in turns if t.get("speaker") == who]) for who in OTHER}
        self.single = {int(t.get("index", i)): TranscriptIndex([{**t, "index": int(t.get("index", i))}])
                       for i, t in enumerate(turns)}


def count(predictions: list[dict], sessions: list[dict]) -> dict:
    """The counts described in the module docstring (plain data)."""
    transcripts = {s["id"]: _Transcript(s) for s in sessions}
    out = {"predictions": len(predictions), "rationales": 0, "skipped_no_session": 0, "by_mode": {},
           "client_words_given_to_counselor": 0, "counselor_words_given_to_client": 0,
           "quotes_misattributed": 0, "quotes_attributed": 0,
           "evidence_links": 0, "evidence_links_to_counselor_turns": 0, "evidence_links_not_backed_by_quote": 0,
           "predictions_with_counselor_evidence": 0, "rationales_ending_in_line": 0,
           "rationales_containing_line": 0}
    for pred in predictions:
        rationale = pred.get("rationale") or ""
        if not rationale.strip():
            continue
        tr = transcripts.get(pred.get("session_id"))
        if tr is None:
            out["skipped_no_session"] += 1
            continue
        out["rationales"] += 1
        mode = pred.get("mode") or "full"
        per = out["by_mode"].setdefault(mode, {"rationales": 0, "client_words_given_to_counselor": 0,
                                               "evidence_links_to_counselor_turns": 0, "rationales_ending_in_line": 0})
        per["rationales"] += 1
        wrong = set()
        backed: set[int] = set()
        for quote, who in quote_attributions(rationale, index=tr.all):
            if who not in OTHER:
                continue
            out["quotes_attributed"] += 1
            own, other = tr.by[who].find(quote), tr.by[OTHER[who]].find(quote)
            if own is not None:
                backed |= {i for i, s in tr.speaker.items() if s == who and _contains(tr, i, quote)}
            elif other is not None:
                out["quotes_misattributed"] += 1
                wrong.add(who)
        if "counselor" in wrong:
            out["client_words_given_to_counselor"] += 1
            per["client_words_given_to_counselor"] += 1
        out["counselor_words_given_to_client"] += "client" in wrong
        evidence = [int(e) for e in pred.get("evidence") or []]
        to_counselor = sum(tr.speaker.get(e) == "counselor" for e in evidence)
        out["evidence_links"] += len(evidence)
        out["evidence_links_to_counselor_turns"] += to_counselor
        per["evidence_links_to_counselor_turns"] += to_counselor
        out["predictions_with_counselor_evidence"] += bool(to_counselor)
        out["evidence_links_not_backed_by_quote"] += sum(e not in backed for e in evidence)
        ends = rationale.rstrip().endswith("(Line")
        out["rationales_ending_in_line"] += ends
        per["rationales_ending_in_line"] += ends
        out["rationales_containing_line"] += "(Line" in rationale
    return out


def _contains(tr: _Transcript, index: int, quote: str) -> bool:
    """Whether turn ``index`` alone contains ``quote`` (a quote may occur in several turns of a speaker)."""
    return tr.single[index].find(quote) is not None


def format_counts(c: dict) -> str:
    n = c["rationales"]
    modes = ", ".join(f"{m}: {v['rationales']}" for m, v in sorted(c["by_mode"].items()))
    lines = [f"{n} rationales ({modes})",
             f"  client's words given to the counselor: {c['client_words_given_to_counselor']} of {n}",
             f"  counselor's words given to the client: {c['counselor_words_given_to_client']} of {n}",
             f"  misattributed quotes: {c['quotes_misattributed']} of {c['quotes_attributed']}",
             f"  evidence links to counselor turns: {c['evidence_links_to_counselor_turns']} of "
             f"{c['evidence_links']} links ({c['predictions_with_counselor_evidence']} predictions)",
             f"  evidence links not backed by a quote of that turn's speaker: "
             f"{c['evidence_links_not_backed_by_quote']}",
             f"  rationales ending in \"(Line\": {c['rationales_ending_in_line']} "
             f"(containing it: {c['rationales_containing_line']})"]
    for mode, v in sorted(c["by_mode"].items()):
        lines.append(f"  {mode}: client's words to the counselor {v['client_words_given_to_counselor']}, "
                     f"counselor-turn links {v['evidence_links_to_counselor_turns']}, "
                     f"ending in \"(Line\" {v['rationales_ending_in_line']} (of {v['rationales']})")
    if c["skipped_no_session"]:
        lines.append(f"  skipped: {c['skipped_no_session']} predictions of sessions not in the sessions file")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quote_attribution", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", nargs="?", default=str(ROOT / "data" / "sample_predictions.jsonl"),
                    help="predictions JSONL (default: data/sample_predictions.jsonl)")
    ap.add_argument("--sessions", default=str(ROOT / "data" / "sessions.jsonl"),
                    help="sessions JSONL with the transcripts (default: data/sessions.jsonl)")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args(argv)
    counts = count(_read_jsonl(Path(args.predictions), "predictions"), _read_jsonl(Path(args.sessions), "sessions"))
    print(json.dumps(counts, indent=1) if args.json else format_counts(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
