"""The OpenAI-compatible backend: prediction through a model served on another machine
(``vllm serve``, TGI, llama.cpp's server), spoken to over HTTP (:mod:`~care_model.inference.backends.openai_http`).

**Which API, and why ``/v1/completions``.** The engine scores the prompt that
:mod:`care_model.text.prompt` builds with the model's chat template applied *here*, tokenized as a
prefix (transcript, role, options) and an item suffix. ``/v1/completions`` takes a prompt as
token ids, so this backend sends exactly the engine's ids (the tokenizer and chat template are read
from ``--model``, locally; the weights are not loaded) and reads the log-probabilities at the first
generated position, the score position. The engine's and the server's scores are then the same
function of the same tokens. ``/v1/chat/completions`` would apply the *server's* template to the
messages, add its own generation prompt and tokenize the whole text at once: another prompt, and
no guarantee that the score position is the first generated token. (``CARE_OPENAI_PROMPT=text``
sends the prompt as text, for a server that refuses token ids; the server then tokenizes it.)
Environment: ``CARE_OPENAI_RETRIES`` (4), ``CARE_OPENAI_BACKOFF`` (0.5 s, doubled per try, at most 8 s),
``CARE_OPENAI_TIMEOUT`` (900 s per request), ``CARE_OPENAI_PROMPT`` (ids).

**Scores.** On a vLLM server (recognised by its ``/tokenize`` answering as the local tokenizer does)
the request names every option token (vLLM's ``logprob_token_ids``, as the in-process vLLM backend
does), so the option probabilities are the engine's up to float noise. Elsewhere ``logprobs=N``
(``PredictConfig.top_logprobs``, default 20, vLLM's default ``--max-logprobs``)
returns the N most probable tokens at each position. At the score position they are mapped onto the
five options as :mod:`care_model.inference.option_tokens` does for the engine: by token id when the
server returns ids (vLLM's ``return_tokens_as_token_ids``, which this backend asks for), else by
the token's text (stripped of spaces and the trailers ``.)]:``, it must be exactly the digit).
An option outside the top N counts as probability 0, so the option mass is a lower bound; the
most probable option is in the top N unless the model puts most of its mass elsewhere (then the
prediction carries the low-mass warning, as from the engine).

**Rationales.** Greedy (temperature 0), stopped at the model's end-of-turn tokens (vLLM's
``stop_token_ids``), then the project's quote check (:mod:`care_model.text.evidence`); predictions
are labelled ``free+quote-check``. **Grounded decoding** only on a vLLM server started with the
project's logits processor (see ``docs`` in the README, "A served model"): each request carries its
:class:`~care_model.text.grounding.GroundedRow` in ``vllm_xargs`` and, as for the in-process vLLM
backend, this process replays every row over the returned tokens; a server that did not apply the
constraint fails the session with a message saying how to start it.

**Requests.** A one-token request for the session's first item goes alone (the server prefills and
caches the transcript; in scores-only mode it is that item's answer), then the items concurrently
(one decoding batch on the server); at most ``--max-concurrency`` requests are in flight over all
sessions (sessions overlap), each retried on 429 and 5xx with backoff. A session's
predictions are returned only when all its items are done, so the predict command stores whole
sessions and a rerun resumes after the last one stored.

The predictions' ``model_version`` is that of ``--model`` (+ ``--adapter``): the served weights
must be those (a vLLM server's tokenizer is checked against the local one through ``/tokenize``).
An adapter is loaded into the server at run time (vLLM's ``/v1/load_lora_adapter``; the server needs
``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` and must see the adapter's path).
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, as_completed, wait
from pathlib import Path
from typing import Iterable, Iterator

from care_model.core.errors import ConfigError, ModelError
from care_model.inference.backends.openai_http import OpenAIServer, ServerError, api_key_from_env
from care_model.inference.backends.vllm_names import GROUNDED_FQCN, GROUNDING_KEY
from care_model.inference.item_output import ItemOutput
from care_model.inference.option_tokens import OPTION_TRAILERS, option_token_ids, score_from_logprobs
from care_model.text.stop_tokens import folder_stop_ids

TOKEN_ID = "token_id:"
PROBE = 'Answer: 4\nThe client says "I think we are working on it together."'
SERVE_HINT = (f"Start vLLM with `PYTHONPATH=<this repository> VLLM_USE_V2_MODEL_RUNNER=0 vllm serve MODEL "
              f"--logits-processors {GROUNDED_FQCN}`, or predict with --decoding free.")


def option_logprobs(top: dict, option_ids: dict[int, list[int]], options=(1, 2, 3, 4, 5)):
    """``(logprobs, option ids)`` for :func:`score_from_logprobs` from one position's top log-probs,
    keyed ``"token_id:N"`` (mapped through ``option_ids``, the engine's) or by token text (the rule of
    :func:`~care_model.inference.option_tokens.option_token_ids`: the text, stripped of spaces and
    trailing punctuation, is exactly the digit, ASCII or full-width)."""
    lps: dict[int, float] = {}
    by_text: dict[int, list[int]] = {o: [] for o in options}
    text_mode = False
    for n, (key, lp) in enumerate(top.items()):
        if lp is None:
            continue
        if str(key).startswith(TOKEN_ID):
            lps[int(str(key)[len(TOKEN_ID):])] = float(lp)
            continue
        text_mode = True
        core = str(key).strip().rstrip(OPTION_TRAILERS).strip()
        for o in options:
            if core in (str(o), chr(0xFF10 + o)):
                lps[-(n + 1)] = float(lp)
                by_text[o].append(-(n + 1))
    if not text_mode:
        return lps, option_ids
    missing = -(10 ** 9)  # an id no answer has: an option absent from the top N has probability 0
    return lps, {o: ids or [missing - o] for o, ids in by_text.items()}


class OpenAIBackend:
    """Session in, ``{item: ItemOutput}`` out, through an OpenAI-compatible server (module docstring)."""

    def __init__(self, spec, config, *, model_version: str, server: OpenAIServer | None = None):
        if not str(getattr(config, "base_url", "") or "").strip() and server is None:
            raise ConfigError("The openai backend needs the server's URL.",
                              "Pass --base-url http://HOST:PORT/v1 and --served-model NAME.")
        if not str(getattr(config, "served_model", "") or "").strip():
            raise ConfigError("The openai backend needs the served model's name.",
                              "Pass --served-model NAME (as the server lists it under /v1/models).")
        self.spec, self.config, self.model_version = spec, config, model_version
        self.served_model = str(config.served_model)
        self.top_logprobs = int(getattr(config, "top_logprobs", 20))
        self.server = server or OpenAIServer(
            config.base_url, api_key=api_key_from_env(config.api_key_env), max_concurrency=int(config.max_concurrency),
            retries=int(os.environ.get("CARE_OPENAI_RETRIES", 4)),
            backoff=float(os.environ.get("CARE_OPENAI_BACKOFF", 0.5)),
            timeout=float(os.environ.get("CARE_OPENAI_TIMEOUT", 900)))
        self.prompt_as = os.environ.get("CARE_OPENAI_PROMPT", "ids")
        self._tokenizer = None
        self._base: str | None = None
        self._stop: list[int] | None = None
        self._options: dict[int, list[int]] | None = None
        self._info: dict | None = None
        self.exact_options = False  # a vLLM server: the option tokens' log-probabilities asked for by id
        self._lock = threading.Lock()
        self.last_stats: dict = {}

    # -------------------------------------------------------------- the model's local side
    @property
    def base(self) -> str:
        if self._base is None:
            from care_model.inference.model_files import resolve_model_base

            self._base = resolve_model_base(self.spec.base)[0]
        return self._base

    @property
    def tokenizer(self):
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.base)
            return self._tokenizer

    @property
    def stop_token_ids(self) -> list[int]:
        if self._stop is None:
            self._stop = folder_stop_ids(self.tokenizer, self.base)
        return self._stop

    def option_token_ids(self, language: str = "en") -> dict[int, list[int]]:
        if self._options is None:
            self._options = option_token_ids(self.tokenizer)
        return self._options

    @property
    def model_max(self) -> int | None:
        served = self.info().get("max_model_len")
        if served:
            return int(served)
        try:
            return json.loads((Path(self.base) / "config.json").read_text(encoding="utf-8")).get(
                "max_position_embeddings")
        except (OSError, ValueError):
            return None

    @property
    def loaded(self) -> bool:
        return self._info is not None

    def close(self) -> None:
        self.server.close()

    # -------------------------------------------------------------- the server's side
    def info(self) -> dict:
        """The served model's entry in ``/v1/models`` (checked once: the server answers, serves the
        model, tokenizes as the local tokenizer does, and has the adapter loaded when one is asked for)."""
        with self._lock:
            if self._info is not None:
                return self._info
        models = self.server.get("models").get("data") or []
        names = [str(m.get("id")) for m in models]
        if names and self.served_model not in names:
            raise ConfigError(f"The server at {self.server.base_url} does not serve {self.served_model!r}; it serves "
                              f"{', '.join(names)}.", "Pass one of those as --served-model.")
        info = next((m for m in models if m.get("id") == self.served_model), {})
        self._check_tokenizer()
        if self.spec.adapter:
            self._load_adapter(names)
        with self._lock:
            self._info = info
        return info

    @property
    def request_model(self) -> str:
        return self.model_version if self.spec.adapter else self.served_model

    def _check_tokenizer(self) -> None:
        try:
            got = self.server.post("tokenize", {"model": self.served_model, "prompt": PROBE,
                                                "add_special_tokens": False}, root=True, retry=False)
        except ServerError as err:
            if err.status in (400, 404, 405, 422):  # not a vLLM server: nothing to compare with
                return
            raise
        mine = list(self.tokenizer(PROBE, add_special_tokens=False)["input_ids"])
        self.exact_options = list(got.get("tokens") or []) == mine
        if not self.exact_options:
            raise ModelError(f"The model served at {self.server.base_url} tokenizes text differently from the local "
                             f"tokenizer of {self.spec.base!r}: the prompts and option tokens would not match.",
                             "Pass as --model the folder (or hub id) of the model the server serves.")

    def _load_adapter(self, names: list[str]) -> None:
        from care_model.inference.model_files import check_adapter_folder

        if self.model_version in names:
            return
        path = str(check_adapter_folder(self.spec.adapter).resolve())
        try:
            self.server.post("load_lora_adapter", {"lora_name": self.model_version, "lora_path": path}, retry=False)
        except ServerError as err:
            raise ModelError(f"The server at {self.server.base_url} did not load the adapter {path}: {err.message}",
                             "Start vLLM with --enable-lora (and --max-lora-rank >= the adapter's r) and "
                             "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, on a machine that sees this path; or pass "
                             "--served-model with the adapter's name if the server was started with it "
                             "(--lora-modules).") from None

    # -------------------------------------------------------------- prediction
    def _body(self, ids: list[int], text: str, *, max_tokens: int, row=None, tokenizer_path: str = "") -> dict:
        body = {"model": self.request_model, "prompt": ids if self.prompt_as == "ids" else text,
                "max_tokens": int(max_tokens), "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": 0,
                "logprobs": self.top_logprobs, "stop_token_ids": self.stop_token_ids,
                "return_tokens_as_token_ids": True, "skip_special_tokens": True}
        if self.exact_options:
            body["logprob_token_ids"] = sorted({t for ids in self.option_token_ids().values() for t in ids})
        if row is not None:
            spec = {"row": row.spec(), "stop_ids": row.vocab.stop_ids, "tokenizer": tokenizer_path}
            body["vllm_xargs"] = {GROUNDING_KEY: json.dumps(spec)}
        return body

    def _output(self, reply: dict, *, scores_only: bool, options) -> tuple[ItemOutput, list[int]]:
        choice = (reply.get("choices") or [{}])[0]
        lp = choice.get("logprobs") or {}
        tops, tokens = lp.get("top_logprobs") or [], lp.get("tokens") or []
        if not tops or not tops[0]:
            raise ModelError(f"The server at {self.server.base_url} returned no log-probabilities at the score "
                             "position.", "Use a server that supports `logprobs` on /v1/completions "
                             "(vLLM, TGI, llama.cpp's server).")
        first = dict(tops[0])
        if tokens and lp.get("token_logprobs") and tokens[0] not in first:
            first[tokens[0]] = lp["token_logprobs"][0]
        lps, opt_ids = option_logprobs(first, options)
        probs, expected, argmax, mass = score_from_logprobs(lps, opt_ids)
        if tokens and all(str(t).startswith(TOKEN_ID) for t in tokens):
            ids = [int(str(t)[len(TOKEN_ID):]) for t in tokens]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
        else:
            text = str(choice.get("text") or "")
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        finished = (not scores_only) and choice.get("finish_reason") == "stop"
        return ItemOutput("" if scores_only else text, [] if scores_only else ids, probs, expected, argmax, mass,
                          finished), ids

    def run(self, prompt, *, scores_only: bool, max_new_tokens: int | None = None, rows=None) -> dict:
        """The session's items -> ``{item: ItemOutput}``; raises (and returns nothing) when any item fails."""
        info = self.info()
        tok = self.tokenizer
        enc = lambda text: list(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        prefix = enc(prompt.prefix)
        max_new = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        items = sorted(prompt.suffixes)
        grounded = bool(rows) and not scores_only
        tok_path = str(info.get("root") or self.base)  # the folder the server loaded (vLLM's "root")
        bodies = {i: self._body(prefix + enc(prompt.suffixes[i]), prompt.prefix + prompt.suffixes[i],
                                max_tokens=1 if scores_only else max_new,
                                row=rows[i] if grounded and i in rows else None, tokenizer_path=tok_path)
                  for i in items}
        options = self.option_token_ids()
        before = dict(self.server.stats)
        t0 = time.perf_counter()
        # one short request first prefills (and caches) the shared transcript; then the items go together
        if scores_only:
            replies, rest = {items[0]: self.server.post("completions", bodies[items[0]])}, items[1:]
        else:
            warm = {k: v for k, v in bodies[items[0]].items() if k != "vllm_xargs"}
            self.server.post("completions", dict(warm, max_tokens=1))
            replies, rest = {}, items
        if rest:
            with ThreadPoolExecutor(min(len(rest), self.server.max_concurrency)) as pool:
                futures = {pool.submit(self.server.post, "completions", bodies[i]): i for i in rest}
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for fut in pending:
                    fut.cancel()
                for fut in done:
                    replies[futures[fut]] = fut.result()  # the first failure raises: the session returns nothing
        outputs, violations = {}, {}
        for item in items:
            outputs[item], ids = self._output(replies[item], scores_only=scores_only, options=options)
            if grounded and item in rows:
                from care_model.text.grounding import replay

                violations[item] = replay(rows[item], ids)
        self.last_stats = {"seconds": round(time.perf_counter() - t0, 3),
                           "requests": self.server.stats["requests"] - before["requests"],
                           "retries": self.server.stats["retries"] - before["retries"],
                           "grounding_violations": sum(violations.values())}
        if any(violations.values()):
            bad = sorted(i for i, v in violations.items() if v)
            raise ModelError(f"The server at {self.server.base_url} did not apply grounded decoding (items {bad} "
                             "break the constraint): it was not started with the project's logits processor.",
                             SERVE_HINT)
        return outputs

    def spread(self, sessions: Iterable, predict_one) -> Iterator[tuple]:
        """``(session, predict_one(session))`` as each session finishes; sessions overlap (the
        request bound is the server's), and the first failure stops the rest unfinished."""
        sessions = list(sessions)
        if not sessions:
            return
        self.info()  # a server that is down fails here, before any work
        width = max(1, min(len(sessions), math.ceil(self.server.max_concurrency / 12)))
        if width == 1:
            for session in sessions:
                yield session, predict_one(session)
            return
        pool = ThreadPoolExecutor(width)
        futures = [pool.submit(lambda s=s: (s, predict_one(s))) for s in sessions]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
            pool.shutdown(wait=True)
