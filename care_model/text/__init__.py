"""Text in and out of the model: the prompt (:mod:`~care_model.text.prompt`), answer parsing,
evidence linking, grounded decoding's allowed sets (:mod:`~care_model.text.grounding`), drafting
prompts, the curated-set rule (:mod:`~care_model.text.curation`), stop tokens and content-free
calibration.

May import: :mod:`care_model.core`. Pure: no torch, no transformers, no storage.
"""
