"""Private downloads: an export file can be fetched only by the admin who made it, for a while.

Exports (the store, the audit trail, a campaign's results) are written by :func:`private_path`
into a fresh owner-only temp folder, under a name that carries a random token
(``care-<kind>-<stamp>-<token>.<ext>``), and registered to the user who asked. Gradio serves a
handler's files from its cache at ``/gradio_api/file=...`` to anyone logged in; the ASGI
middleware :class:`DownloadGuard` (installed by ``StudioBlocks.launch``) answers 403 for a
private file unless the request's logged-in user is its owner and it is less than
:data:`TTL_S` seconds old. Unregistered ``care-*`` names (e.g. from before a restart) are refused
too. Pure Python (no Gradio import at module load).

When the link expires the file is deleted (a timer per export), together with the copy Gradio
made in its cache folder (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``) to serve it; at exit every
export this process made is deleted (:func:`purge`).
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import unquote

TTL_S = 15 * 60
PRIVATE = re.compile(r"^care-(export|audit|eval)-.*-[0-9a-f]{16}\.[a-z]+$")
_LOCK = threading.Lock()
_OWNERS: dict[str, tuple[str, float]] = {}  # file name -> (owner, created at)
_PATHS: dict[str, Path] = {}  # file name -> where it was written (deleted when it expires)
_TIMERS: dict[str, threading.Timer] = {}


def gradio_cache() -> Path:
    """Where Gradio copies the files handlers return before serving them."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    except OSError:
        pass


def expire(name: str) -> None:
    """Delete the export called ``name`` now: its file, Gradio's cached copy, its registration."""
    with _LOCK:
        path = _PATHS.pop(name, None)
        _OWNERS.pop(name, None)
        timer = _TIMERS.pop(name, None)
    if timer is not None:
        timer.cancel()
    if path is not None:
        _remove(path)
    cache = gradio_cache()
    if PRIVATE.match(name) and cache.is_dir():
        for copy in cache.glob(f"*/{name}"):
            _remove(copy)


def purge() -> None:
    """Delete every export this process made (at exit, or when the app closes)."""
    with _LOCK:
        names = list(_PATHS)
    for name in names:
        expire(name)


atexit.register(purge)


def private_folder() -> Path:
    """A fresh folder only this OS user can read (old exports in it are dropped after an hour)."""
    base = Path(tempfile.gettempdir()) / f"care-exports-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    for old in base.glob("*/*"):  # left by a process that could not clean up (killed)
        try:
            if time.time() - old.stat().st_mtime > TTL_S:
                _remove(old)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=base))


def private_path(owner: str, kind: str, ext: str, label: str = "", folder: Path | None = None) -> Path:
    """A new file path for ``owner``'s download of ``kind`` (export, audit, eval), registered."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:40]
    name = f"care-{kind}-{label + '-' if label else ''}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(8)}.{ext}"
    path = (folder or private_folder()) / name
    timer = threading.Timer(TTL_S + 1, expire, [name])
    timer.daemon = True
    with _LOCK:
        _OWNERS[name] = (owner, time.time())
        _PATHS[name] = path
        _TIMERS[name] = timer
    timer.start()
    return path


def may_fetch(name: str, user: str | None) -> bool:
    """Whether ``user`` may fetch the file called ``name`` (anything not private: yes)."""
    with _LOCK:
        entry = _OWNERS.get(name)
    if entry is None:
        return not PRIVATE.match(name)
    owner, created = entry
    return user is not None and user == owner and time.time() - created < TTL_S


def _user(scope) -> str | None:
    app = scope.get("app")
    cookies = SimpleCookie()
    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            try:
                cookies.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie is no login
                return None
    cookie_id = getattr(app, "cookie_id", None)
    tokens = getattr(app, "tokens", {}) or {}
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in cookies and cookies[name].value in tokens:
            return tokens[cookies[name].value]
    return None


class DownloadGuard:
    """ASGI middleware: refuses private files to anyone but their owner (see the module doc)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and "/file=" in scope.get("path", ""):
            name = Path(unquote(scope["path"].split("/file=", 1)[1])).name
            if not may_fetch(name, _user(scope)):
                body = (b"This download belongs to the admin who made it, or it expired. "
                        b"Fix: export again from your own admin session.")
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
