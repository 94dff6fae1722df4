"""File formats that carry the curated set out of the store and back: a Hugging Face dataset folder
and its card, training-ready exports (SFT, preference pairs), model cards, Label Studio and
Argilla interchange. Pure where possible: records in, dicts and files out; no store (the jobs
layer reads and writes stores), no torch. May import core, text, stats.
"""
