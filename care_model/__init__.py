"""CARE model: the WAI schema, prompts, parsing, models, inference, retraining and evaluation.

Subpackages by concern, each importing only those listed before it (``tests/test_import_graph.py``
checks it):

- :mod:`care_model.core`: forms (WAI-SR as data), records, errors. Imports nothing of ours.
- :mod:`care_model.text`: prompts, parsing, evidence, grounding, drafting, curation, calibration.
  Pure: no torch, no storage.
- :mod:`care_model.stats`: agreement, reliability, intervals, the paper's evaluation protocol,
  held-out sets, comparisons. Pure numpy/scipy.
- :mod:`care_model.inference`: model loading, the shared-prefix engine, the predictor, backends.
- :mod:`care_model.training`: LoRA retraining, run folders, model versions, cross-validation.
- :mod:`care_model.report`: the Table 2 report's data, HTML and plots.
- :mod:`care_model.jobs`: the one layer that opens stores and runs jobs over them (the CLI mains).
- :mod:`care_model.cli`: the ``care`` command.

Importing this package is cheap: nothing here imports torch or loads a model until asked.
"""
