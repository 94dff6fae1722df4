"""The curated set as a Hugging Face dataset: one row per (session, item), Parquet splits by client.

Rows (:func:`curated_rows`) come from the curated set's one rule (:mod:`care_model.text.curation`)
over *all* submitted labels: every score source and every rationale provenance, each row saying
which (``score_source``, ``rationale_provenance``), so users choose what to learn from as the
project's recipes do. :data:`FIELDS` describes every column (the dataset card prints it).

Splits (:func:`split_sessions`): the folds cross-validation uses
(:func:`care_model.stats.folds.cross_validation_folds`: by client, a session without a client id
its own client, stratified on the session's mean curated score, ``k`` = min(5, clients), seed 0);
fold 0 is ``test``, the others ``train``, and every row carries its ``fold`` so the K-fold
protocol can be reproduced. With fewer than 2 clients there is one ``train`` split.

Transcripts (``transcript``: the numbered turns) only when asked for; the caller (the publish job)
checks the de-identification review first. Pure apart from :func:`write_parquet` (files).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Iterable

from care_model.core.provenance import normalise
from care_model.core.records import ADJUDICATED, SHARED, Label, Prediction, Session
from care_model.core.wai import load_form
from care_model.text.curation import CURATION_RULE, curate_item, submitted_by_item

DEFAULT_K, DEFAULT_SEED = 5, 0

# column -> (type for the card, description)
FIELDS: dict[str, tuple[str, str]] = {
    "session_id": ("string", "the session's id in the releasing store"),
    "client_id": ("string", "pseudonymous client id (empty: the session's own client)"),
    "counselor_id": ("string", "pseudonymous counselor id"),
    "language": ("string", "transcript language (en, zh)"),
    "form": ("string", "the questionnaire (wai-sr: Working Alliance Inventory, short revised)"),
    "item": ("int32", "item number (1-12 for the WAI-SR)"),
    "dimension": ("string", "the item's dimension (goal, task, bond)"),
    "item_text": ("string", "the item's statement, client perspective"),
    "score": ("int32", "the curated score, 1-5"),
    "score_source": ("string", "where the score came from: client_self_report (the client's own WAI-SR rating), "
                               "expert (an expert's judgement), adjudicated (an adjudicator's final label)"),
    "rationale": ("string", "the curated rationale (may be empty)"),
    "rationale_provenance": ("string", "where the rationale came from: expert (written or rewritten), edited "
                                       "(model text with a light edit), accepted / bulk_accepted (model text "
                                       "unchanged), unknown (saved before provenance was recorded)"),
    "evidence": ("list<int32>", "transcript turn indices (0-based) the rationale cites"),
    "curation": ("string", "which curation rule chose the label: adjudicated, shared, or median_of_N (lower median "
                           "of N independent experts)"),
    "annotator_slot": ("string", "shared (experts edited one label together), independent (coded alone), "
                                 "adjudicated"),
    "n_coders": ("int32", "how many experts coded the item independently (0: not double-coded)"),
    "coder_scores": ("list<int32>", "the independent experts' scores, sorted (empty: not double-coded)"),
    "coders_agree": ("bool", "all independent experts gave the same score (null: not double-coded)"),
    "suggestion_model_version": ("string", "model version of the suggestion the label started from (empty: none)"),
    "suggestion_score": ("int32", "that suggestion's score (null: none)"),
    "fold": ("int32", "cross-validation fold (by client); fold 0 is the test split"),
    "transcript": ("list<struct{index:int32,speaker:string,text:string}>",
                   "the numbered turns; only in releases made with --include-transcripts after the "
                   "de-identification review"),
}


def _slot(annotator: str) -> str:
    return {SHARED: "shared", ADJUDICATED: "adjudicated"}.get(annotator, "independent")


def curated_rows(sessions: dict[str, Session], labels: Iterable[Label], predictions: Iterable[Prediction] = (), *,
                 include_transcripts: bool = False) -> list[dict]:
    """One row per curated (session, item) of ``sessions`` (see :data:`FIELDS`), sessions in id
    order, items in order; ``fold`` is filled by :func:`split_sessions`."""
    pred_by_id = {p.id: p for p in predictions}
    rows = []
    for (sid, item), labs in sorted(submitted_by_item(labels).items()):
        if sid not in sessions:
            continue
        cur = curate_item(labs)
        if cur is None:
            continue
        s = sessions[sid]
        form = load_form(s.form)
        chosen = [lab for lab in labs if lab.id in cur.label_ids]
        src = max([lab for lab in chosen if normalise(lab.rationale) == normalise(cur.rationale)
                   and lab.score == cur.score] or chosen, key=lambda lab: (lab.updated_at, lab.annotator))
        pred = pred_by_id.get(src.prediction_id or "")
        independent = sorted(int(lab.score) for lab in labs if lab.annotator not in (SHARED, ADJUDICATED))
        double = len(independent) >= 2
        row = {"session_id": sid, "client_id": s.client_id, "counselor_id": s.counselor_id, "language": s.language,
               "form": form.id, "item": int(item), "dimension": form.dimension_of(item),
               "item_text": form.item_text(item, "client", s.language), "score": cur.score,
               "score_source": cur.score_source, "rationale": cur.rationale,
               "rationale_provenance": cur.rationale_source, "evidence": sorted(int(e) for e in cur.evidence),
               "curation": cur.source, "annotator_slot": _slot(src.annotator),
               "n_coders": len(independent) if double else 0, "coder_scores": independent if double else [],
               "coders_agree": (len(set(independent)) == 1) if double else None,
               "suggestion_model_version": pred.model_version if pred else "",
               "suggestion_score": pred.score if pred else None, "fold": 0}
        if include_transcripts:
            row["transcript"] = [{"index": t.index, "speaker": t.speaker, "text": t.text} for t in s.turns]
        rows.append(row)
    return rows


def split_sessions(rows: list[dict], *, k: int = DEFAULT_K, seed: int = DEFAULT_SEED) -> dict:
    """Fills each row's ``fold``; returns ``{"splits": {name: [session ids]}, "k", "seed", "rule"}``."""
    from care_model.stats.folds import cross_validation_folds

    by_session: dict[str, list[dict]] = {}
    for r in rows:
        by_session.setdefault(r["session_id"], []).append(r)
    sids = sorted(by_session)
    client = {sid: by_session[sid][0]["client_id"] or f"session:{sid}" for sid in sids}
    n_clients = len(set(client.values()))
    k_used = min(k, n_clients)
    if k_used < 2:
        for r in rows:
            r["fold"] = 0
        return {"splits": {"train": sids}, "k": 1, "seed": seed, "n_clients": n_clients,
                "rule": "one train split: fewer than 2 clients, so no split by client is possible"}
    entries = [(sid, client[sid], statistics.mean(r["score"] for r in by_session[sid])) for sid in sids]
    strata = "stratified on the session's mean curated score"
    try:
        folds = cross_validation_folds(entries, k=k_used, seed=seed)
    except ValueError:  # sklearn: too few sessions per score stratum for k folds; split by client alone
        folds = cross_validation_folds(entries, k=k_used, seed=seed, n_bins=1)
        strata = "not stratified: too few sessions per score stratum"
    fold_of = {sid: n for n, (_, test) in enumerate(folds) for sid in test}
    for r in rows:
        r["fold"] = fold_of[r["session_id"]]
    return {"splits": {"train": [s for s in sids if fold_of[s] != 0], "test": [s for s in sids if fold_of[s] == 0]},
            "k": k_used, "seed": seed, "n_clients": n_clients,
            "rule": (f"{k_used} folds by client (care_model.stats.folds.cross_validation_folds, seed {seed}, "
                     f"{strata}; a session without a client id is its own client), as cross-validation splits them; "
                     "fold 0 is the test split")}


def features(include_transcripts: bool):
    """The ``datasets.Features`` of the rows (explicit, so empty lists and nulls keep their types)."""
    from datasets import Features, List, Value

    spec = {}
    for name, (kind, _) in FIELDS.items():
        if name == "transcript":
            if include_transcripts:
                spec[name] = List({"index": Value("int32"), "speaker": Value("string"), "text": Value("string")})
        elif kind.startswith("list<"):
            spec[name] = List(Value("int32"))
        else:
            spec[name] = Value(kind)
    return Features(spec)


def write_parquet(folder: Path, rows: list[dict], splits: dict, *, include_transcripts: bool) -> dict[str, str]:
    """Writes ``data/<split>-00000-of-00001.parquet`` per split; split -> relative path."""
    from datasets import Dataset

    out = {}
    (folder / "data").mkdir(parents=True, exist_ok=True)
    feats = features(include_transcripts)
    for name, sids in splits["splits"].items():
        keep = set(sids)
        part = [r for r in rows if r["session_id"] in keep]
        rel = f"data/{name}-00000-of-00001.parquet"
        Dataset.from_list(part, features=feats).to_parquet(str(folder / rel))
        out[name] = rel
    return out


RULE = CURATION_RULE
