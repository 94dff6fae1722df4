"""Preference learning from experts' corrections: a DPO stage after the SFT stage.

An expert who edits or rewrites a model suggestion states a preference: the curated answer over the
model's. :mod:`care_model.text.preference_pairs` turns the training sessions' curated labels into
pairs (``chosen``: the curated score and rationale; ``rejected``: the differing model text it
started from, with the model's score). With ``dpo_steps > 0`` (:class:`~care_model.training.config.DPOStage`)
a run continues its SFT LoRA adapter with TRL's ``DPOTrainer`` on those pairs.

* **Pairs are frozen when the run is prepared** (:func:`write_pairs`, the store's owner, only the
  run's *training* sessions: a cross-validation fold never sees a pair of its held-out clients), to
  ``<run_dir>/preference_pairs.jsonl`` (a header with the counts, then one pair per line).
* **Tokens are the SFT stage's** (:func:`dpo_rows`): the prompt is ``prefix_ids + suffix_ids`` of
  :func:`care_model.training.data.session_tokens` (same chat template, same transcript cut, prefix
  and suffix tokenised apart as inference does), each answer is the pair's answer text tokenised the
  same way, cut to ``max_answer_tokens`` and closed with the template's end-of-turn token(s). TRL's
  own tokenisation (which re-renders the prompt as one string and appends ``eos_token`` text) is
  bypassed: :class:`PretokenizedDPOTrainer` takes ``prompt_ids``/``chosen_ids``/``rejected_ids`` rows
  as they are. So DPO moves the probabilities of exactly the sequences SFT learned and inference reads.
* **Reference = the SFT adapter.** TRL copies a peft model's ``default`` adapter into a frozen
  ``ref`` adapter; its log-probabilities are computed once before training
  (``precompute_ref_log_probs``; cheap on a CPU); ``ref`` is deleted before the adapter is saved.
* **Budget**: ``steps x batch_size`` pairs are drawn (seeded) from the run's pairs; fewer pairs are
  cycled over epochs. The stage runs in one process (a DDP run refuses it: TRL's trainer would start
  its own accelerator).

Saves ``<run_dir>/adapter-dpo/`` and returns :class:`DPOResult` (pairs used, DPO losses per step, and
on a few pairs the log-probability margin chosen - rejected before and after). No store access in the
training part.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from care_model.core.errors import ConfigError, TrainingError

PAIRS_FILE = "preference_pairs.jsonl"
ADAPTER_DIR = "adapter-dpo"
DIAGNOSTIC_PAIRS = 2   # pairs whose log-prob margin is measured before and after (two forwards each, twice)


# ----------------------------------------------------------------------------- pairs (store owner)
def pairs_for_sessions(repo, snapshot, session_ids, config):
    """:class:`care_model.text.preference_pairs.PairSet` of ``session_ids`` (curated labels of the
    snapshot, their labels and model texts from the store), provenance from ``config.dpo_provenance``."""
    from care_model.text.preference_pairs import preference_pairs

    sids = [s for s in sorted(set(session_ids)) if s in snapshot.labels]
    labels = [lab for s in sids for lab in repo.labels(s)]
    preds = [p for s in sids for p in repo.predictions(s, history=True)]
    return preference_pairs({s: snapshot.sessions[s] for s in sids}, {s: snapshot.labels[s] for s in sids},
                            labels, preds, provenance=tuple(config.dpo_provenance), perspective=config.perspective)


def write_pairs(repo, snapshot, session_ids, config, run_dir: Path | str) -> dict:
    """Freeze the training sessions' pairs into the run folder; returns the header (counts)."""
    pairs = pairs_for_sessions(repo, snapshot, session_ids, config)
    header = {"kind": "header", "n_pairs": len(pairs.pairs), "skipped": pairs.skipped,
              "provenance": list(config.dpo_provenance), "sessions": len(set(session_ids)),
              "score_differs": sum(p["chosen_score"] != p["rejected_score"] for p in pairs.pairs)}
    path = Path(run_dir) / PAIRS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header, ensure_ascii=False) + "\n")
        for p in pairs.pairs:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return header


def read_pairs(run_dir: Path | str) -> tuple[dict, list[dict]]:
    path = Path(run_dir) / PAIRS_FILE
    if not path.is_file():
        raise TrainingError(f"The run {run_dir} asks for a DPO stage but has no {PAIRS_FILE}.",
                            "Prepare the run again with the recipe's dpo_steps set (the pairs are frozen then).")
    lines = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return (lines[0] if lines else {}), lines[1:]


def answer_of(value) -> str:
    """The answer text of a pair's ``chosen``/``rejected`` (standard: the text; conversational: the
    assistant message's content)."""
    if isinstance(value, str):
        return value
    return "".join(m.get("content", "") for m in value if m.get("role") == "assistant")


# ----------------------------------------------------------------------------- rows (tokens)
def dpo_rows(pairs: list[dict], sessions: dict, tokenizer, config, model_config=None) -> list[dict]:
    """One TRL preference row per pair, tokenised as the SFT stage tokenises (module docstring):
    ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (+ ``session_id``, ``item``)."""
    from care_model.training.data import _enc, end_of_turn_ids, session_tokens

    eot = end_of_turn_ids(tokenizer, model_config)
    room = max(1, config.max_answer_tokens - len(eot))
    by_session: dict[str, list[dict]] = {}
    for p in pairs:
        if p["session_id"] not in sessions:
            raise TrainingError(f"A preference pair names session {p['session_id']}, which is not in the run's "
                                "snapshot.", "Prepare the run again (pairs and snapshot are frozen together).")
        by_session.setdefault(p["session_id"], []).append(p)
    rows = []
    for sid in sorted(by_session):
        items = sorted({int(p["item"]) for p in by_session[sid]})
        # the prompt as SFT builds it (labels only pick the items; their answers are not used here)
        st = session_tokens(sessions[sid], [SimpleNamespace(item=i, score=1, rationale="") for i in items],
                            tokenizer, model_config=model_config, perspective=config.perspective,
                            max_prompt_tokens=config.max_prompt_tokens,
                            answer_reserve_tokens=config.answer_reserve_tokens,
                            max_answer_tokens=config.max_answer_tokens, eot=eot)
        suffix = {it.item: it.suffix_ids for it in st.items}
        for p in sorted(by_session[sid], key=lambda x: int(x["item"])):
            rows.append({"session_id": sid, "item": int(p["item"]),
                         "prompt_ids": list(st.prefix_ids) + list(suffix[int(p["item"])]),
                         "chosen_ids": _enc(tokenizer, answer_of(p["chosen"]))[:room] + eot,
                         "rejected_ids": _enc(tokenizer, answer_of(p["rejected"]))[:room] + eot})
    return rows


def pick_rows(rows: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` rows (seeded order); all of them, cycled, when there are fewer."""
    order = list(range(len(rows)))
    random.Random(seed * 7919 + 17).shuffle(order)
    return [rows[i] for i in order[:n]]


# ----------------------------------------------------------------------------- log-probs
def sequence_logps(model, rows: list[dict], pad_id: int) -> list[tuple[float, float]]:
    """(log p(chosen | prompt), log p(rejected | prompt)) under ``model`` as it is (its active adapter)."""
    import torch

    out = []
    was = model.training
    model.eval()
    with torch.no_grad():
        for r in rows:
            pair = []
            for key in ("chosen_ids", "rejected_ids"):
                ids = torch.tensor([r["prompt_ids"] + r[key]], device=model.device)
                logits = model(input_ids=ids, use_cache=False).logits[0, len(r["prompt_ids"]) - 1:-1].float()
                target = ids[0, len(r["prompt_ids"]):]
                pair.append(float(torch.log_softmax(logits, -1).gather(1, target[:, None]).sum()))
            out.append((pair[0], pair[1]))
    if was:
        model.train()
    return out


# ----------------------------------------------------------------------------- the stage
@dataclass
class DPOResult:
    adapter_dir: str | None
    n_pairs_available: int
    n_pairs_used: int
    steps: int
    beta: float
    losses: list = field(default_factory=list)
    step_margins: list = field(default_factory=list)   # TRL's rewards/margins of each step's batch (before its update)
    # on the first DIAGNOSTIC_PAIRS used pairs: mean log p(chosen) - log p(rejected) under the SFT adapter
    # (before) and the DPO adapter (after), and the share of them whose difference grew
    margin_before: float | None = None
    margin_after: float | None = None
    pairs_preferred_after: float | None = None
    elapsed_s: float = 0.0
    skipped: str | None = None           # why no stage ran (no pairs)
    cancelled: bool = False              # stopped by CANCEL before its last step (nothing saved)

    def to_dict(self) -> dict:
        return asdict(self)


def _trainer_class():
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer on rows already tokenised as the SFT stage tokenises (see the module docstring)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            first = next(iter(dataset))
            if not {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(first):
                raise TrainingError("The DPO rows are not tokenised.", "Build them with care_model.training.dpo."
                                    "dpo_rows.")
            return dataset

    return PretokenizedDPOTrainer


def run_dpo_stage(run_dir: Path | str, config, model, tokenizer, pairs: list[dict], sessions: dict, *,
                  progress=None, world_size: int = 1) -> DPOResult:
    """Continue the SFT adapter of ``model`` (a peft model) with DPO on ``pairs``; save ``adapter-dpo/``."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig

    stage = config.dpo_stage()
    if stage is None:
        raise ConfigError("run_dpo_stage was called with dpo_steps: 0.", "Set dpo_steps to a positive number.")
    if world_size > 1:
        raise ConfigError("The DPO stage runs in one process, and this run has several.",
                          "Run the retraining with one process (no accelerate launch / torchrun), or set "
                          "dpo_steps: 0.")
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    emit = progress or (lambda *a, **k: None)
    rows = dpo_rows(pairs, sessions, tokenizer, config, model.config)
    result = DPOResult(adapter_dir=None, n_pairs_available=len(rows), n_pairs_used=0, steps=stage.steps,
                       beta=stage.beta)
    if not rows:
        result.skipped = "no preference pairs in the training sessions"
        emit("stage", message="DPO stage skipped: no preference pairs in the training sessions")
        return result
    used = pick_rows(rows, stage.steps * stage.batch_size, config.seed)
    result.n_pairs_used = len(used)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    probe = used[:DIAGNOSTIC_PAIRS]
    before = sequence_logps(model, probe, pad_id)
    cpu = not torch.cuda.is_available()
    args = DPOConfig(output_dir=str(run_dir / "dpo"), max_steps=stage.steps,
                     per_device_train_batch_size=stage.batch_size, gradient_accumulation_steps=1,
                     learning_rate=stage.learning_rate, lr_scheduler_type="constant", warmup_steps=0,
                     beta=stage.beta, loss_type=[stage.loss_type], precompute_ref_log_probs=True,
                     precompute_ref_batch_size=1, max_length=None, seed=config.seed, data_seed=config.seed,
                     use_cpu=cpu, bf16=False if cpu else model.dtype == torch.bfloat16, report_to=[],
                     save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
                     remove_unused_columns=True, gradient_checkpointing=config.gradient_checkpointing,
                     max_grad_norm=config.max_grad_norm or 0.0, weight_decay=0.0)

    class _Progress(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                result.losses.append(round(float(logs["loss"]), 6))
                result.step_margins.append(logs.get("rewards/margins"))
                emit("dpo_step", step=state.global_step, total_steps=stage.steps, loss=round(float(logs["loss"]), 6),
                     margin=logs.get("rewards/margins"), elapsed_s=round(time.perf_counter() - t0, 2))

        def on_step_end(self, _args, state, control, **kw):
            from care_model.training.runs import cancel_requested

            if cancel_requested(run_dir):
                result.cancelled = control.should_training_stop = True

    emit("stage", message=f"DPO stage: {stage.steps} steps on {len(used)} of {len(rows)} preference pairs")
    trainer = _trainer_class()(model=model, ref_model=None, args=args,
                               train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt_ids", "chosen_ids",
                                                                                   "rejected_ids")} for r in used]),
                               processing_class=tokenizer, callbacks=[_Progress()])
    trainer.train()
    if (run_dir / "dpo").is_dir() and not any((run_dir / "dpo").iterdir()):
        (run_dir / "dpo").rmdir()  # TRL's output_dir: nothing is saved there (save_strategy "no")
    if result.cancelled:
        result.elapsed_s = round(time.perf_counter() - t0, 2)
        return result
    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" in peft_model.peft_config:
        peft_model.set_adapter("default")
        peft_model.delete_adapter("ref")
    after = sequence_logps(peft_model, probe, pad_id)
    diffs = [(a[0] - a[1]) - (b[0] - b[1]) for a, b in zip(after, before)]
    result.margin_before = sum(c - r for c, r in before) / len(before)
    result.margin_after = sum(c - r for c, r in after) / len(after)
    result.pairs_preferred_after = sum(d > 0 for d in diffs) / len(diffs)
    folder = run_dir / ADAPTER_DIR
    peft_model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    result.adapter_dir = str(folder.resolve())
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    emit("dpo_done", adapter=result.adapter_dir, margin_before=result.margin_before, margin_after=result.margin_after,
         elapsed_s=result.elapsed_s)
    return result
