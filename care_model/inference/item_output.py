"""What a backend returns per item (:class:`ItemOutput`): the engine's fast and naive paths and the
vLLM backend all build these, and :func:`care_model.inference.backends.common.to_predictions`
turns them into predictions. No torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Progress = Callable[[float, str], None]  # progress(fraction, message)


@dataclass
class ItemOutput:
    text: str                    # greedy answer text (special tokens removed); "" in scores-only mode
    token_ids: list[int]         # generated ids, the stop token included when one was generated
    option_probs: list[float]    # P(option) at the score position, normalised over the options
    expected_score: float        # sum(option * prob)
    argmax_score: int            # the most probable option
    option_mass: float = 1.0     # total probability of all option tokens before normalisation
    finished: bool = False       # stopped at a stop token (False: hit max_new_tokens or scores-only)

    def to_dict(self) -> dict:
        return {"text": self.text, "token_ids": list(self.token_ids), "option_probs": list(self.option_probs),
                "expected_score": self.expected_score, "argmax_score": self.argmax_score,
                "option_mass": self.option_mass, "finished": self.finished}
