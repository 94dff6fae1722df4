"""Inference: offline model loading (:mod:`~care_model.inference.models`), the shared-prefix
batched engine and its attention, constrained (grounded) decoding, option tokens, embeddings,
the :class:`~care_model.inference.predictor.Predictor` and the backends (the engine, or a vLLM
worker in ``backends/``).

May import: :mod:`care_model.core`, :mod:`care_model.text`, :mod:`care_model.stats`; torch and
transformers lazily. Never the store.
"""
