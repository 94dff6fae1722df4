"""Training-ready exports of the curated set: SFT in chat and Alpaca form, and preference pairs.

Every example is the project's own prompt and answer (:mod:`care_model.text.prompt`, the messages
of :func:`care_model.text.preference_pairs.item_prompts`; the answer
:func:`~care_model.text.prompt.answer_text`: the option number, then the rationale), so another
trainer learns exactly what ``care retrain`` learns:

* ``chat``:    ``{"messages": [system, user, assistant], ...metadata}`` (TRL's conversational
               language-modeling format; LLaMA-Factory's ShareGPT/OpenAI layout);
* ``alpaca``:  ``{"instruction": user text, "input": "", "output": answer, "system": system text,
               ...metadata}`` (LLaMA-Factory's Alpaca format with its ``system`` column);
* ``preference``: :mod:`care_model.text.preference_pairs` in TRL's conversational preference
               format (``prompt``, ``chosen``, ``rejected``).

Which labels: by default those a training snapshot takes (rationale provenance expert or edited:
:data:`care_model.core.provenance.DEFAULT_PROVENANCE`; model text saved unchanged is never an SFT
target) with a non-empty rationale, of every score source (each row says which). Pure: records in,
dicts and JSON lines out.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from care_model.core.provenance import DEFAULT_PROVENANCE
from care_model.core.records import Label, Prediction, Session
from care_model.text.curation import curate_item, submitted_by_item
from care_model.text.preference_pairs import preference_pairs
from care_model.text.prompt import answer_text

FORMATS = ("chat", "alpaca", "preference")


def curated_by_session(labels: Iterable[Label], session_ids: Iterable[str]) -> dict[str, list]:
    keep = set(session_ids)
    out: dict[str, list] = {}
    for (sid, _item), labs in sorted(submitted_by_item(labels).items()):
        cur = curate_item(labs) if sid in keep else None
        if cur is not None:
            out.setdefault(sid, []).append(cur)
    return out


def sft_rows(sessions: dict[str, Session], labels: Iterable[Label], *,
             provenance: Iterable[str] = DEFAULT_PROVENANCE, perspective: str = "client") -> list[dict]:
    """Chat rows (see the module docstring), sessions in id order, items in order."""
    from care_model.text.preference_pairs import item_prompts

    wanted = set(provenance)
    rows = []
    for sid, curated in sorted(curated_by_session(labels, sessions).items()):
        keep = [c for c in curated if c.rationale_source in wanted and c.rationale.strip()]
        if not keep:
            continue
        s = sessions[sid]
        prompts = item_prompts(s, [c.item for c in keep], perspective=perspective)
        for c in keep:
            rows.append({"messages": prompts[c.item] + [{"role": "assistant",
                                                         "content": answer_text(c.score, c.rationale, s.language)}],
                         "session_id": sid, "item": c.item, "client_id": s.client_id or f"session:{sid}",
                         "score": c.score, "score_source": c.score_source,
                         "rationale_provenance": c.rationale_source})
    return rows


def alpaca_row(chat_row: dict) -> dict:
    system, user, answer = chat_row["messages"]
    meta = {k: v for k, v in chat_row.items() if k != "messages"}
    return {"instruction": user["content"], "input": "", "output": answer["content"], "system": system["content"],
            **meta}


def pair_rows(sessions: dict[str, Session], labels: list[Label], predictions: list[Prediction]) -> tuple[list, dict]:
    """Preference pairs (conversational) and the counts of labels that gave none, by reason."""
    result = preference_pairs(sessions, curated_by_session(labels, sessions), labels, predictions)
    return result.pairs, result.skipped


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Rows as JSON lines, written to a temporary file and renamed, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return n


def write_exports(folder: Path, sessions: dict[str, Session], labels: list[Label], predictions: list[Prediction],
                  splits: dict[str, list[str]]) -> dict:
    """``sft/chat-<split>.jsonl``, ``sft/alpaca-<split>.jsonl``, ``preference/<split>.jsonl`` per
    split, each with its Parquet twin; returns ``{"configs": {config: {split: parquet}}`` (what the card names),
    ``"files": {config: {split: jsonl}}, "counts": {...}, "skipped": {...}}``."""
    configs: dict[str, dict[str, str]] = {"sft_chat": {}, "sft_alpaca": {}, "preference": {}}
    files: dict[str, dict[str, str]] = {k: {} for k in configs}
    counts: dict[str, dict[str, int]] = {k: {} for k in configs}
    skipped: dict[str, int] = {}
    for split, sids in splits.items():
        part = {sid: sessions[sid] for sid in sids}
        chat = sft_rows(part, labels)
        pairs, skip = pair_rows(part, labels, predictions)
        for k, v in skip.items():
            skipped[k] = skipped.get(k, 0) + v
        for config, rel, rows in (("sft_chat", f"sft/chat-{split}.jsonl", chat),
                                  ("sft_alpaca", f"sft/alpaca-{split}.jsonl", [alpaca_row(r) for r in chat]),
                                  ("preference", f"preference/{split}.jsonl", pairs)):
            counts[config][split] = write_jsonl(folder / rel, rows)
            files[config][split] = rel
            if rows:  # a dataset folder has one file format for all its configs: its loader reads Parquet twins
                configs[config][split] = write_parquet_twin(folder / rel, rows)
    return {"configs": {k: v for k, v in configs.items() if v}, "files": files, "counts": counts, "skipped": skipped}


def write_parquet_twin(jsonl: Path, rows: list[dict]) -> str:
    """The rows of ``jsonl`` as ``<same name>.parquet`` beside it (owner-only); returns its path relative to the
    dataset folder. `datasets.load_dataset` picks one builder for a folder, so every config the card names
    is Parquet, while the JSONL files stay for TRL and LLaMA-Factory command lines."""
    from datasets import Dataset

    out = jsonl.with_suffix(".parquet")
    tmp = out.with_name(out.name + ".tmp")
    Dataset.from_list(rows).to_parquet(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)
    return f"{out.parent.name}/{out.name}"


def exports_note(info: dict) -> str:
    c = info["counts"]
    fmt = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
    return ("The project's own prompt and answer (line 1 the option number, line 2 the rationale), for TRL or "
            "LLaMA-Factory. Labels whose rationale an expert wrote or edited (`expert`, `edited`; model text "
            "saved unchanged is never a target).\n\n"
            f"- `sft_chat` (TRL conversational: `messages`): {fmt(c['sft_chat'])} rows\n"
            f"- `sft_alpaca` (`instruction`, `input`, `output`, `system`): {fmt(c['sft_alpaca'])} rows\n"
            f"- `preference` (TRL conversational preference: `prompt`, `chosen` = the expert's rationale, "
            f"`rejected` = the model text it started from): {fmt(c['preference'])} pairs; labels without a pair: "
            + (", ".join(f"{k} {v}" for k, v in info["skipped"].items() if v) or "none"))
