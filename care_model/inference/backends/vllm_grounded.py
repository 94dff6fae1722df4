"""Grounded decoding inside vLLM: a logits processor that runs the project's own row constraint.

Loaded by vLLM (in the vLLM venv, never in the project's process) from its fully qualified name
:data:`~care_model.inference.backends.vllm_names.GROUNDED_FQCN`, which the worker
(:mod:`care_model.inference.backends.vllm_worker`) passes as ``LLM(logits_processors=[GROUNDED_FQCN])``.
A request asks for grounding through its sampling parameters::

    SamplingParams(temperature=0, extra_args={"care_grounding": {
        "row": GroundedRow.spec(),     # candidate turns, option ids, language, score rule, ...
        "stop_ids": [...],             # the stop set the row's vocabulary was built with
        "tokenizer": "<model folder>"}})

For such a request vLLM's :class:`AdapterLogitsProcessor` holds a
:class:`care_model.inference.constrained.RowProcessor` around a :class:`care_model.text.grounding.GroundedRow`
rebuilt from the spec (the vocabulary is built once per tokenizer and stop set, and its
fingerprint must equal the one the row was made with). Every decoding step it starts or advances
the row and sets each disallowed logit to ``-inf``, so vLLM's greedy sampler picks exactly what
our engine picks: the score line is the (calibrated) argmax option, quotes are verbatim spans of
the item's candidate turns, and the free text stops after the first sentence. Requests without
``care_grounding`` pass untouched.

Served (``vllm serve MODEL --logits-processors`` this class, see
:mod:`care_model.inference.backends.openai_backend`), a request carries the same spec as JSON text in
``vllm_xargs: {"care_grounding": "..."}`` (vLLM's custom arguments take plain values).

The worker (:meth:`care_model.inference.backends.vllm_worker.Worker.generate`) rebuilds every request's row
once before it queues any, so a malformed spec or another tokenizer fails that call with a clear
message instead of killing the engine core.
"""
from __future__ import annotations

import json

from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from care_model.inference.constrained import RowProcessor, vocabulary_from_folder
from care_model.text.grounding import GroundedRow
from care_model.inference.backends.vllm_names import GROUNDING_KEY


def _spec_dict(spec) -> dict:
    """Through `vllm serve` the spec comes as JSON text in the request's vllm_xargs."""
    return json.loads(spec) if isinstance(spec, str) else spec


def row_from(spec: dict) -> GroundedRow:
    """The row a request's ``care_grounding`` spec describes, on its tokenizer's vocabulary."""
    return GroundedRow.from_spec(vocabulary_from_folder(spec["tokenizer"], spec["stop_ids"]), spec["row"])


class GroundedLogitsProcessor(AdapterLogitsProcessor):
    """vLLM's per-request adapter around :class:`~care_model.inference.constrained.RowProcessor`."""

    @classmethod
    def validate_params(cls, sampling_params):
        """A request's spec is rebuilt before vLLM queues it: a malformed one is that request's HTTP 400
        (a ValueError here), not an exception in the engine core that stops the server."""
        spec = (sampling_params.extra_args or {}).get(GROUNDING_KEY)
        if spec is None:
            return
        try:
            row_from(_spec_dict(spec))
        except Exception as err:  # noqa: BLE001 -- any bad spec is the request's error
            raise ValueError(f"bad {GROUNDING_KEY} spec ({type(err).__name__}: {err})") from None

    def is_argmax_invariant(self) -> bool:
        return False  # it decides which token greedy decoding picks

    def new_req_logits_processor(self, params):
        spec = (params.extra_args or {}).get(GROUNDING_KEY)
        spec = _spec_dict(spec) if spec else None
        return RowProcessor(row_from(spec), fresh=lambda: row_from(spec)) if spec else None
