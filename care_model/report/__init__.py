"""The evaluation report: its data (:mod:`~care_model.report.data`, the paper's Table 2 rows and a
subject's figures), its HTML (:mod:`~care_model.report.page`) and plots (:mod:`~care_model.report.plots`).

May import: :mod:`care_model.core`, ``text``, ``stats``, ``training``. Never the store
(:mod:`care_model.jobs.report` reads the store and builds the report).
"""
