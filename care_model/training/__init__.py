"""Retraining: recipes and config (:mod:`~care_model.training.config`), training data, the LoRA
loop, the run's phases (:mod:`~care_model.training.run`), run folders and processes, evaluation of
a candidate, model versions and cross-validation by client.

May import: everything in :mod:`care_model` below :mod:`care_model.report`. Functions that need a
store take a repository as an argument; only :mod:`care_model.jobs` opens one.
"""
