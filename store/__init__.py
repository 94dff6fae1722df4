"""The store: a TinyDB-backed repository of sessions, predictions, labels, users and audit.

``from store import Repository``; ``care store --help`` for the command line.
"""
from .repository import ImportReport, Repository, SessionView  # noqa: F401
