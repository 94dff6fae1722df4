"""Where a session's files live in a store folder: ``sessions/<key>/`` (see :mod:`store.repository`).

The key is a readable slug of the session id plus a short hash of it, so two ids that slug
alike never share a folder.
"""
from __future__ import annotations

import hashlib
import re


def session_key(session_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", session_id).strip("._")[:40] or "s"
    return f"{slug}-{hashlib.sha1(session_id.encode('utf-8')).hexdigest()[:8]}"
