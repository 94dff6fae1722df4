"""Salted password hashes (scrypt from the standard library); no plain password is ever stored."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1
_DUMMY: dict[tuple, str] = {}


def dummy_hash() -> str:
    """A hash of a random password with the current cost (:data:`N`, :data:`R`, :data:`P`): checked
    against when the user is unknown, so an unknown name costs the same scrypt work as a known one."""
    key = (N, R, P)
    if key not in _DUMMY:
        _DUMMY[key] = hash_password(base64.b64encode(os.urandom(18)).decode())
    return _DUMMY[key]


def cost_of(stored: str) -> tuple[int, int, int] | None:
    """The (N, r, p) a stored hash was made with, or None for an unreadable hash."""
    try:
        scheme, n, r, p, _salt, _digest = stored.split("$")
        return (int(n), int(r), int(p)) if scheme == "scrypt" else None
    except ValueError:
        return None


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=32)
    return "scrypt${}${}${}${}${}".format(
        N, R, P, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)
