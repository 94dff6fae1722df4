"""Statistics: intervals and the cluster bootstrap (:mod:`~care_model.stats.estimates`), agreement,
reliability, correlations, text metrics, human evaluation, the paper's evaluation protocol
(:mod:`~care_model.stats.evaluate`), held-out sets and version comparisons.

May import: :mod:`care_model.core`, :mod:`care_model.text`. Pure numpy/scipy: no torch, no storage
(embedding-based metrics take the embedding function as an argument).
"""
