"""LoRA training throughput on the Llama-3.1-8B architecture: tokens/s, peak memory, MFU.

The model is ``LlamaForCausalLM`` with Llama-3.1-8B's config (32 layers, hidden 4096, GQA 32/8
heads, MLP 14336, vocabulary 128,256, llama3 RoPE scaling) and **random bfloat16 weights built
on the GPU** -- nothing is downloaded. Each step is the retraining loop's own step
(:func:`care_model.training.data.answer_loss` on a packed row from
:func:`care_model.training.data.collate`, backward, gradient clipping, AdamW on the LoRA
parameters): one packed session of ``seq_len`` tokens whose last 12 x 96 tokens are 12 item
branches (suffix + answer) under the tree attention mask, as ``pack_items`` trains. LoRA r=16 on
q/k/v/o/gate/up/down (the GPU recipe), gradient checkpointing on (``--no-checkpointing`` to
turn it off).

FLOPs convention (stated in the output as ``flops_convention``):

* ``mfu`` -- model FLOPs per token ``6 N + 12 L d T`` (PaLM, Chowdhery et al. 2022, appendix B):
  N = non-embedding parameters, L layers, d hidden size, T sequence length; attention counted
  without the causal saving; the recomputation of gradient checkpointing is *not* counted (it is
  hardware work, not model work). This is the usual full-fine-tuning number, so it compares with
  published MFU figures.
* ``mfu_lora`` -- what a LoRA step really has to compute: ``4 N + 12 L d T`` (the frozen weights
  need no weight gradients: forward 2N + input gradients 2N) plus ``6 N_lora``.

Peak: ``--peak-tflops`` or the dense bf16 peak of the detected GPU (H100/H200 SXM 989, H100 PCIe
756, A100 312).

CPU smoke (a 2-layer model of the same shape family, short sequences; checks the script, not speed)::

    python -m benchmarks.gpu_train --small

Real measurement (one H100/H200)::

    python -m benchmarks.gpu_train --seq-lens 4096 8192 --steps 5 --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "A100": 312.0}
LLAMA31_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
                  rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                  tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128009)
SMALL = dict(LLAMA31_8B, vocab_size=1024, hidden_size=64, intermediate_size=224, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, bos_token_id=None, eos_token_id=1)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ITEMS, BRANCH = 12, 96  # 12 item branches of 96 tokens (suffix ~30 + answer ~66) at the end of each row


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS.items():
        if key.lower() in device_name.lower():
            return value
    return None


def build_model(small: bool, device, dtype, rank: int, checkpointing: bool):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**(SMALL if small else LLAMA31_8B))
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in bf16 directly: an fp32 8B model would need 32 GB first
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)  # random weights, built where they live
    finally:
        torch.set_default_dtype(default)
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=TARGETS,
                                             task_type="CAUSAL_LM"))
    return model, config


def packed_batch(seq_len: int, vocab: int, seed: int):
    """A row shaped like a packed session: prefix, then ITEMS branches of BRANCH tokens (half prompt, half answer)."""
    import random

    from care_model.training.data import IGNORE

    rng = random.Random(seed)
    prefix = seq_len - ITEMS * BRANCH
    if prefix < 16:
        raise SystemExit(f"seq_len {seq_len} is too short for {ITEMS} branches of {BRANCH} tokens")
    ids = [rng.randrange(vocab) for _ in range(seq_len)]
    labels, pos, branch = [IGNORE] * prefix, list(range(prefix)), [-1] * prefix
    for b in range(ITEMS):
        labels += [IGNORE] * (BRANCH // 2) + ids[prefix + b * BRANCH + BRANCH // 2: prefix + (b + 1) * BRANCH]
        pos += list(range(prefix, prefix + BRANCH))
        branch += [b] * BRANCH
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "branch": branch, "packed": True}


def measure(model, config, seq_len: int, steps: int, warmup: int, device, dtype) -> dict:
    import torch

    from care_model.training.data import answer_loss, collate

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batch = {k: v.to(device) for k, v in collate([packed_batch(seq_len, config.vocab_size, seq_len)], 0, dtype).items()}
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss, _ = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = sorted(times)[len(times) // 2]
    L, d = config.num_hidden_layers, config.hidden_size
    n_embed = config.vocab_size * d  # input embeddings (a lookup, no FLOPs); the output head does count
    n_all = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    n_lora = sum(p.numel() for p in params)
    n = n_all - n_embed
    attn = 12 * L * d * seq_len
    out = {"seq_len": seq_len, "step_s": round(step_s, 4), "tokens_per_s": round(seq_len / step_s, 1),
           "loss": round(float(loss.detach()), 4), "flops_per_token_6n": 6 * n + attn,
           "flops_per_token_lora": 4 * n + attn + 6 * n_lora,
           "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2) if cuda else None}
    del opt
    return out


def run(args) -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" or args.bf16_on_cpu else torch.float32
    small = args.small
    seq_lens = args.seq_lens or ([1536, 2048] if small else [4096, 8192])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    model, config = build_model(small, device, dtype, args.rank, not args.no_checkpointing)
    result = {"benchmark": "gpu_train",
              "model": "llama-3.1-8b architecture, random weights" + (" (--small)" if small else ""),
              "device": name, "dtype": str(dtype).replace("torch.", ""), "lora_rank": args.rank,
              "lora_targets": TARGETS,
              "gradient_checkpointing": not args.no_checkpointing, "packed_items": ITEMS, "branch_tokens": BRANCH,
              "build_s": round(time.perf_counter() - t0, 2), "peak_tflops": peak,
              "parameters": sum(p.numel() for p in model.parameters()),
              "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "flops_convention": ("mfu: (6N + 12*L*d*T) * tokens/s / peak, N = non-embedding parameters (PaLM "
                                   "appendix B; full attention, checkpoint recomputation not counted); mfu_lora: "
                                   "(4N + 12*L*d*T + 6*N_lora) * tokens/s / peak"),
              "runs": []}
    for seq_len in seq_lens:
        try:
            row = measure(model, config, seq_len, args.steps, args.warmup, device, dtype)
        except torch.OutOfMemoryError as err:  # report, keep going with the other lengths
            row = {"seq_len": seq_len, "error": f"out of memory: {str(err).splitlines()[0]}"}
            torch.cuda.empty_cache()
        if peak and "tokens_per_s" in row:
            row["mfu"] = round(row["flops_per_token_6n"] * row["tokens_per_s"] / (peak * 1e12), 4)
            row["mfu_lora"] = round(row["flops_per_token_lora"] * row["tokens_per_s"] / (peak * 1e12), 4)
        result["runs"].append(row)
        if not args.json:
            print(json.dumps(row), file=sys.stderr)
    # one method per run (nothing to rotate); the machine's load is recorded as for every benchmark
    result["load_average_before"], result["load_average_after"] = load_before, [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true",
                    help="2-layer model, short sequences: a CPU smoke test of the script")
    ap.add_argument("--seq-lens", type=int, nargs="+", default=None, help="default 4096 8192 (--small: 1536 2048)")
    ap.add_argument("--steps", type=int, default=5, help="measured steps per length (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (the GPU recipe's)")
    ap.add_argument("--no-checkpointing", action="store_true", help="keep all activations (more memory, less time)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU (default: detected)")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    ap.add_argument("--bf16-on-cpu", action="store_true", help="bfloat16 on the CPU too (default float32)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args(argv)
    print(json.dumps(run(args), indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
