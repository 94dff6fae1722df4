"""The HTTP side of the OpenAI-compatible backend: one client per server, a bound on requests in
flight, retries with backoff on 429 and 5xx, and errors that name the server's URL.

Client: ``httpx`` (already installed with Gradio, now pinned in requirements.txt). Not the ``openai``
SDK: it would be a new dependency for three plain JSON endpoints, its typed responses have no
place for vLLM's extras (``return_tokens_as_token_ids``, ``vllm_xargs``, ``stop_token_ids``: sent
through ``extra_body`` anyway), and its own retry policy would hide the one this module states.
An ``httpx.Client`` is thread-safe and keeps its connections open, so the concurrent requests of
a session share a small pool.

Retries: a 429, any 5xx, a refused or dropped connection and a timeout are retried ``retries``
times, waiting ``backoff * 2**n`` seconds (capped at ``max_backoff``; a ``Retry-After`` header
within the cap is honoured); other 4xx answers are errors at once (a bad request stays bad).
The API key is read from the environment variable the caller names and sent as a bearer token;
it is never logged, stored or put in an error message. No prompt or answer text is logged.

Pure module: httpx and the standard library (no torch, no store).
"""
from __future__ import annotations

import os
import threading
import time

from care_model.core.errors import ConfigError, ModelError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def api_key_from_env(name: str | None) -> str | None:
    """The key in ``$name`` (None without a name); a named but unset variable is a ConfigError."""
    if not name:
        return None
    key = os.environ.get(name, "").strip()
    if not key:
        raise ConfigError(f"--api-key-env names the environment variable {name}, which is not set.",
                          f"Export {name}=<the server's API key>, or drop --api-key-env for a server without one.")
    return key


class ServerError(ModelError):
    """The server answered with an error that retrying did not cure (``status``: its HTTP status, 0: none)."""

    def __init__(self, message: str, fix: str, status: int = 0):
        super().__init__(message, fix)
        self.status = status


class OpenAIServer:
    """An OpenAI-compatible server at ``base_url`` (e.g. ``http://gpu-01:8000/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, max_concurrency: int = 16,
                 retries: int = 4, backoff: float = 0.5, max_backoff: float = 8.0, timeout: float = 900.0):
        import httpx

        url = str(base_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"The server URL {base_url!r} is not an http(s) URL.",
                              "Pass --base-url http://HOST:PORT/v1 (the server's OpenAI-compatible root).")
        if int(max_concurrency) < 1:
            raise ConfigError(f"--max-concurrency must be at least 1 (got {max_concurrency}).",
                              "Pass --max-concurrency 16 (or another positive number).")
        self.base_url = url
        self.root_url = url[:-3] if url.endswith("/v1") else url  # vLLM's /tokenize lives beside /v1
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.max_concurrency = int(max_concurrency)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), limits=limits)
        self.stats = {"requests": 0, "retries": 0}
        self._stats_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ requests
    def post(self, path: str, body: dict, *, root: bool = False, retry: bool = True) -> dict:
        return self._request("POST", path, body, root=root, retry=retry)

    def get(self, path: str, *, root: bool = False, retry: bool = True) -> dict:
        return self._request("GET", path, None, root=root, retry=retry)

    def _url(self, path: str, root: bool) -> str:
        return (self.root_url if root else self.base_url) + "/" + path.lstrip("/")

    def _request(self, method: str, path: str, body: dict | None, *, root: bool, retry: bool) -> dict:
        import httpx

        url = self._url(path, root)
        tries = 1 + (self.retries if retry else 0)
        last = ""
        for attempt in range(tries):
            wait = min(self.max_backoff, self.backoff * 2 ** attempt)
            try:
                with self._slots:  # the bound on requests in flight, over every thread of this process
                    with self._stats_lock:
                        self.stats["requests"] += 1
                    resp = self._client.request(method, url, json=body)
            except httpx.TimeoutException as err:
                last = f"no answer in time ({type(err).__name__})"
            except httpx.TransportError as err:
                last = f"cannot connect ({type(err).__name__}: {err})"
            else:
                if resp.status_code < 400:
                    try:
                        return resp.json()
                    except ValueError:
                        raise ServerError(f"The server at {url} answered with something that is not JSON.",
                                          "Check that --base-url points at an OpenAI-compatible API (…/v1).",
                                          resp.status_code) from None
                detail = _error_detail(resp)
                if resp.status_code not in RETRY_STATUSES:
                    raise ServerError(f"The server at {url} refused the request: HTTP {resp.status_code} {detail}",
                                      _fix_for(resp.status_code), resp.status_code)
                last = f"HTTP {resp.status_code} {detail}".strip()
                wait = max(wait, _retry_after(resp, self.max_backoff))
            if attempt + 1 < tries:
                with self._stats_lock:
                    self.stats["retries"] += 1
                time.sleep(wait)
        if last.startswith("cannot connect"):
            raise ServerError(f"The OpenAI-compatible server at {self.base_url} is not reachable: {last} "
                              f"(after {tries} tries).",
                              "Start the server (e.g. `vllm serve MODEL --port PORT`) or fix --base-url; "
                              "nothing was stored for the unfinished sessions, so the same command resumes.")
        raise ServerError(f"The server at {url} kept failing: {last} (after {tries} tries).",
                          "See the server's log; the same command resumes where it stopped "
                          "(only finished sessions were stored).")


def _error_detail(resp) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return resp.text[:300]
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err or doc.get("message") or doc.get("detail") or doc)[:300] if isinstance(doc, dict) else ""


def _fix_for(status: int) -> str:
    if status in (401, 403):
        return "Pass the server's key through --api-key-env NAME (the name of an environment variable that holds it)."
    if status == 404:
        return "Check --base-url (the server's OpenAI-compatible root, usually ending in /v1) and --served-model."
    return "Check --served-model and the server's limits (e.g. vLLM's --max-logprobs, --max-model-len)."


def _retry_after(resp, cap: float) -> float:
    try:
        return min(cap, max(0.0, float(resp.headers.get("retry-after", 0))))
    except (TypeError, ValueError):
        return 0.0
