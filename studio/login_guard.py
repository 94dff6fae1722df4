"""Login and sessions for the review app: throttled uniform login, sessions that end, nothing before login.

:class:`LoginGuard` is ASGI middleware that ``StudioBlocks.launch`` puts in front of Gradio
(:func:`install`). It owns three things Gradio does loosely:

* **Login** (``POST /login``): :func:`attempt` checks the lock of the account and of the client
  address (:mod:`store.logins`, persisted, so a restart keeps them), then always runs one scrypt
  check (a dummy hash for unknown or inactive names, so both answer in the same time), then
  records the failure (audited; 5 free per account, 20 per address, then 1 s doubling to 15 min)
  or the success. A locked login is refused even with the right password, with the time to
  retry (HTTP 429 and ``Retry-After``). User names are matched ignoring case and Unicode form.
* **Sessions**: a login makes a random token (Gradio's ``app.tokens``) and a record here (user,
  start, last activity, the user's ``sessions_epoch``). Every request is checked against
  :class:`SessionPolicy`: idle for ``idle_s`` (default 30 min; a POST or a page load is
  activity, background GETs are not) or older than ``absolute_s`` (12 h), or the user's epoch
  moved (password reset, role change, deactivation, "log out everywhere") ends the session: the
  token is dropped and the request answered 401 naming the reason (the page: the login form).
* **Cookies**: one cookie, ``HttpOnly; SameSite=Strict; Path=/; Max-Age=<absolute_s>``, named
  ``access-token-<id>`` with ``Secure`` over TLS, else ``access-token-unsecure-<id>`` (the two
  names Gradio reads). SameSite=Strict: no other site can make a browser send it.
* **Before login** only the login page (``GET /``, :mod:`studio.login_page`), ``POST /login`` and
  Gradio's ``/gradio_api/startup-events`` (true/false, called once by ``launch``) answer; everything
  else (API schema, ``/config``, assets, files) is 401.

Client addresses are the TCP peer's (``X-Forwarded-For`` is not trusted: behind a reverse proxy
every client shares the proxy's address limit). Pure Python over the store (Gradio only in
:func:`install`).
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from care_model.core.errors import AuthError, LoginLocked
from store.logins import LoginPolicy

from .login_page import login_page

MAX_LOGIN_BODY = 4096
STATIC = ("/assets/", "/static/", "/svelte/", "/gradio_api/static/", "/favicon.ico")
PUBLIC = ("/gradio_api/startup-events",)  # launch() calls it once; answers true/false, runs the startup hooks
INCORRECT = "Incorrect credentials."


@dataclass
class SessionPolicy:
    """How long a login lasts: ``idle_s`` without activity, ``absolute_s`` in all (seconds). Read
    at every request, so a change applies to the running app at once."""

    idle_s: float = 30 * 60.0
    absolute_s: float = 12 * 3600.0


def retry_text(until: float) -> str:
    wait = max(1, int(until - time.time() + 0.999))
    return f"try again after {time.strftime('%H:%M:%S UTC', time.gmtime(until))} (in {wait} s)"


def attempt(repo, username: str, password: str, address: str, policy: LoginPolicy) -> str:
    """Check a login; returns the stored user name or raises :class:`AuthError` (wrong) or
    :class:`LoginLocked` (too many failures; says when to retry). Same work for every name."""
    username = (username or "")[:200]
    until = repo.login_locked_until(username, address)
    ok = repo.check_password(username, password or "")  # one scrypt check whatever the name or lock
    if until:
        raise LoginLocked(f"Too many failed logins for this account or address; {retry_text(until)}.",
                          "Wait, or ask an admin to unlock it (Admin tab, Locked logins).", until=until)
    if not ok:
        until = repo.record_login_failure(username, address, policy)
        if until:
            raise LoginLocked(f"{INCORRECT} Too many failed logins: locked; {retry_text(until)}.",
                              "Wait, or ask an admin to unlock it (Admin tab, Locked logins).", until=until)
        raise AuthError(INCORRECT, "Check the user name and password (names ignore case).")
    name = repo.canonical_username(username)
    repo.record_login_success(name, address)
    return name


class Sessions:
    """The app's logins: token -> user, start, last activity, epoch. Thread-safe."""

    def __init__(self, policy: SessionPolicy):
        self.policy = policy
        self._lock = threading.Lock()
        self._by_token: dict[str, dict] = {}

    def start(self, user: str, epoch: int) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._prune(now)
            self._by_token[token] = {"user": user, "start": now, "seen": now, "epoch": epoch}
        return token

    def _prune(self, now: float) -> None:
        for token, s in list(self._by_token.items()):
            if self._ended(s, now):
                del self._by_token[token]

    def _ended(self, s: dict, now: float) -> str:
        if now - s["start"] > self.policy.absolute_s:
            return f"your session reached its {self.policy.absolute_s / 3600:g} h limit"
        if now - s["seen"] > self.policy.idle_s:
            return f"your session was idle for more than {self.policy.idle_s / 60:g} min"
        return ""

    def check(self, token: str, epoch_of, *, activity: bool, check_epoch: bool = True) -> tuple[str | None, str]:
        """(user, "") for a live session, else (None, why it ended). ``epoch_of(user)``: the user's
        current epoch, None if unknown or inactive."""
        now = time.time()
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None, "you are not logged in"
            why = self._ended(s, now)
        if not why and check_epoch and epoch_of(s["user"]) != s["epoch"]:
            why = "your password, role or account changed, or an admin logged you out"
        with self._lock:
            if why:
                self._by_token.pop(token, None)
                return None, why
            if activity:
                s["seen"] = now
        return s["user"], ""

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)


def _cookies(scope) -> SimpleCookie:
    jar = SimpleCookie()
    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie is no login
                return SimpleCookie()
    return jar


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == name), "")


class LoginGuard:
    """ASGI middleware: login, session checks and the pre-login wall (see the module docstring)."""

    def __init__(self, app, repo=None, login_policy: LoginPolicy | None = None,
                 session_policy: SessionPolicy | None = None, message: str = "", title: str = "CARE Review Studio"):
        self.app, self.repo = app, repo
        self.login_policy = login_policy or LoginPolicy()
        self.sessions = Sessions(session_policy or SessionPolicy())
        self.message, self.title = message, title

    def _token(self, scope, gradio_app) -> str | None:
        jar = _cookies(scope)
        cid = getattr(gradio_app, "cookie_id", "")
        for name in (f"access-token-{cid}", f"access-token-unsecure-{cid}"):
            if name in jar:
                return jar[name].value
        return None

    async def __call__(self, scope, receive, send):
        if scope.get("type") not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        gradio_app = scope.get("app")
        path = scope.get("path", "")
        root = scope.get("root_path", "") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        method = scope.get("method", "GET")
        if path.rstrip("/") == "/login" and method == "POST":
            return await self._login(scope, receive, send, gradio_app)
        token = self._token(scope, gradio_app)
        tokens = getattr(gradio_app, "tokens", {})
        user, why = None, "you are not logged in"
        if token and token in tokens:
            static = path.startswith(STATIC)
            user, why = self.sessions.check(token, self.repo.sessions_epoch, check_epoch=not static,
                                            activity=method == "POST" or (path == "/" and method == "GET"))
            if user is None:
                tokens.pop(token, None)
        if user is not None and path in ("/", "") and method in ("GET", "HEAD") and self.repo is not None:
            return await self._page_for(user, scope, receive, send)
        if user is not None or path.rstrip("/") == "/logout" or path in PUBLIC:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if path in ("/", "") and method in ("GET", "HEAD"):
            error = "" if why == "you are not logged in" else f"Logged out: {why}. Log in again."
            return await self._respond(scope, receive, send, self._page(error), 200)
        return await self._respond(scope, receive, send, {"detail": f"Not logged in: {why}. Fix: log in again at /."},
                                   401)

    async def _page_for(self, user: str, scope, receive, send):
        """The app's page as the user's role sees it (an annotator's leaves out the staff tabs:
        studio.role_view); set for this request only."""
        from .role_view import VIEW_ROLE

        try:
            role = self.repo.role_of(user)
        except AuthError:  # the login ended meanwhile: the page Gradio makes; every handler refuses it
            role = None
        token = VIEW_ROLE.set(role)
        try:
            return await self.app(scope, receive, send)
        finally:
            VIEW_ROLE.reset(token)

    def _page(self, error: str = "") -> str:
        return login_page(self.message, error, self.title)

    async def _respond(self, scope, receive, send, body, status: int, headers: dict | None = None, cookie=None):
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse

        if body is None:
            response = RedirectResponse("./", status_code=303)
        elif isinstance(body, str):
            response = HTMLResponse(body, status_code=status)
        else:
            response = JSONResponse(body, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        for k, v in (headers or {}).items():
            response.headers[k] = v
        if cookie is not None:
            response.set_cookie(**cookie)
        await response(scope, receive, send)

    async def _login(self, scope, receive, send, gradio_app):
        import anyio

        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_LOGIN_BODY:
                return await self._respond(scope, receive, send, {"detail": "Login form too large."}, 413)
            if not message.get("more_body"):
                break
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        address = (scope.get("client") or ("unknown", 0))[0]
        browser = "text/html" in _header(scope, b"accept")
        try:
            user = await anyio.to_thread.run_sync(attempt, self.repo, form.get("username", ""),
                                                  form.get("password", ""), address, self.login_policy)
        except AuthError as err:
            status = 429 if isinstance(err, LoginLocked) else 400
            headers = {}
            if isinstance(err, LoginLocked):
                headers["Retry-After"] = str(max(1, int(err.details["until"] - time.time() + 0.999)))
            body = self._page(str(err)) if browser else {"detail": str(err)}
            return await self._respond(scope, receive, send, body, status, headers)
        token = self.sessions.start(user, self.repo.sessions_epoch(user) or 0)
        gradio_app.tokens[token] = user
        tls = scope.get("scheme") == "https"
        cid = gradio_app.cookie_id
        cookie = {"key": f"access-token-{cid}" if tls else f"access-token-unsecure-{cid}", "value": token,
                  "max_age": int(self.sessions.policy.absolute_s), "path": "/", "httponly": True,
                  "samesite": "strict", "secure": tls}
        return await self._respond(scope, receive, send, None if browser else {"success": True}, 200, cookie=cookie)


def install(blocks, kwargs: dict, repo) -> None:
    """Put :class:`LoginGuard` (then the download guard) in front of the app being launched.
    ``kwargs`` are ``launch``'s: ``login_policy`` and ``session_policy`` are taken from them (else
    from attributes of the same names on ``blocks``, else the defaults)."""
    from starlette.middleware import Middleware

    from .downloads import DownloadGuard

    login_policy = kwargs.pop("login_policy", None) or getattr(blocks, "login_policy", None)
    session_policy = kwargs.pop("session_policy", None) or getattr(blocks, "session_policy", None)
    app_kwargs = dict(kwargs.get("app_kwargs") or {})
    middleware = list(app_kwargs.get("middleware") or [])
    if repo is not None:
        middleware.append(Middleware(LoginGuard, repo=repo, login_policy=login_policy, session_policy=session_policy,
                                     message=kwargs.get("auth_message", ""), title=getattr(blocks, "title", "")
                                     or "CARE Review Studio"))
    app_kwargs["middleware"] = middleware + [Middleware(DownloadGuard)]
    kwargs["app_kwargs"] = app_kwargs
