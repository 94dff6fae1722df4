"""care_model.text.stop_tokens: the stop set the engine, the vLLM backend and training share."""
from __future__ import annotations

from care_model.text.stop_tokens import END_OF_TURN_TOKENS, stop_ids


class Vocab:
    """A tokenizer's three stop-related attributes, for the rule's corner cases (the real tiny
    tokenizer is checked below)."""

    def __init__(self, vocab, eos, special):
        self._vocab, self.eos_token_id, self.all_special_tokens = vocab, eos, special

    def get_vocab(self):
        return self._vocab


def test_eos_ids_and_special_end_of_turn_markers():
    tok = Vocab({"<|im_end|>": 7, "</s>": 8, "<|eot_id|>": 9, "hello": 10}, eos=2, special=["<|im_end|>", "<|eot_id|>"])
    assert stop_ids(tok) == [2, 7, 9]                   # "</s>" is an ordinary piece here: not a stop
    assert stop_ids(tok, eos_token_id=[3, 4]) == [2, 3, 4, 7, 9]
    assert stop_ids(tok, eos_token_id=5) == [2, 5, 7, 9]
    assert stop_ids(Vocab({"</s>": 8}, eos=None, special=None)) == [8]   # no special list: every marker counts


def test_the_tiny_models_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert "<|im_end|>" in END_OF_TURN_TOKENS and im_end in stop_ids(tok) and tok.eos_token_id in stop_ids(tok)
