"""vLLM in the inference benchmark (``python -m benchmarks.inference --json --backends engine,vllm``).

:class:`VllmBench` loads the same model in the vLLM worker (care_model.inference.backends.vllm_backend)
before the measured loop, then, for each measured session, right after the engine's measurements of
that session (so both see the same machine load), runs the session's 12 item prompts through vLLM
in scores-only mode with a **cold prefix cache**: the cache is reset before each measured session,
and the warm-up uses a prompt of its own, so no measured prompt was ever cached. It reports seconds
per session, the 12-item agreement of the chosen scores (argmax of the option probabilities) with
the engine's fast scores-only results, the largest option-probability difference, and the ratio of
the engine's seconds per session to vLLM's (> 1: vLLM faster), whichever way it falls. When the
engine's grounded decoding ran for the session, vLLM decodes it grounded too (the row constraint in
vLLM's logits processor, care_model.inference.backends.vllm_grounded), again with a cold cache, and the
summary's ``grounded`` block gives both times, their ratio, and the items whose tokens are identical;
when the engine's free decoding ran too, vLLM's free decoding is timed the same way, so the block also
gives vLLM's own grounded/free ratio (the price of the constraint inside vLLM).
"""
from __future__ import annotations

import os
import time


class VllmBench:
    def __init__(self, base: str, dtype: str = "auto"):
        from care_model.inference.backends.vllm_backend import VllmBackend
        from care_model.inference.models import ModelSpec, model_version_id
        from care_model.inference.predictor import PredictConfig

        spec = ModelSpec(base=base, dtype=dtype)
        self.backend = VllmBackend(spec, PredictConfig(backend="vllm"), model_version=model_version_id(spec))
        self.loadavg_start = [round(x, 2) for x in os.getloadavg()]
        t0 = time.perf_counter()
        self.group = self.backend.start()
        self.load_s = time.perf_counter() - t0
        self.rows: list[dict] = []

    def warm_up(self, session_prompt) -> None:
        """First-call costs on a short prompt of its own (the first 64 prefix tokens and item 1)."""
        tok = self.backend.tokenizer
        ids = list(tok(session_prompt.prefix, add_special_tokens=False)["input_ids"])[:64]
        ids += list(tok(session_prompt.suffixes[min(session_prompt.suffixes)], add_special_tokens=False)["input_ids"])
        self.group.workers[0].call({"op": "generate", "requests": [
            {"prompt_token_ids": ids, "max_tokens": 2, "logprob_token_ids": [], "stop_token_ids": []}]})
        self.group.workers[0].call({"op": "reset_prefix_cache"})

    def measure(self, session_id: str, session_prompt, engine_scores: dict, engine_s: float, *,
                engine_grounded: tuple | None = None, make_rows=None, max_new_tokens: int = 96,
                transcript_index=None, engine_free: tuple | None = None) -> dict:
        """One session, scores only, cold cache; compared with the engine's scores-only outputs.
        With ``engine_grounded`` (``(outputs, seconds)``) and ``make_rows`` (fresh grounded rows for
        vLLM's tokenizer): the session again, grounded decoding inside vLLM, cold cache, timed with
        its row set-up as the engine's was; compared token for token with the engine's."""
        self.group.workers[0].call({"op": "reset_prefix_cache"})
        t0 = time.perf_counter()
        outs = self.backend.run(session_prompt, scores_only=True, group=self.group)
        seconds = time.perf_counter() - t0
        agree = sum(outs[i].argmax_score == engine_scores[i].argmax_score for i in engine_scores)
        diff = max(abs(a - b) for i in engine_scores
                   for a, b in zip(outs[i].option_probs, engine_scores[i].option_probs))
        row = {"id": session_id, "vllm_scores_only_s": round(seconds, 3), "engine_scores_only_s": round(engine_s, 3),
               "scores_agree": agree, "items": len(engine_scores), "max_option_prob_diff": diff,
               "cached_prompt_tokens": self.backend.last_stats["cached_prompt_tokens"]}
        if engine_free is not None:  # free decoding (the grounded path's own baseline), cold cache
            ref, ref_s = engine_free
            self.group.workers[0].call({"op": "reset_prefix_cache"})
            t0 = time.perf_counter()
            outs = self.backend.run(session_prompt, scores_only=False, group=self.group, max_new_tokens=max_new_tokens)
            row.update({"vllm_free_s": round(time.perf_counter() - t0, 3), "engine_free_s": round(ref_s, 3),
                        "free_same_tokens": sum(outs[i].token_ids == ref[i].token_ids for i in ref)})
        if engine_grounded is not None and make_rows is not None:
            from care_model.text.parse import parse_answer

            ref, ref_s = engine_grounded
            self.group.workers[0].call({"op": "reset_prefix_cache"})
            t0 = time.perf_counter()
            rows = make_rows()
            outs = self.backend.run(session_prompt, scores_only=False, group=self.group, rows=rows,
                                    max_new_tokens=max_new_tokens)
            seconds = time.perf_counter() - t0
            unsupported = 0
            if transcript_index is not None:
                for out in outs.values():
                    unsupported += len(transcript_index.link(parse_answer(out.text).rationale or "").unsupported)
            row.update({"vllm_grounded_s": round(seconds, 3), "engine_grounded_s": round(ref_s, 3),
                        "grounded_same_tokens": sum(outs[i].token_ids == ref[i].token_ids for i in ref),
                        "grounded_unsupported_quotes": unsupported,
                        "grounded_violations": self.backend.last_stats.get("grounding_violations", 0),
                        "grounded_replay_s": self.backend.last_stats.get("replay_s", 0.0)})
        self.rows.append(row)
        return row

    def summary(self) -> dict:
        n = len(self.rows)
        v = sum(r["vllm_scores_only_s"] for r in self.rows) / n
        e = sum(r["engine_scores_only_s"] for r in self.rows) / n
        agree, items = sum(r["scores_agree"] for r in self.rows), sum(r["items"] for r in self.rows)
        self.backend.close()
        return {
            "backend": "vllm", "vllm_version": self.group.vllm_version, "load_s": round(self.load_s, 1),
            "mode": "scores_only", "prefix_cache": "cold (reset before each measured session)",
            "scores_only_s_per_session": round(v, 3), "engine_scores_only_s_per_session": round(e, 3),
            "engine_over_vllm": round(e / v, 3),
            "faster": "vllm" if v < e else "engine",
            "scores_agree": f"{agree}/{items}",
            "max_option_prob_diff": float(f"{max(r['max_option_prob_diff'] for r in self.rows):.3g}"),
            "loadavg_start": self.loadavg_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "per_session": [{k: (float(f"{val:.3g}") if k == "max_option_prob_diff" else val) for k, val in r.items()
                             if k != "cached_prompt_tokens"} for r in self.rows],
            **self._grounded_summary(),
        }

    def _grounded_summary(self) -> dict:
        rows = [r for r in self.rows if "vllm_grounded_s" in r]
        if not rows:
            return {}
        v = sum(r["vllm_grounded_s"] for r in rows) / len(rows)
        e = sum(r["engine_grounded_s"] for r in rows) / len(rows)
        free = [r for r in rows if "vllm_free_s" in r]
        vf = sum(r["vllm_free_s"] for r in free) / len(free) if free else None
        extra = {"vllm_grounded_over_free": round(v / vf, 3), "vllm_free_s_per_session": round(vf, 3),
                 "free_same_tokens": f"{sum(r['free_same_tokens'] for r in free)}/{sum(r['items'] for r in free)}",
                 } if free else {}
        return {"grounded": {
            **extra,
            "s_per_session": round(v, 3), "engine_s_per_session": round(e, 3), "engine_over_vllm": round(e / v, 3),
            "faster": "vllm" if v < e else "engine",
            "same_tokens": f"{sum(r['grounded_same_tokens'] for r in rows)}/{sum(r['items'] for r in rows)}",
            "unsupported_quotes": sum(r["grounded_unsupported_quotes"] for r in rows),
            "violations": sum(r["grounded_violations"] for r in rows),
            "replay_s_per_session": round(sum(r["grounded_replay_s"] for r in rows) / len(rows), 4)}}
