"""The Hugging Face peers of the inference benchmark: what a user would write with ``transformers`` alone.

* :func:`hf_sequential` -- one prefilled ``DynamicCache`` of the shared prefix, copied for each item, then
  12 greedy ``generate`` calls (one item each) on prefix + suffix.
* :func:`hf_batched` -- the same prefix cache **expanded to batch 12** (``batch_repeat_interleave``) and **one**
  ``generate`` call for the 12 items: each row is prefix + pads + suffix with the pads masked out, so a
  row's suffix positions continue from the prefix as in the engine (position ids follow the mask).
  Scores only: ``max_new_tokens=1`` and the first position's logits. Grounded decoding: one logits
  processor holding the 12 rows' :class:`care_model.text.grounding.GroundedRow` states.

Both return ``{item: ItemOutput}`` (scores from the first generated position's raw logits), so the
benchmark compares tokens and scores with the engine's.
"""
from __future__ import annotations

import copy


def _gen_config(engine, max_new_tokens: int):
    from transformers import GenerationConfig

    return GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                            eos_token_id=list(engine.stop_token_ids), pad_token_id=engine.pad_token_id,
                            temperature=None, top_p=None, top_k=None, output_logits=True,
                            return_dict_in_generate=True)


def _prefix_cache(model, engine, prefix):
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([list(prefix)], device=engine.device), past_key_values=cache, use_cache=True)
    return cache


def _output(engine, gen: list[int], first_logits, option_ids):
    from care_model.inference.item_output import ItemOutput

    probs, exp_, arg, mass = engine._score(first_logits, option_ids)
    stops = set(engine.stop_token_ids)
    if any(t in stops for t in gen):  # cut the pads after the stop token (batched rows)
        gen = gen[:next(i for i, t in enumerate(gen) if t in stops) + 1]
    done = bool(gen) and gen[-1] in stops
    return ItemOutput(engine._decode_text(gen), gen, probs, exp_, arg, mass, done)


def hf_sequential(loaded, engine, prefix, suffixes: dict, max_new_tokens: int, *, language: str = "en",
                  scores_only: bool = False) -> dict:
    """12 ``generate`` calls, each on a copy of one prefilled prefix cache."""
    import torch

    model = loaded.model
    option_ids = engine.option_token_ids(language)
    cfg = _gen_config(engine, 1 if scores_only else max_new_tokens)
    out = {}
    with torch.inference_mode():
        cache = _prefix_cache(model, engine, prefix)
        for item, suffix in suffixes.items():
            ids = torch.tensor([list(prefix) + list(suffix)], device=engine.device)
            res = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg,
                                 past_key_values=copy.deepcopy(cache))
            gen = [] if scores_only else res.sequences[0, ids.shape[1]:].tolist()
            out[item] = _output(engine, gen, res.logits[0][0], option_ids)
    return out


class _BatchedGrounded:
    """Grounded decoding for a batch in ``generate``: row ``b`` follows ``rows[b]``; finished rows are left alone."""

    def __init__(self, rows, prompt_length: int, score_of, stop_ids):
        self.rows, self.prompt_length, self.score_of = rows, int(prompt_length), score_of
        self.stops, self.done = set(stop_ids), [False] * len(rows)

    def __call__(self, input_ids, scores):
        import torch

        from care_model.inference.constrained import constrain

        first = input_ids.shape[1] == self.prompt_length
        out = []
        for b, row in enumerate(self.rows):
            if first:
                row.start(*self.score_of(scores[b]))
            elif not self.done[b]:
                tok = int(input_ids[b, -1])
                if tok in self.stops:
                    self.done[b] = True
                else:
                    row.advance(tok)
            out.append(scores[b] if self.done[b] else constrain(scores[b], row.allowed(), row.vocab))
        return torch.stack(out)


def hf_batched(loaded, engine, prefix, suffixes: dict, max_new_tokens: int, *, language: str = "en",
               scores_only: bool = False, constraints: dict | None = None) -> dict:
    """One ``generate`` call for all items over the prefix cache expanded to the batch."""
    import torch
    from transformers import LogitsProcessorList

    model = loaded.model
    option_ids = engine.option_token_ids(language)
    items = list(suffixes)
    S = max(len(suffixes[i]) for i in items)
    P = len(prefix)
    pad = engine.pad_token_id
    ids = torch.tensor([list(prefix) + [pad] * (S - len(suffixes[i])) + list(suffixes[i]) for i in items],
                       device=engine.device)
    mask = torch.tensor([[1] * P + [0] * (S - len(suffixes[i])) + [1] * len(suffixes[i]) for i in items],
                        device=engine.device)
    cfg = _gen_config(engine, 1 if scores_only else max_new_tokens)
    extra = {}
    if constraints and not scores_only:
        def score_of(logits_row):
            probs, _, argmax, _ = engine._score(logits_row, option_ids)
            return argmax, probs

        extra["logits_processor"] = LogitsProcessorList([_BatchedGrounded(
            [constraints[i] for i in items], ids.shape[1], score_of, engine.stop_token_ids)])
    with torch.inference_mode():
        cache = _prefix_cache(model, engine, prefix)
        cache.batch_repeat_interleave(len(items))
        res = model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg, past_key_values=cache,
                             **extra)
    out = {}
    for b, item in enumerate(items):
        gen = [] if scores_only else res.sequences[b, ids.shape[1]:].tolist()
        out[item] = _output(engine, gen, res.logits[0][b], option_ids)
    return out
