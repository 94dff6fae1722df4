"""Clean identifiers and text: user names compared as NFKC + casefold, and text refused when it
holds control characters or bidirectional overrides.

Pure (the standard library only), used by the store (user names) and the app (every text
argument, :mod:`studio.validate`).

* A user name is stored NFKC-normalised (full-width ``ＡＮＮ１`` becomes ``ANN1``) and compared by
  :func:`username_key` (NFKC, then ``casefold``), so ``ANN1`` and ``ann1`` are one account.
* Text may hold newline and tab but no other control character (C0, DEL, C1: a NUL byte ends a C
  string, ESC drives terminals) and none of the Unicode bidirectional controls (U+202A-U+202E,
  U+2066-U+2069, U+200E/U+200F, U+061C): a right-to-left override makes a rationale read
  differently on screen than it is stored ("Trojan Source").
"""
from __future__ import annotations

import unicodedata

from .errors import ValidationError

ALLOWED_CONTROLS = {"\n", "\t", "\r"}
BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def normalise_username(name: str) -> str:
    """The form a user name is stored in: NFKC, surrounding spaces stripped."""
    return unicodedata.normalize("NFKC", name or "").strip()


def username_key(name: str) -> str:
    """The form two user names are compared in: NFKC, casefolded, NFKC again (Unicode's
    identifier caseless match)."""
    return unicodedata.normalize("NFKC", normalise_username(name).casefold())


def unsafe_characters(text: str) -> list[str]:
    """The refused characters in ``text`` as ``U+XXXX`` code points (first occurrences, in order)."""
    found = []
    for ch in text:
        if ch in ALLOWED_CONTROLS:
            continue
        if ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            code = f"U+{ord(ch):04X}"
            if code not in found:
                found.append(code)
    return found


def check_text(text: str, where: str) -> None:
    """Raise :class:`ValidationError` if ``text`` holds a refused character (nothing is stored)."""
    bad = unsafe_characters(text) if isinstance(text, str) else []
    if bad:
        names = ", ".join(f"{c} ({unicodedata.name(chr(int(c[2:], 16)), 'control')})" for c in bad[:4])
        raise ValidationError(
            f"{where} holds characters that are refused in text: {names}.",
            "Remove control characters and right-to-left/left-to-right override marks (newlines and tabs are "
            "fine); retype the text rather than pasting it from a formatted document.")
