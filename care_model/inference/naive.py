"""The reference path of :class:`care_model.inference.engine.Engine`: 12 independent ``model.generate`` calls.

Each item is generated alone from ``prefix_ids + suffix_ids`` with greedy ``generate`` (scores-only:
one full forward pass taking the last position's logits). With ``constraints`` (one
:class:`care_model.text.grounding.GroundedRow` per item) a
:class:`care_model.inference.constrained.GroundedLogitsProcessor` applies grounded decoding; the score
position's probabilities always come from the raw logits. Tests check that the fast path gives
the same tokens and close probabilities.
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

from care_model.inference.item_output import ItemOutput, Progress


def run_naive(engine, prefix_ids: Sequence[int], suffix_ids: Mapping[int, Sequence[int]], *,
              max_new_tokens: int = 64, scores_only: bool = False, progress: Progress | None = None,
              language: str = "en", constraints: Mapping | None = None) -> dict:
    from transformers import GenerationConfig, LogitsProcessorList

    torch = engine.torch
    option_ids = engine.option_token_ids(language)
    items = list(suffix_ids)
    report = progress or (lambda f, m: None)
    outputs: dict[int, ItemOutput] = {}
    stats = {"mode": "scores_only" if scores_only else "full", "path": "naive", "items": len(items),
             "prefix_tokens": len(prefix_ids), "suffix_tokens": sum(len(suffix_ids[i]) for i in items),
             "decoding": "grounded" if constraints else "free"}
    gen_cfg = GenerationConfig(
        max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1, eos_token_id=list(engine.stop_token_ids),
        pad_token_id=engine.pad_token_id, repetition_penalty=1.0, temperature=None, top_p=None, top_k=None,
        output_logits=True, return_dict_in_generate=True)
    generated_tokens = 0
    with engine._lock, torch.inference_mode():
        t0 = time.perf_counter()
        for n, item in enumerate(items):
            ids = torch.tensor([list(prefix_ids) + list(suffix_ids[item])], dtype=torch.long, device=engine.device)
            mask = torch.ones_like(ids)
            if scores_only:
                out = engine.model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)
                probs, exp_, arg, mass = engine._score(out.logits[0, -1], option_ids)
                outputs[item] = ItemOutput("", [], probs, exp_, arg, mass, False)
            else:
                extra = {}
                if constraints:
                    from care_model.inference.constrained import GroundedLogitsProcessor

                    def score_of(logits_row):  # (argmax option, option probabilities)
                        probs, _, argmax, _ = engine._score(logits_row, option_ids)
                        return argmax, probs

                    extra["logits_processor"] = LogitsProcessorList(
                        [GroundedLogitsProcessor(constraints[item], ids.shape[1], score_of)])
                out = engine.model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg, **extra)
                gen = out.sequences[0, ids.shape[1]:].tolist()
                probs, exp_, arg, mass = engine._score(out.logits[0][0], option_ids)
                done = bool(gen) and gen[-1] in engine.stop_token_ids
                outputs[item] = ItemOutput(engine._decode_text(gen), gen, probs, exp_, arg, mass, done)
                generated_tokens += len(gen)
            report((n + 1) / len(items), f"item {item} done")
        engine._sync()
        stats["total_s"] = time.perf_counter() - t0
        stats["generated_tokens"] = generated_tokens
        engine.last_stats = stats
    return outputs
