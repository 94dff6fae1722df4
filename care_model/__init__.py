"""CARE model core: WAI schema, prompts, parsing, models, inference, retraining, evaluation.

Importing this package is cheap: nothing here imports torch or loads a model until asked.
"""
