"""End-of-turn tokens and the stop set built from them: one rule for inference (the engine, the
vLLM worker) and training (the answer's closing token). Light: no torch, no transformers."""
from __future__ import annotations

# Chat end-of-turn markers of common templates: generation stops at these (plus the model's eos).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>", "</s>",
                      "<end_of_turn>", "<|eom_id|>")


def stop_ids(tokenizer, eos_token_id=None) -> list[int]:
    """The model's eos ids (``eos_token_id``: an int or a list, e.g. from its generation config) and
    the tokenizer's, plus every end-of-turn marker the vocabulary holds as a special token."""
    ids: set[int] = set()
    for src in (eos_token_id, tokenizer.eos_token_id):
        if src is not None:
            ids.update([src] if isinstance(src, int) else list(src))
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_tokens", None) or [])
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab and (not special or t in special))
    return sorted(int(i) for i in ids)


def folder_stop_ids(tokenizer, folder) -> list[int]:
    """:func:`stop_ids` with the eos ids of the model folder's ``generation_config.json`` (if it has one)."""
    import json
    from pathlib import Path

    gen = Path(folder) / "generation_config.json"
    eos = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id") if gen.is_file() else None
    return stop_ids(tokenizer, eos)
