"""The dataset card (``README.md``) of a published curated set, in the Hub's format.

A YAML header (``configs`` naming every split's files, ``license`` left for the releasing lab,
``task_categories``, ``language``, ``size_categories``) and a Markdown body: counts, the shares of
score sources and rationale provenance, inter-rater agreement where items were double-coded
(Krippendorff's alpha, ordinal, and ICC(1,1) with its interval, from
:mod:`care_model.stats.reliability`), the split rule, every field, the training-ready exports, the
privacy statement and the one ``push_to_hub`` command. :func:`card_numbers` holds every figure the
card prints (the tests compare them with the data). Pure.
"""
from __future__ import annotations

from collections import Counter

import yaml

from care_model.core.provenance import RATIONALE_SOURCES
from care_model.core.records import SCORE_SOURCES
from care_model.interchange.hf_dataset import FIELDS

LICENSE_NOTE = "set by the releasing lab before any release (the project does not choose it)"


def agreement(rows: list[dict]) -> dict:
    """Alpha (ordinal) and ICC(1,1) over the double-coded rows' first two coders; None where undefined."""
    from care_model.core.errors import CareError
    from care_model.stats.reliability import icc, krippendorff_alpha

    coded = [r["coder_scores"] for r in rows if r["n_coders"] >= 2]
    out = {"items": len(coded), "alpha": None, "icc": None, "icc_low": None, "icc_high": None, "reason": ""}
    if not coded:
        out["reason"] = "no item was coded independently by two or more experts"
        return out
    width = max(len(c) for c in coded)
    matrix = [[c[j] if j < len(c) else None for c in coded] for j in range(width)]
    a = krippendorff_alpha(matrix, level="ordinal", value_domain=(1, 2, 3, 4, 5))
    out["alpha"], out["reason"] = a.alpha, a.reason
    try:
        one = icc([c[:2] for c in coded])["ICC(1,1)"]
        out.update(icc=one.value, icc_low=one.low, icc_high=one.high)
    except CareError as err:
        out["reason"] = (out["reason"] + "; " if out["reason"] else "") + err.problem
    return out


def card_numbers(rows: list[dict], split_info: dict) -> dict:
    sessions = {r["session_id"] for r in rows}
    clients = {r["client_id"] or f"session:{r['session_id']}" for r in rows}
    n = len(rows)
    score_sources = Counter(r["score_source"] for r in rows)
    provenance = Counter(r["rationale_provenance"] for r in rows)
    return {"rows": n, "sessions": len(sessions), "clients": len(clients),
            "with_rationale": sum(bool(r["rationale"].strip()) for r in rows),
            "splits": {k: sum(r["session_id"] in set(v) for r in rows) for k, v in split_info["splits"].items()},
            "split_sessions": {k: len(v) for k, v in split_info["splits"].items()},
            "score_source_counts": {s: score_sources.get(s, 0) for s in SCORE_SOURCES},
            "provenance_counts": {s: provenance.get(s, 0) for s in RATIONALE_SOURCES},
            "languages": sorted({r["language"] for r in rows}), "agreement": agreement(rows)}


def _share(count: int, n: int) -> str:
    return f"{count} ({100 * count / n:.0f}%)" if n else "0"


def _size(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"


def header(numbers: dict, data_files: dict[str, str], extra_configs: dict[str, dict[str, str]]) -> dict:
    configs = [{"config_name": "default", "default": True,
                "data_files": [{"split": s, "path": p} for s, p in data_files.items()]}]
    configs += [{"config_name": name, "data_files": [{"split": s, "path": p} for s, p in files.items()]}
                for name, files in extra_configs.items()]
    return {"pretty_name": "CARE curated working-alliance ratings and rationales",
            "license": "other", "license_name": "set-by-the-releasing-lab",
            "language": numbers["languages"] or ["en"],
            "task_categories": ["text-classification", "text-generation"],
            "tags": ["working-alliance", "psychotherapy", "counseling", "wai-sr", "rationales"],
            "size_categories": [_size(numbers["rows"])], "configs": configs}


def render_card(rows: list[dict], split_info: dict, data_files: dict[str, str], *, include_transcripts: bool,
                extra_configs: dict[str, dict[str, str]] | None = None, store_name: str = "",
                exports_note: str = "") -> str:
    """The whole ``README.md``."""
    numbers = card_numbers(rows, split_info)
    head = yaml.safe_dump(header(numbers, data_files, extra_configs or {}), sort_keys=False, allow_unicode=True)
    n = numbers["rows"]
    ag = numbers["agreement"]
    lines = ["---", f"# license: {LICENSE_NOTE}", head.rstrip(), "---", "",
             "# CARE curated working-alliance ratings and rationales", "",
             "Curated labels of counseling sessions: for each item of the Working Alliance Inventory short form "
             "(WAI-SR, 12 items, Goal/Task/Bond, scored 1-5), a score and a rationale that cites the dialogue, "
             "curated in CARE Review Studio" + (f" (store `{store_name}`)" if store_name else "") + ". "
             "One row per session and item.", "",
             "## Counts", "",
             f"- rows (session-items): {n}; sessions: {numbers['sessions']}; clients: {numbers['clients']}",
             f"- rows with a rationale: {_share(numbers['with_rationale'], n)}",
             "- splits: " + ", ".join(f"{k} {v} rows / {numbers['split_sessions'][k]} sessions"
                                      for k, v in numbers["splits"].items()), "",
             "| score source | rows |", "|---|---|"]
    lines += [f"| {k} | {_share(v, n)} |" for k, v in numbers["score_source_counts"].items()]
    lines += ["", "| rationale provenance | rows |", "|---|---|"]
    lines += [f"| {k} | {_share(v, n)} |" for k, v in numbers["provenance_counts"].items()]
    lines += ["", "## Inter-rater agreement", ""]
    if ag["items"]:
        alpha = "undefined" if ag["alpha"] is None else f"{ag['alpha']:.3f}"
        icc_text = ("undefined" if ag["icc"] is None
                    else f"{ag['icc']:.3f} [{ag['icc_low']:.3f}, {ag['icc_high']:.3f}] (95% F-interval)")
        lines += [f"{ag['items']} items were coded independently by two or more experts "
                  "(`n_coders`, `coder_scores`). Krippendorff's alpha (ordinal): " + alpha +
                  f"; ICC(1,1) of the first two coders: {icc_text}." + (f" ({ag['reason']})" if ag["reason"] else ""),
                  "The curated score of such an item is the lower median of the coders' scores unless an "
                  "adjudicator settled it (`curation`)."]
    else:
        lines += [f"Not available: {ag['reason']}."]
    lines += ["", "## Splits", "", f"By client: {split_info['rule']}. Every row has its `fold`; the clients "
              f"of one fold appear in no other ({split_info.get('n_clients', numbers['clients'])} clients).", "",
              "## Fields", "", "| field | type | description |", "|---|---|---|"]
    lines += [f"| `{k}` | {t} | {d} |" for k, (t, d) in FIELDS.items()
              if k != "transcript" or include_transcripts]
    lines += ["", "## Training-ready exports", "", exports_note or
              "Not included: the SFT and preference files contain the prompt, and so the transcript; they are "
              "written only with `--include-transcripts`.", "",
              "## Privacy", ""]
    if include_transcripts:
        lines += ["Transcripts **are included** (`transcript`, and the prompts of the training-ready exports). "
                  "Every included session passed the store's de-identification review before this release. "
                  "Client and counselor ids are the store's pseudonyms."]
    else:
        lines += ["Transcripts are **not included**: rows hold scores, rationales and evidence turn numbers only. "
                  "Rationales quote the dialogue, so they can still hold identifying words: review them before "
                  "release. Client and counselor ids are the store's pseudonyms."]
    lines += ["", "## Intended use and limits", "",
              "Research on working-alliance rating and on rationale generation. Not a clinical instrument: the "
              "scores are questionnaire answers and expert judgements, not diagnoses.", "",
              "## License", "", f"`license: other`: {LICENSE_NOTE}. Edit the YAML header before publishing.", "",
              "## Publishing", "", "Nothing here calls the network. On a machine with access to the Hub, after "
              "setting the license, upload the folder as it is (this card included):", "",
              "```bash", "hf upload ORG/NAME path/to/this/folder --repo-type dataset", "```", "",
              "(`datasets.load_dataset(\"path/to/this/folder\").push_to_hub(\"ORG/NAME\", private=True)` uploads "
              "the data without this card.)", ""]
    return "\n".join(lines)


def read_header(text: str) -> dict:
    """The YAML header of a card."""
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text[4:text.index("\n---", 4)]) or {}
