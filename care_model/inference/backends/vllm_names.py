"""The names the vLLM worker and its grounded-decoding logits processor agree on.

A module of its own (no vllm import) so that :mod:`care_model.inference.backends.vllm_worker`
(importable without vllm) and :mod:`care_model.inference.backends.vllm_grounded` (which imports
vllm) share them without importing each other.
"""

# the grounded-decoding logits processor, loaded by vLLM by name in its engine core
GROUNDED_FQCN = "care_model.inference.backends.vllm_grounded:GroundedLogitsProcessor"
# the key of a request's grounding spec in SamplingParams.extra_args
GROUNDING_KEY = "care_grounding"
