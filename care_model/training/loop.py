"""The LoRA training loop: plain PyTorch under an ``accelerate.Accelerator``.

One code path for one CPU, one GPU and DDP over several processes (``accelerate launch`` on
GPUs, ``torchrun`` on CPUs over gloo; the 2-process CPU test runs it). FSDP and DeepSpeed are
refused (:func:`check_strategy`): accelerate enables FSDP on GPUs only, so no test here could run
its checkpoint and adapter paths, and a LoRA adapter of an 8B model trains under DDP. The loop only
reads the run folder (snapshot, config) and writes into it (see :mod:`care_model.training.runs`); it never opens the
store.

* **Data order** is a pure function of (seed, epoch): every optimizer step ``k`` takes the
  ``k``-th global batch of ``per_device_batch_size x processes x gradient_accumulation_steps``
  rows from the concatenated per-epoch permutations (the last one wraps around, so every
  process always has a full micro-batch and DDP never waits on a missing rank). Resuming at
  step ``k`` therefore continues with exactly the rows an uninterrupted run would have used.
* **Loss** is the cross-entropy per answer token of the whole optimizer step: summed over the
  micro-batches of every process and divided by their answer tokens counted beforehand
  (:func:`accumulate_gradients`, as Hugging Face's trainers do since 2024), so a step gives the
  gradient one large batch would and a short row weighs what its tokens weigh. Logits are
  computed only at positions that predict an answer token (:func:`care_model.training.data.answer_loss`).
* **Progress**: the main process appends ``step`` events (step, total_steps, loss averaged over
  processes, lr, elapsed_s, eta_s) to ``progress.jsonl`` and drives a tqdm bar.
* **Cancel**: a ``CANCEL`` file in the run folder, SIGTERM or Ctrl-C. Checked before every step
  and agreed across processes (max-reduce); the loop saves a checkpoint, writes a ``cancelled``
  event and returns ``status="cancelled"``.
* **Checkpoints** (``checkpoints/step-N/``, :mod:`care_model.training.checkpoints`): adapter weights,
  optimizer, scheduler, every process's RNG states and the step; ``state.json`` is written last and
  marks it complete. ``resume=True`` continues from the newest complete checkpoint.
"""
from __future__ import annotations

import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from care_model.core.errors import ConfigError, ModelError, TrainingError
from care_model.inference.model_files import resolve_model_base
from care_model.training.runs import ProgressWriter, cancel_requested, last_checkpoint
from care_model.training.checkpoints import load_checkpoint, save_adapter, save_checkpoint
from care_model.training.data import answer_loss, answer_weight, collate


@dataclass
class TrainResult:
    status: str                       # done | cancelled
    step: int
    total_steps: int
    adapter_dir: str | None = None
    checkpoint: str | None = None
    train_loss: float | None = None   # mean loss of the last 10% of steps run in this process
    validation_loss_before: float | None = None
    validation_loss_after: float | None = None
    elapsed_s: float = 0.0
    steps_per_s: float = 0.0
    tokens: int = 0
    world_size: int = 1
    is_main: bool = True
    n_train: int = 0
    n_validation: int = 0
    data_warnings: list[str] = field(default_factory=list)
    model: object = None              # the trained peft model (main process) for evaluation
    tokenizer: object = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "tokenizer")}


# ----------------------------------------------------------------------------- helpers
def resolve_base(base: str) -> str:
    """The path (or hub id) ``from_pretrained`` should load for a recipe's ``base_model``: the
    inference side's resolution (:func:`care_model.inference.model_files.resolve_model_base`), so a recipe and a
    prediction read the same folder; a missing folder is a recipe error (ConfigError)."""
    try:
        return resolve_model_base(base)[0]
    except ModelError as err:
        raise ConfigError(f"base_model: {err.problem}", err.fix) from None


def torch_dtype(name: str, device_type: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device_type == "cuda" else torch.float32
    return getattr(torch, name)


def global_order(n: int, seed: int, global_batch: int, total_steps: int) -> list[list[int]]:
    """Row indices of every optimizer step (see the module docstring)."""
    need = global_batch * total_steps
    order: list[int] = []
    epoch = 0
    while len(order) < need:
        perm = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(perm)
        order += perm
        epoch += 1
    return [order[k * global_batch:(k + 1) * global_batch] for k in range(total_steps)]


def plan_steps(n_train: int, config, world: int) -> tuple[int, int]:
    """(global batch, total optimizer steps)."""
    gb = config.per_device_batch_size * world * config.gradient_accumulation_steps
    if config.max_steps:
        return gb, int(config.max_steps)
    return gb, max(1, math.ceil(config.num_epochs * n_train / gb))


class _Stop:
    """Cancel flag set by SIGTERM / SIGINT (main thread only) or the CANCEL file."""

    def __init__(self):
        self.signalled = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        self.signalled = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


SUPPORTED_STRATEGIES = ("NO", "MULTI_CPU", "MULTI_GPU")


def check_strategy(accelerator) -> None:
    """Refuse a distributed strategy the loop does not implement (FSDP, DeepSpeed, ...)."""
    name = accelerator.distributed_type.name
    if name not in SUPPORTED_STRATEGIES:
        raise ConfigError(f"The training loop does not support the {name} strategy of this accelerate config.",
                          "Train on one device or with DDP: `accelerate launch` with a multi-GPU config "
                          "(or the default one), or `torchrun --nproc_per_node N` on CPUs.")


def load_for_training(config, accelerator):
    """Tokenizer and peft LoRA model, on the accelerator's device, in the training dtype."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(config.base_model)
    check_strategy(accelerator)
    dtype = torch_dtype(config.dtype, accelerator.device.type)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        kwargs = {"dtype": dtype, "attn_implementation": config.attn_implementation}
        if accelerator.device.type == "cuda":
            kwargs["device_map"] = {"": accelerator.device}
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise TrainingError(f"Could not load the base model {config.base_model!r}: {err}",
                            "Give a local model folder (config.json + weights + tokenizer) or 'smollm2'.") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"The tokenizer of {config.base_model!r} has no chat template.",
                            "Train an instruction-tuned model (its tokenizer_config.json needs a chat_template).")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in config.lora_target_modules if m not in names]
    if missing:
        raise ConfigError(f"lora_target_modules {missing} are not modules of {config.base_model!r}.",
                          "Pick among the model's linear layers, e.g. q_proj,k_proj,v_proj,o_proj.")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    torch.manual_seed(config.seed)  # LoRA A initialisation
    layers = None
    if config.lora_last_layers:
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - config.lora_last_layers), n_layers))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM", bias="none",
                      layers_to_transform=layers, layers_pattern="layers" if layers else None)
    model = get_peft_model(model, lora)
    return tokenizer, model


def _rows(ds, idx):
    return [ds[int(i)] for i in idx]


def validation_loss(model, ds, accelerator, pad_id, dtype) -> float | None:
    """Answer-token loss over the validation rows (sharded over processes, summed, divided by tokens)."""
    import torch

    if ds is None or len(ds) == 0:
        return None
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for i in range(accelerator.process_index, len(ds), accelerator.num_processes):
            batch = {k: v.to(accelerator.device) for k, v in collate([ds[i]], pad_id, dtype).items()}
            loss, n = answer_loss(model, batch, reduction="sum")
            total += torch.tensor([float(loss), float(n)], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(total, "sum")
    if was_training:
        model.train()
    return float(total[0] / total[1]) if float(total[1]) > 0 else None


def accumulate_gradients(model, micro_batches: list[list[dict]], accelerator, pad_id, dtype,
                         score_weight: float = 1.0) -> float:
    """Backward passes over one optimizer step's micro-batches (lists of rows) on this process.

    The summed token loss is divided by the answer tokens of the whole step: every micro-batch of
    every process (one all-reduce of the counts first). DDP averages gradients over processes, so
    the loss is also multiplied by their number. Returns the step's loss per answer token.
    """
    import torch

    device = accelerator.device
    local = answer_weight([r["labels"] for rows in micro_batches for r in rows], score_weight)
    total = float(accelerator.reduce(torch.tensor([local], dtype=torch.float64, device=device), "sum")[0])
    scale = accelerator.num_processes / (total if total > 0 else 1.0)
    step_loss = torch.zeros((), dtype=torch.float64, device=device)
    for m, rows in enumerate(micro_batches):
        batch = {k: v.to(device) for k, v in collate(rows, pad_id, dtype).items()}
        last = m == len(micro_batches) - 1
        with accelerator.no_sync(model) if (not last and accelerator.num_processes > 1) else _null():
            loss, _ = answer_loss(model, batch, reduction="sum", score_weight=score_weight)
            accelerator.backward(loss * scale)
        step_loss += loss.detach().double()
    return float(accelerator.reduce(step_loss, "sum")) / (total if total > 0 else 1.0)


# ----------------------------------------------------------------------------- the loop
def train(run_dir: Path | str, config, datasets, tokenizer, model, accelerator, *, resume: bool = False,
          run_id: str = "", data_hash: str = "") -> TrainResult:
    """Train ``model`` (a peft model) on ``datasets['train']``; see the module docstring."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    check_strategy(accelerator)
    run_dir = Path(run_dir)
    main = accelerator.is_main_process
    progress = ProgressWriter(run_dir, enabled=main)
    train_ds, val_ds = datasets["train"], datasets["validation"]
    if len(train_ds) == 0:
        raise TrainingError("The training split is empty.", "Curate more sessions, or lower validation_fraction.")
    world = accelerator.num_processes
    gb, total = plan_steps(len(train_ds), config, world)
    order = global_order(len(train_ds), config.seed, gb, total)
    pad_id = tokenizer.pad_token_id
    dtype = next(p for p in model.parameters()).dtype
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=int(config.warmup_ratio * total),
                              num_training_steps=total)
    model, optimizer = accelerator.prepare(model, optimizer)

    result = TrainResult(status="running", step=0, total_steps=total, world_size=world, is_main=main,
                         n_train=len(train_ds), n_validation=len(val_ds))
    start_step = 0
    ckpt = last_checkpoint(run_dir) if resume else None
    if resume and ckpt is None and main:
        print(f"[retrain] --resume: no checkpoint in {run_dir}, starting at step 0", file=sys.stderr)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, scheduler, accelerator)
        start_step = int(state["step"])
        result.validation_loss_before = state.get("validation_loss_before")
    progress.emit("start", run_id=run_id, total_steps=total, start_step=start_step, n_train=len(train_ds),
                  n_validation=len(val_ds), world_size=world, data_hash=data_hash,
                  resumed_from=str(ckpt) if ckpt else None)
    if start_step == 0:
        result.validation_loss_before = validation_loss(model, val_ds, accelerator, pad_id, dtype)
        progress.emit("eval", step=0, validation_loss=result.validation_loss_before, what="base model")

    accum, B, rank = config.gradient_accumulation_steps, config.per_device_batch_size, accelerator.process_index
    model.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(total=total, initial=start_step, disable=not main, desc="retrain", unit="step", dynamic_ncols=True,
               file=sys.stderr, mininterval=0.5)
    step = start_step
    with _Stop() as stop:
        while step < total:
            flag = torch.tensor([1.0 if (stop.signalled or cancel_requested(run_dir)) else 0.0],
                                device=accelerator.device)
            if float(accelerator.reduce(flag, "max")) > 0:
                folder = save_checkpoint(run_dir, step, model, optimizer, scheduler, accelerator,
                                         config.keep_checkpoints,
                                         {"validation_loss_before": result.validation_loss_before, "cancelled": True})
                progress.emit("cancelled", step=step, total_steps=total, checkpoint=str(folder),
                              elapsed_s=round(time.perf_counter() - t0, 3))
                result.status, result.step, result.checkpoint = "cancelled", step, str(folder)
                bar.close()
                result.elapsed_s = time.perf_counter() - t0
                return result
            idx = order[step]
            micro = [_rows(train_ds, idx[(m * world + rank) * B:(m * world + rank + 1) * B]) for m in range(accum)]
            n_tok = sum(max(len(r["input_ids"]) for r in rows) * len(rows) for rows in micro)
            mean_loss = accumulate_gradients(model, micro, accelerator, pad_id, dtype, config.score_weight)
            if config.max_grad_norm and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(mean_loss)
            result.tokens += n_tok
            elapsed = time.perf_counter() - t0
            rate = (step - start_step) / elapsed if elapsed > 0 else 0.0
            eta = (total - step) / rate if rate > 0 else None
            progress.emit("step", step=step, total_steps=total, loss=round(mean_loss, 6), lr=lr,
                          elapsed_s=round(elapsed, 3), eta_s=round(eta, 3) if eta is not None else None,
                          epoch=round(step * gb / len(train_ds), 4), tokens=n_tok)
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
            if config.eval_every_steps and step % config.eval_every_steps == 0 and step < total:
                vl = validation_loss(model, val_ds, accelerator, pad_id, dtype)
                progress.emit("eval", step=step, validation_loss=vl)
            if config.save_every_steps and step % config.save_every_steps == 0 and step < total:
                folder = save_checkpoint(run_dir, step, model, optimizer, scheduler, accelerator,
                                         config.keep_checkpoints,
                                         {"validation_loss_before": result.validation_loss_before})
                progress.emit("checkpoint", step=step, path=str(folder))
    bar.close()
    result.elapsed_s = time.perf_counter() - t0
    result.steps_per_s = (step - start_step) / result.elapsed_s if result.elapsed_s > 0 else 0.0
    tail = losses[-max(1, len(losses) // 10):]
    result.train_loss = sum(tail) / len(tail) if tail else None
    result.validation_loss_after = validation_loss(model, val_ds, accelerator, pad_id, dtype)
    progress.emit("eval", step=step, validation_loss=result.validation_loss_after, what="candidate")
    result.adapter_dir = str(save_adapter(run_dir, model, tokenizer, accelerator))
    result.status, result.step = "done", step
    if main:
        result.model, result.tokenizer = accelerator.unwrap_model(model), tokenizer
    return result


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
