"""vLLM in the inference benchmark (``python -m benchmarks.inference --json --backends engine,vllm``).

:class:`VllmBench` loads the same model in the vLLM worker (care_model.inference.backends.vllm_backend)
with ``CARE_VLLM_THREADS`` set to the benchmark's thread count (the engine gets the same), before
the measured loop. :meth:`VllmBench.run_modes` is one method of the benchmark's rotation: for one
session it times scores only, free decoding and grounded decoding (the row constraint in vLLM's
logits processor, care_model.inference.backends.vllm_grounded; timed with its row set-up, as the
engine's is), each with a **cold prefix cache** (reset before each run; the warm-up used a prompt of
its own). The engine does nothing meanwhile: the methods of a session run one after another.
"""
from __future__ import annotations

import os
import time


class VllmBench:
    def __init__(self, base: str, dtype: str = "auto", threads: int | None = None):
        from care_model.inference.backends.vllm_backend import VllmBackend
        from care_model.inference.models import ModelSpec, model_version_id
        from care_model.inference.predictor import PredictConfig

        if threads:  # the worker sets OMP_NUM_THREADS from it (care_model.inference.backends.vllm_worker)
            os.environ["CARE_VLLM_THREADS"] = str(threads)
        self.threads = os.environ.get("CARE_VLLM_THREADS") or "vLLM's default (every core)"
        spec = ModelSpec(base=base, dtype=dtype)
        self.backend = VllmBackend(spec, PredictConfig(backend="vllm"), model_version=model_version_id(spec))
        self.loadavg_start = [round(x, 2) for x in os.getloadavg()]
        t0 = time.perf_counter()
        self.group = self.backend.start()
        self.load_s = time.perf_counter() - t0
        self.violations = 0

    def warm_up(self, session_prompt) -> None:
        """First-call costs on a short prompt of its own (the first 64 prefix tokens and item 1)."""
        tok = self.backend.tokenizer
        ids = list(tok(session_prompt.prefix, add_special_tokens=False)["input_ids"])[:64]
        ids += list(tok(session_prompt.suffixes[min(session_prompt.suffixes)], add_special_tokens=False)["input_ids"])
        self.group.workers[0].call({"op": "generate", "requests": [
            {"prompt_token_ids": ids, "max_tokens": 2, "logprob_token_ids": [], "stop_token_ids": []}]})
        self._reset()

    def _reset(self):
        self.group.workers[0].call({"op": "reset_prefix_cache"})

    def run_modes(self, session_prompt, *, max_new_tokens: int, make_rows=None, free: bool = True) -> dict:
        """``{"vllm_scores": (outputs, s), "vllm_free": ..., "vllm_grounded": ...}`` for one session, each
        from a cold prefix cache (free with ``free``, grounded with ``make_rows``: fresh rows for vLLM)."""
        res = {}
        self._reset()
        t0 = time.perf_counter()
        res["vllm_scores"] = (self.backend.run(session_prompt, scores_only=True, group=self.group),
                              time.perf_counter() - t0)
        if free:
            self._reset()
            t0 = time.perf_counter()
            outs = self.backend.run(session_prompt, scores_only=False, group=self.group, max_new_tokens=max_new_tokens)
            res["vllm_free"] = (outs, time.perf_counter() - t0)
        if make_rows is not None:
            self._reset()
            t0 = time.perf_counter()
            outs = self.backend.run(session_prompt, scores_only=False, group=self.group, rows=make_rows(),
                                    max_new_tokens=max_new_tokens)
            res["vllm_grounded"] = (outs, time.perf_counter() - t0)
            self.violations += self.backend.last_stats.get("grounding_violations", 0)
        return res

    def close(self) -> dict:
        self.backend.close()
        return {"backend": "vllm", "vllm_version": self.group.vllm_version, "load_s": round(self.load_s, 1),
                "threads": self.threads, "prefix_cache": "cold (reset before each measured run)",
                "grounded_violations": self.violations, "loadavg_at_load": self.loadavg_start}
