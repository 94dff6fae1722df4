"""The vLLM worker: runs in the vLLM venv (``make setup-vllm``), never in the project's process.

:mod:`care_model.inference.backends.vllm_backend` starts it as
``.venv-vllm/bin/python -m care_model.inference.backends.vllm_worker`` and talks to it in JSON lines: one
request object per line on stdin, one reply per line on the protocol stream (the process's
original stdout; everything vLLM prints goes to stderr). vLLM starts its engine core with
``spawn``, hence the ``__main__`` guard. Requests::

    {"op": "load", "model": DIR, "dtype": "auto", "max_model_len": 4096, "enable_lora": false,
     "max_lora_rank": 16, "max_loras": 2, "tensor_parallel": 1, "seed": 0, "enforce_eager": null}
        -> {"ok": true, "load_s": 81.2, "vllm_version": "0.32.0", "grounding": true, "grounding_unavailable": ""}
    {"op": "generate", "requests": [{"prompt_token_ids": [...], "max_tokens": 96,
     "logprob_token_ids": [...], "stop_token_ids": [...], "lora": {"name", "id", "path"} | null,
     "grounding": {"row": GroundedRow.spec(), "stop_ids": [...], "tokenizer": DIR} | null}]}
        -> {"ok": true, "seconds": 3.1, "outputs": [{"token_ids": [...], "finish_reason": "stop",
            "first_logprobs": {"<token id>": logprob, ...},
            "cached_prompt_tokens": 1504, "lora": "<adapter name the request carried>" | null}]}
    {"op": "reset_prefix_cache"} -> {"ok": true}
    {"op": "shutdown"} -> {"ok": true} and exit
    anything failing -> {"ok": false, "error": "...", "kind": "ExceptionType"}

All requests of one ``generate`` go to vLLM in one call: continuous batching and the automatic
prefix cache (on) make the 12 item prompts of a session share one prefill of the transcript.
Greedy decoding (temperature 0). ``first_logprobs`` are vLLM's raw log-probabilities (log-softmax
of the model's logits over the whole vocabulary) at the first generated position -- the score
position -- for the requested ``logprob_token_ids`` (every spelling of the five options).
A request with ``grounding`` is decoded under the project's grounded-decoding constraint by the
logits processor :data:`GROUNDED_FQCN` (:mod:`care_model.inference.backends.vllm_grounded`), which every
load registers; requests without it decode freely.
No prompt or answer text is logged. This module imports only vllm, the standard library and
:mod:`care_model.inference.backends.vllm_names` (vLLM imports the logits processor, and with it
care_model's pure grounding code, in its engine core).
"""
from __future__ import annotations

import json
import os
import sys
import time

from care_model.inference.backends.vllm_names import GROUNDED_FQCN, GROUNDING_KEY


def _setup_env() -> None:
    # A shared small CPU: no core pinning unless the caller chose it; threads as CARE_VLLM_THREADS says.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # vLLM declares its engine dead when one model step takes over 300 s or a start over 600 s; a
    # LoRA prefill of 4,096 tokens on 2 busy CPU cores can (EngineDeadError seen at load average 33)
    os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
    os.environ.setdefault("VLLM_ENGINE_READY_TIMEOUT_S", "3600")
    # grounded decoding is a V1-interface logits processor (care_model.inference.backends.vllm_grounded),
    # which vLLM's V2 model runner refuses: keep the V1 runner unless the caller chose otherwise
    os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
    threads = os.environ.get("CARE_VLLM_THREADS")
    if threads:
        os.environ["OMP_NUM_THREADS"] = threads


class Worker:
    def __init__(self):
        self.llm = None
        self.lora_enabled = False
        self.grounding, self.grounding_unavailable = False, "the model is not loaded"

    def load(self, msg: dict) -> dict:
        t0 = time.perf_counter()
        import vllm
        from vllm import LLM

        kwargs = dict(model=msg["model"], tokenizer=msg.get("tokenizer") or msg["model"],
                      dtype=self._dtype(msg.get("dtype", "auto")), enable_prefix_caching=True,
                      max_model_len=int(msg.get("max_model_len", 4096)), seed=int(msg.get("seed", 0)),
                      tensor_parallel_size=int(msg.get("tensor_parallel", 1)),
                      enforce_eager=self._eager(msg.get("enforce_eager")), disable_log_stats=True)
        grounding, why = self._grounding_available()
        if grounding:
            kwargs["logits_processors"] = [GROUNDED_FQCN]
        if msg.get("enable_lora"):
            kwargs.update(enable_lora=True, max_lora_rank=int(msg.get("max_lora_rank", 16)),
                          max_loras=int(msg.get("max_loras", 2)))
            self.lora_enabled = True
        self.llm = LLM(**kwargs)
        self.grounding, self.grounding_unavailable = grounding, why
        return {"ok": True, "load_s": round(time.perf_counter() - t0, 2), "vllm_version": vllm.__version__,
                "grounding": grounding, "grounding_unavailable": why}

    @staticmethod
    def _grounding_available() -> tuple[bool, str]:
        """Whether the grounded-decoding processor can be registered (else the model still loads,
        for free decoding and scores, and grounded requests are refused with the reason)."""
        if os.environ.get("VLLM_USE_V2_MODEL_RUNNER", "0").lower() in ("1", "true", "yes"):
            return False, "VLLM_USE_V2_MODEL_RUNNER is set, and vLLM's V2 model runner refuses V1 logits processors"
        try:
            import importlib

            importlib.import_module(GROUNDED_FQCN.split(":")[0])
        except Exception as err:  # noqa: BLE001 -- reported to the caller, the model still loads
            return False, f"the grounded-decoding processor does not import here ({type(err).__name__}: {err})"
        return True, ""

    @staticmethod
    def _dtype(choice: str) -> str:
        """'auto': float32 on CPU (as our engine, so both agree), bfloat16 on GPUs."""
        if choice and choice != "auto":
            return choice
        from vllm.platforms import current_platform

        return "float32" if current_platform.is_cpu() else "bfloat16"

    @staticmethod
    def _eager(choice) -> bool:
        """None: eager on CPU (torch.compile costs minutes of start-up on a small CPU), compiled on GPUs."""
        if choice is not None:
            return bool(choice)
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())

    def generate(self, msg: dict) -> dict:
        if self.llm is None:
            return {"ok": False, "error": "the model is not loaded (send op=load first)", "kind": "State"}
        grounded = [(n, req["grounding"]) for n, req in enumerate(msg["requests"]) if req.get("grounding")]
        if grounded and not self.grounding:
            return {"ok": False, "kind": "Grounding", "request": grounded[0][0],
                    "error": f"grounded decoding is not available in this worker: {self.grounding_unavailable}"}
        if grounded:  # check every row before vLLM gets any request, so a bad one leaves nothing queued
            from care_model.inference.backends.vllm_grounded import row_from

            for n, spec in grounded:
                try:
                    row_from(spec)
                except Exception as err:  # noqa: BLE001 -- any bad spec is this request's error, not the worker's
                    return {"ok": False, "kind": "Grounding", "request": n,
                            "error": f"bad grounding spec for request {n} ({type(err).__name__}: {err})"}
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        prompts, params, loras = [], [], []
        for req in msg["requests"]:
            prompts.append(TokensPrompt(prompt_token_ids=[int(t) for t in req["prompt_token_ids"]]))
            grounding = req.get("grounding")
            params.append(SamplingParams(
                temperature=0.0, max_tokens=int(req["max_tokens"]),
                logprob_token_ids=[int(t) for t in req.get("logprob_token_ids") or []] or None,
                stop_token_ids=[int(t) for t in req.get("stop_token_ids") or []], detokenize=False,
                extra_args={GROUNDING_KEY: grounding} if grounding else None))
            lora = req.get("lora")
            loras.append(LoRARequest(lora["name"], int(lora["id"]), lora["path"]) if lora else None)
        t0 = time.perf_counter()
        results = self.llm.generate(prompts, params, use_tqdm=False,
                                    lora_request=loras if any(loras) else None)
        seconds = time.perf_counter() - t0
        outputs = []
        for res in results:
            out = res.outputs[0]
            first = {}
            if out.logprobs:
                first = {str(tid): float(lp.logprob) for tid, lp in out.logprobs[0].items()}
            outputs.append({"token_ids": list(out.token_ids), "finish_reason": out.finish_reason,
                            "first_logprobs": first, "cached_prompt_tokens": res.num_cached_tokens,
                            "lora": res.lora_request.lora_name if getattr(res, "lora_request", None) else None})
        return {"ok": True, "seconds": round(seconds, 4), "outputs": outputs}

    def handle(self, msg: dict) -> dict:
        op = msg.get("op")
        if op == "load":
            return self.load(msg)
        if op == "generate":
            return self.generate(msg)
        if op == "reset_prefix_cache":
            return {"ok": bool(self.llm.reset_prefix_cache()) if self.llm is not None else True}
        if op == "ping":
            return {"ok": True, "loaded": self.llm is not None}
        return {"ok": False, "error": f"unknown op {op!r}", "kind": "Protocol"}


def _exit_with_parent() -> None:
    """End this worker (and vLLM's engine processes with it) when the process that started it is gone,
    even in the middle of a model load, when stdin's end-of-file is not yet read."""
    import threading

    parent = os.getppid()

    def watch():
        while True:
            time.sleep(2)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def main() -> int:
    _setup_env()
    _exit_with_parent()
    # The protocol stream is the original stdout; anything printed later (vLLM's logs) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    proto.write(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as err:
            proto.write(json.dumps({"ok": False, "error": f"bad JSON: {err.msg}", "kind": "Protocol"}) + "\n")
            continue
        if msg.get("op") == "shutdown":
            proto.write(json.dumps({"ok": True}) + "\n")
            break
        try:
            reply = worker.handle(msg)
        except Exception as err:  # reported to the caller, which raises a CareError with it
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"[:2000], "kind": type(err).__name__}
        proto.write(json.dumps(reply) + "\n")
    proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
