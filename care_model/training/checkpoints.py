"""The training loop's checkpoints and its adapter: ``checkpoints/step-N/`` (adapter weights,
optimizer, scheduler, every process's RNG states; ``state.json`` written last marks it complete,
the oldest beyond ``keep`` removed) and ``adapter/`` (peft ``save_pretrained`` and the tokenizer).

Called by :func:`care_model.training.loop.train` on every process (they synchronise through the
accelerator). torch and peft are imported inside the functions.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from care_model.core.errors import TrainingError
from care_model.training.runs import run_path, write_json


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, accelerator, keep: int, extra: dict) -> Path:
    import torch
    from peft import get_peft_model_state_dict

    folder = run_path(run_dir, "checkpoints") / f"step-{step}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    rng = {"python": random.getstate(), "torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    torch.save(rng, folder / f"rng_{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        torch.save(get_peft_model_state_dict(accelerator.unwrap_model(model)), folder / "adapter.pt")
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(folder / "state.json", {"step": step, "world_size": accelerator.num_processes, **extra})
        old = sorted((p for p in folder.parent.glob("step-*") if p != folder), key=lambda p: int(p.name.split("-")[1]))
        for p in old[:max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(folder: Path, model, optimizer, scheduler, accelerator) -> dict:
    import torch
    from peft import set_peft_model_state_dict

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if state.get("world_size") != accelerator.num_processes:
        raise TrainingError(f"The checkpoint {folder} was written by {state.get('world_size')} processes, "
                            f"this run has {accelerator.num_processes}.",
                            "Resume with the same number of processes (the data order depends on it).")
    set_peft_model_state_dict(accelerator.unwrap_model(model),
                              torch.load(folder / "adapter.pt", map_location=accelerator.device))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=accelerator.device))
    rng_file = folder / f"rng_{accelerator.process_index}.pt"
    if rng_file.is_file():
        rng = torch.load(rng_file, weights_only=False)
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt"))
    return state


def save_adapter(run_dir: Path, model, tokenizer, accelerator) -> Path:
    """``adapter/``: the LoRA weights (peft save_pretrained) and the tokenizer."""
    folder = run_path(run_dir, "adapter")
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(str(folder), state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
    accelerator.wait_for_everyone()
    return folder
