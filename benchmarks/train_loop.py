"""Training loop benchmark (issue 18): our LoRA loop with packed sessions against the library trainers.

The same data for every method: the first ``--sessions`` sample sessions of data/sessions.jsonl,
each item's label as the CPU recipe learns it on a fresh sample store (the client's self-reported
score; ``--rationales drafts`` adds the shipped draft rationale written for that score, from
data/sample_predictions.jsonl, so that answers have a realistic length), tokenised by
:func:`care_model.training.data.session_tokens` (the inference prompt, the transcript cut to the
recipe's ``max_prompt_tokens``). Every optimizer step ``k`` trains the items of the session the
loop's own data order (:func:`care_model.training.loop.global_order`) gives for step ``k``, so all
methods see the same items in the same steps. Same LoRA (r, alpha, target modules, last layers from
``recipes/cpu-smoke.yaml``; dropout 0 by default so step 1 must give the same loss everywhere),
AdamW, learning rate, cosine schedule with the same warmup steps, gradient clipping, float32,
the same number of optimizer steps; the loss of a step is the mean over its answer tokens.

Methods (each in a fresh child process, so peak RSS is its own and every method starts from the
same seed and the same LoRA initialisation):

  ours            care_model.training.loop.train on packed rows (one sequence per session: the
                  transcript once, 12 item branches under a tree attention mask; pack_items=true)
  trl_items       TRL SFTTrainer, completion-only loss, one row per item (prompt = transcript +
                  item suffix, completion = answer): the normal library path; batch 1 x 12
                  accumulation steps = one session per optimizer step
  trainer_packed  transformers.Trainer fed OUR packed rows, our collator (tree mask) and our loss
                  (answer_loss): separates "the packing" from "the loop"
  trainer_items   transformers.Trainer, one row per item, labels -100 on the prompt, the model's
                  own loss (optional: slow, it computes what trl_items computes)
  ours_items      our loop on one row per item (pack_items=false, 12 accumulation steps; optional)

Per method: the loop's wall time (steps only, after loading; ``wall_s`` also counts building the
trainer), trained (answer) tokens per second, processed tokens per second (tokens through the
model), peak RSS of the process, and the loss at every step. Ratios are against ``ours`` measured
in the same run; the method order is rotated per repeat and recorded with the load average.

Smoke run (tiny random model, 3 steps, 256-token transcripts; 2-4 minutes on 2 busy cores, most
of it the child processes' imports; usable in tests)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.train_loop --small --json

The real measurement (SmolLM2-135M-Instruct, float32, CPU; 2 sessions, 3 steps, transcripts cut
to 512 tokens: about 15 minutes on 2 cores shared at load 10; the one-row-per-item library path is
most of it, so keep the steps few)::

    HF_HUB_OFFLINE=1 nohup .venv/bin/python -m benchmarks.train_loop --json --sessions 2 --steps 3 \\
        --max-prompt-tokens 512 > bench-train-loop.json &

Run from the repository root (or with it on PYTHONPATH, or as ``python <repo>/benchmarks/train_loop.py``);
it writes only to temporary folders.

On a GPU add ``--device cuda`` (dtype stays the recipe's float32 unless ``--dtype bfloat16``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO / "data" / "sessions.jsonl"
DRAFTS = REPO / "data" / "sample_predictions.jsonl"
RECIPE = REPO / "recipes" / "cpu-smoke.yaml"
METHODS = ("ours", "trl_items", "trainer_packed", "trainer_items", "ours_items")
DEFAULT_METHODS = "ours,trl_items,trainer_packed"
BASELINE = "ours"


def _log(msg: str) -> None:
    print(f"[bench-train-loop {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _rss_peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


# ----------------------------------------------------------------------------- data (shared by all methods)
def _sessions(path: Path, n: int):
    from care_model.core.records import Session

    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                s = Session.from_dict(json.loads(line))
                if len((s.ratings or {}).get("client") or {}) == 12:
                    out.append(s)
    return out[:n]


def _labels(session, rationales: str) -> list:
    """What the CPU recipe (score_sources client_self_report, rationales curated_or_none) learns on a
    fresh sample store: the self-reported score of every item; ``drafts``: with the shipped draft
    rationale written for that score (if any)."""
    from care_model.text.curation import CuratedLabel

    drafts = {}
    if rationales == "drafts" and DRAFTS.is_file():
        with open(DRAFTS, encoding="utf-8") as fh:
            for line in fh:
                p = json.loads(line)
                if p.get("session_id") == session.id and p.get("drafted_for_score") is not None:
                    drafts[(int(p["item"]), int(p["drafted_for_score"]))] = p.get("rationale") or ""
    return [CuratedLabel(session.id, int(item), int(score), drafts.get((int(item), int(score)), ""), [],
                         "self_report_no_rationale", [], session.created_at, "client_self_report")
            for item, score in sorted(session.ratings["client"].items(), key=lambda kv: int(kv[0]))]


def _session_tokens(spec: dict, tokenizer, model_config, config):
    from care_model.training.data import end_of_turn_ids, session_tokens

    eot = end_of_turn_ids(tokenizer, model_config)
    return [session_tokens(s, _labels(s, spec["rationales"]), tokenizer, model_config=model_config,
                           perspective=config.perspective, max_prompt_tokens=config.max_prompt_tokens,
                           answer_reserve_tokens=config.answer_reserve_tokens,
                           max_answer_tokens=config.max_answer_tokens, eot=eot)
            for s in _sessions(Path(spec["data"]), spec["sessions"])]


def _config(spec: dict, **changes):
    from care_model.training.config import resolve_config

    overrides = {"base_model": spec["base"], "max_steps": spec["steps"], "save_every_steps": 0, "eval_every_steps": 0,
                 "lora_dropout": spec["lora_dropout"], "dtype": spec["dtype"], "validation_fraction": 0.0,
                 "evaluate": False, **spec.get("overrides", {}), **changes}
    return resolve_config(spec["recipe"], overrides)


# ----------------------------------------------------------------------------- one method (child process)
def _trainer_cls(base, kind: str, pad_id: int, record: dict):
    """A Trainer subclass that runs the given rows in order (no shuffling: the step plan decides) and
    records per-step loss, trained and processed tokens."""
    import torch

    from care_model.training.data import answer_loss, collate

    class Bench(base):
        def _get_train_sampler(self, *a, **k):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            record["_tok"] += int(inputs["input_ids"].numel())
            record["_ans"] += int((inputs["labels"][:, 1:] != -100).sum())
            if kind == "packed":  # our loss: summed over answer tokens, divided by the step's answer tokens
                loss, _ = answer_loss(model, inputs, reduction="sum")
                loss = loss / (num_items_in_batch if num_items_in_batch is not None else 1)
                out = (loss, None)
            else:
                # return_outputs=False: TRL's fused LM head would otherwise run a second forward for the logits
                out = (super().compute_loss(model, inputs, return_outputs=False, num_items_in_batch=num_items_in_batch),
                       None)
            record["_loss"] += float(out[0].detach())
            return out if return_outputs else out[0]

    if kind == "packed":
        collator = lambda rows: collate(rows, pad_id)  # noqa: E731
    else:
        def collator(rows):
            L = max(len(r["input_ids"]) for r in rows)
            ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
            labels = torch.full((len(rows), L), -100, dtype=torch.long)
            mask = torch.zeros((len(rows), L), dtype=torch.long)
            for i, r in enumerate(rows):
                n = len(r["input_ids"])
                ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
            return {"input_ids": ids, "labels": labels, "attention_mask": mask}
    return Bench, collator


def _step_callback(record: dict):
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            record["_t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            record["step_end_s"].append(round(time.perf_counter() - record["_t0"], 3))
            record["loss"].append(round(record["_loss"], 6))
            record["tokens_per_step"].append(record["_tok"])
            record["answer_tokens_per_step"].append(record["_ans"])
            record["_loss"] = 0.0
            record["_tok"] = record["_ans"] = 0

    return Steps()


def run_method(spec: dict, method: str) -> dict:
    """Train with one method; returns its figures (see the module docstring)."""
    import torch
    from accelerate.utils import set_seed
    from datasets import Dataset, DatasetDict

    from care_model.training.data import item_rows, packed_row
    from care_model.training.loop import global_order, load_for_training, train
    from care_model.training.run import make_accelerator

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    t_wall = time.perf_counter()
    packed = method in ("ours", "trainer_packed")
    config = _config(spec, pack_items=packed)
    n_items_hint = 12
    if not packed:  # one row per item: the 12 items of a session are one optimizer step
        config = config.replace(per_device_batch_size=1, gradient_accumulation_steps=n_items_hint)
    set_seed(config.seed)
    accelerator = make_accelerator()
    tokenizer, model = load_for_training(config, accelerator)
    sts = _session_tokens(spec, tokenizer, model.config, config)
    if any(len(st.items) != n_items_hint for st in sts):
        raise SystemExit("every session needs 12 labelled items")
    steps = spec["steps"]
    plan = [idx[0] for idx in global_order(len(sts), config.seed, 1, steps)]  # session of each optimizer step
    load_s = time.perf_counter() - t_wall
    record: dict = {"method": method, "loss": [], "step_end_s": [], "tokens_per_step": [], "answer_tokens_per_step": [],
                    "_loss": 0.0, "_tok": 0, "_ans": 0, "plan": [sts[i].session_id for i in plan],
                    "threads": torch.get_num_threads(), "load_s": round(load_s, 2)}
    warmup = int(config.warmup_ratio * steps)

    if method in ("ours", "ours_items"):
        rows = [packed_row(st) for st in sts] if packed else [r for st in sts for r in item_rows(st)]
        if not packed:  # the loop draws rows by its own permutation: give it the rows in the step plan instead
            rows = [r for i in plan for r in item_rows(sts[i])]
        ds = DatasetDict(train=Dataset.from_list(rows), validation=Dataset.from_list([]))
        run_dir = Path(tempfile.mkdtemp(prefix="care-bench-loop-"))
        if not packed:  # identity order: global_order over len(rows) with a permutation would reshuffle items
            import care_model.training.loop as loop_mod

            loop_mod.global_order = lambda n, seed, gb, total: [list(range(k * gb, (k + 1) * gb)) for k in range(total)]
        result = train(run_dir, config, ds, tokenizer, model, accelerator)
        events = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
        st_ev = [e for e in events if e["event"] == "step"]
        record["loss"] = [round(e["loss"], 6) for e in st_ev]
        record["step_end_s"] = [e["elapsed_s"] for e in st_ev]
        record["tokens_per_step"] = [e["tokens"] for e in st_ev]
        ans = {st.session_id: sum(len(it.answer_ids) for it in st.items) for st in sts}
        record["answer_tokens_per_step"] = [ans[sts[i].session_id] for i in plan]
        record["loop_s"] = round(result.elapsed_s, 3)
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        from transformers import Trainer, TrainingArguments

        if packed:
            rows = [packed_row(sts[i]) for i in plan]
        else:
            rows = [r for i in plan for r in item_rows(sts[i])]
        out_dir = tempfile.mkdtemp(prefix="care-bench-trainer-")
        common = dict(output_dir=out_dir, max_steps=steps, per_device_train_batch_size=config.per_device_batch_size,
                      gradient_accumulation_steps=config.gradient_accumulation_steps,
                      learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=warmup,
                      weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, optim="adamw_torch",
                      logging_steps=1, save_strategy="no", report_to="none", seed=config.seed, data_seed=config.seed,
                      use_cpu=accelerator.device.type == "cpu", bf16=config.dtype == "bfloat16", fp16=False,
                      remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True,
                      gradient_checkpointing=config.gradient_checkpointing)
        if method == "trl_items":
            from trl import SFTConfig, SFTTrainer

            base, args_cls, extra = SFTTrainer, SFTConfig, dict(completion_only_loss=True, max_length=None,
                                                                 packing=False, padding_free=False,
                                                                 shuffle_dataset=False, dataset_num_proc=None)
            data = Dataset.from_list([{"input_ids": r["input_ids"],
                                       "completion_mask": [0 if x == -100 else 1 for x in r["labels"]]} for r in rows])
        else:
            base, args_cls, extra = Trainer, TrainingArguments, {}
            data = Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "position_ids", "branch", "packed")}
                                      for r in rows])
        cls, collator = _trainer_cls(base, "packed" if packed else "items", tokenizer.pad_token_id, record)
        kw = dict(model=model, args=args_cls(**common, **extra), train_dataset=data, processing_class=tokenizer,
                  callbacks=[_step_callback(record)])
        if method != "trl_items":
            kw["data_collator"] = collator
        trainer = cls(**kw)
        trainer.train()
        record["loop_s"] = record["step_end_s"][-1] if record["step_end_s"] else None
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)
    for k in ("_loss", "_tok", "_ans", "_t0"):
        record.pop(k, None)
    record["wall_s"] = round(time.perf_counter() - t_wall, 2)
    record["rss_peak_mb"] = _rss_peak_mb()
    record["steps"] = len(record["loss"])
    tok, ans = sum(record["tokens_per_step"]), sum(record["answer_tokens_per_step"])
    record["tokens"], record["answer_tokens"] = tok, ans
    if record.get("loop_s"):
        record["tokens_per_s"] = round(tok / record["loop_s"], 1)
        record["answer_tokens_per_s"] = round(ans / record["loop_s"], 2)
        record["s_per_step"] = round(record["loop_s"] / max(1, record["steps"]), 3)
    return record


# ----------------------------------------------------------------------------- orchestration
def _child(spec: dict, method: str, timeout: float | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="care-bench-train-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env = {**os.environ, "PYTHONPATH": path}
        cmd = [sys.executable, "-m", "benchmarks.train_loop", "--worker", method, "--spec", str(spec_path),
               "--out", str(out_path)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, timeout=timeout, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not out_path.is_file():
            return {"method": method, "error": f"exit status {proc.returncode}",
                    "process_s": round(time.perf_counter() - t0, 1)}
        out = json.loads(out_path.read_text())
        out["process_s"] = round(time.perf_counter() - t0, 1)
        return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Methods: " + ", ".join(METHODS))
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--small", action="store_true", help="tiny random Llama (quick smoke run, usable in tests)")
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, of {', '.join(METHODS)} "
                    f"(default {DEFAULT_METHODS}; '{BASELINE}' is always run: it is the baseline)")
    ap.add_argument("--sessions", type=int, default=2, help="sample sessions (default 2)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps, one session each (default 4; --small 3)")
    ap.add_argument("--repeats", type=int, default=1, help="run every method this many times, order rotated")
    ap.add_argument("--max-prompt-tokens", type=int, default=None, help="transcript budget (default: the recipe's)")
    ap.add_argument("--rationales", choices=("none", "drafts"), default="drafts",
                    help="answers: the self-reported score alone (what a fresh sample store curates) or with the "
                         "shipped draft rationale for that score (default; realistic answer length)")
    ap.add_argument("--lora-dropout", type=float, default=0.0, help="default 0: step 1 must then give one loss")
    ap.add_argument("--recipe", default=str(RECIPE), help="recipe for LoRA, optimizer and prompt settings")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="sessions JSONL")
    ap.add_argument("--base", default=None, help="base model (default: the recipe's; --small: a tiny random Llama)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every method (0: torch's default)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per method before it is stopped")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # child process: one method
        spec = json.loads(Path(args.spec).read_text())
        res = run_method(spec, args.worker)
        Path(args.out).write_text(json.dumps(res))
        return res

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.small:
        args.steps = args.steps or 4
    if set(methods) - set(METHODS):
        ap.error(f"--methods takes some of {', '.join(METHODS)}")
    if BASELINE not in methods:
        methods.insert(0, BASELINE)
    t_start = time.perf_counter()
    tmp = None
    if args.small:  # quick: shorter transcripts and fewer steps unless given
        args.steps = args.steps or 3
        args.max_prompt_tokens = args.max_prompt_tokens or 256
        from tests.tiny_model import build_tiny_model

        tmp = tempfile.TemporaryDirectory(prefix="care-bench-tiny-")
        base = str(build_tiny_model(Path(tmp.name) / "tiny-llama", seed=0))
    else:
        base = args.base
    overrides = {}
    if args.max_prompt_tokens:
        overrides["max_prompt_tokens"] = args.max_prompt_tokens
    spec = {"base": base, "recipe": args.recipe, "data": args.data, "sessions": args.sessions, "steps": args.steps,
            "rationales": args.rationales, "lora_dropout": args.lora_dropout, "dtype": args.dtype,
            "threads": args.threads, "overrides": overrides}
    if spec["base"] is None:
        spec.pop("base")
        from care_model.training.config import load_recipe

        spec["base"] = load_recipe(args.recipe).get("base_model", "smollm2")

    runs: dict[str, list[dict]] = {m: [] for m in methods}
    orders, load_start = [], [round(x, 2) for x in os.getloadavg()]
    for rep in range(args.repeats):
        order = methods[rep % len(methods):] + methods[:rep % len(methods)]
        orders.append(order)
        for m in order:
            before = [round(x, 2) for x in os.getloadavg()]
            _log(f"repeat {rep + 1}/{args.repeats}: {m} (load {before})")
            res = _child(spec, m, args.timeout)
            res["load_average_before"] = before
            res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            runs[m].append(res)
            _log(f"{m}: " + (res.get("error") or f"{res['loop_s']} s, loss {res['loss'][0]} -> {res['loss'][-1]}, "
                                                    f"{res['rss_peak_mb']} MB"))

    def best(m):
        ok = [r for r in runs[m] if "error" not in r]
        return min(ok, key=lambda r: r["loop_s"]) if ok else runs[m][0]

    summary = {}
    b = best(BASELINE)
    for m in methods:
        r = best(m)
        if "error" in r:
            summary[m] = {"error": r["error"]}
            continue
        summary[m] = {k: r.get(k) for k in ("loop_s", "wall_s", "s_per_step", "tokens", "answer_tokens", "tokens_per_s",
                                            "answer_tokens_per_s", "rss_peak_mb", "loss", "threads")}
        summary[m]["loop_s_all_repeats"] = [x.get("loop_s") for x in runs[m]]
        if "error" not in b:
            summary[m]["time_over_ours"] = round(r["loop_s"] / b["loop_s"], 2)
            summary[m]["answer_tokens_per_s_over_ours"] = round(r["answer_tokens_per_s"] / b["answer_tokens_per_s"], 3)
            summary[m]["step1_loss_diff_vs_ours"] = float(f"{r['loss'][0] - b['loss'][0]:.3g}")
            summary[m]["same_answer_tokens_as_ours"] = r["answer_tokens_per_step"] == b["answer_tokens_per_step"]
            summary[m]["same_plan_as_ours"] = r["plan"] == b["plan"]
        by_session: dict[str, list[float]] = {}
        for sid, loss in zip(r["plan"], r["loss"]):
            by_session.setdefault(sid, []).append(loss)
        summary[m]["loss_by_session"] = by_session  # steps of different sessions are not comparable
        seen = [v for v in by_session.values() if len(v) > 1]
        summary[m]["loss_decreased"] = all(v[-1] < v[0] for v in seen) if seen else None
    first = b.get("plan") or []
    result = {
        "benchmark": "train_loop",
        "model": "tiny-random-llama" if args.small else spec["base"],
        "recipe": str(Path(args.recipe).relative_to(REPO)) if Path(args.recipe).is_relative_to(REPO) else args.recipe,
        "sessions": args.sessions, "steps": args.steps, "step_plan": first, "rationales": args.rationales,
        "lora_dropout": args.lora_dropout, "dtype": args.dtype, "max_prompt_tokens": args.max_prompt_tokens or "recipe",
        "repeats": args.repeats, "method_order": orders, "baseline": BASELINE,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "load_average_start": load_start, "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "summary": summary, "runs": runs,
    }
    try:
        import importlib.metadata as md

        result["versions"] = {p: md.version(p) for p in ("torch", "transformers", "peft", "accelerate", "trl")
                              if _installed(p)}
    except Exception:  # noqa: BLE001
        pass
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for m, s in summary.items():
            print(m, {k: v for k, v in s.items() if k != "loss"}, "loss:", s.get("loss"))
    return result


def _installed(name: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
