"""One family of errors for the whole project.

Every error names the problem and the fix, so the app, the CLIs and the tests can show
``str(err)`` to a person as is. Catch :class:`CareError` to catch them all.
"""
from __future__ import annotations


class CareError(Exception):
    """Base class: ``problem`` says what is wrong, ``fix`` says what to do about it."""

    def __init__(self, problem: str, fix: str = "", **details):
        self.problem = problem
        self.fix = fix
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.problem} Fix: {self.fix}" if self.fix else self.problem

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class ValidationError(CareError):
    """A value breaks the schema: unknown item, score outside the scale, missing items, ..."""


class ImportFormatError(CareError):
    """An input file cannot be imported; names the file and line or record."""


class NotFoundError(CareError):
    """A session, label, user, model version, ... does not exist."""


class ConflictError(CareError):
    """A write was based on a stale version; names who changed it and when."""

    def __init__(self, problem: str, fix: str = "", *, current=None, **details):
        super().__init__(problem, fix, **details)
        self.current = current


class StoreLockedError(CareError):
    """Another process holds the store."""


class StoreFormatError(CareError):
    """The files of a store cannot be read or are from an unknown schema version."""


class PermissionDenied(CareError):
    """The user's role does not allow the action."""


class AuthError(CareError):
    """Login failed or the user is unknown."""


class ModelError(CareError):
    """A model cannot be found, loaded or run."""


class ConfigError(CareError):
    """A configuration key or value is invalid."""


class TrainingError(CareError):
    """A training run cannot start or failed."""


class LoginLocked(AuthError):
    """Too many failed logins for an account or address: refused until the back-off ends."""


class DeidentificationRequired(CareError):
    """Transcripts with unreviewed de-identification findings were about to leave the store."""
