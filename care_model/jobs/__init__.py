"""Jobs over a store: the one layer that opens stores (``store``) and runs the loop's steps on
them, each a command with ``main(argv)``: predict, retrain, crossval, evaluate, report, versions.

``care`` (:mod:`care_model.cli`) dispatches to these; ``python -m care_model.jobs.NAME`` works too.
May import: everything in :mod:`care_model` and ``store``.
"""
