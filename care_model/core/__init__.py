"""The domain: the WAI forms as data (``forms/``, :mod:`~care_model.core.wai`), the records that
flow around the loop (:mod:`~care_model.core.records`) and the one error family
(:mod:`~care_model.core.errors`).

May import: the standard library only. Nothing else of ours (``store`` builds on this package).
"""
