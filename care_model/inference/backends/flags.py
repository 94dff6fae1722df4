"""The prediction backend's command-line flags, one group shared by ``care predict``, ``care crossval``,
``care retrain`` (the evaluation's predictions) and ``care app``.

``add_backend_args(parser)`` adds ``--backend {engine,vllm,openai}`` and the served model's flags;
``backend_settings(args)`` turns them into :class:`~care_model.inference.predictor.PredictConfig`
fields and ``backend_overrides(args)`` into the retraining config's ``predict_*`` fields (the key
itself never: only the *name* of the environment variable that holds it is passed on and stored).
Pure argparse (no torch, no httpx): ``care --help`` stays light.
"""
from __future__ import annotations

import argparse
import os

from care_model.core.errors import ConfigError
from care_model.inference.backends import BACKENDS


def add_backend_args(parser: argparse.ArgumentParser, *, default: str | None = "engine",
                     env_defaults: bool = False) -> None:
    """The backend group. ``default=None`` leaves an unset ``--backend`` as None (the retraining
    commands: the recipe decides); ``env_defaults`` reads CARE_BACKEND, CARE_OPENAI_BASE_URL,
    CARE_OPENAI_SERVED_MODEL and CARE_OPENAI_API_KEY_ENV (the app)."""
    env = (lambda name, d=None: os.environ.get(name, d)) if env_defaults else (lambda name, d=None: d)
    g = parser.add_argument_group("prediction backend")
    parser.set_defaults(backend_from_env=env_defaults)
    g.add_argument("--backend", choices=BACKENDS, default=env("CARE_BACKEND", default),
                   help="'engine' (in process, default), 'vllm' (a worker in .venv-vllm: `make setup-vllm`) or "
                        "'openai' (a model served on another machine: vllm serve, TGI, llama.cpp's server)")
    g.add_argument("--base-url", default=env("CARE_OPENAI_BASE_URL"),
                   help="openai: the server's OpenAI-compatible root, e.g. http://gpu-01:8000/v1")
    g.add_argument("--served-model", default=env("CARE_OPENAI_SERVED_MODEL"),
                   help="openai: the model's name on the server (its /v1/models id); --model names the same "
                        "weights locally (tokenizer, chat template and the recorded model version)")
    g.add_argument("--api-key-env", default=env("CARE_OPENAI_API_KEY_ENV"), metavar="NAME",
                   help="openai: the environment variable holding the server's API key (never the key itself)")
    g.add_argument("--max-concurrency", type=int, default=None,
                   help="openai: requests in flight at most (default 16; each retried on 429/5xx with backoff)")
    g.add_argument("--server-grounding", action="store_true", default=None,
                   help="openai: the server is a vLLM started with the project's logits processor: decode "
                        "grounded there (default for openai: free decoding + the quote check)")


def _check(args) -> None:
    if getattr(args, "backend", None) != "openai":
        given = [f for f in ("base_url", "served_model", "api_key_env") if getattr(args, f, None)]
        if given and getattr(args, "backend", None) is not None and not getattr(args, "backend_from_env", False):
            raise ConfigError(f"--{given[0].replace('_', '-')} is for --backend openai, not {args.backend}.",
                              "Add --backend openai, or drop the server's flags.")
        return
    missing = [f"--{f.replace('_', '-')}" for f in ("base_url", "served_model") if not getattr(args, f, None)]
    if missing:
        raise ConfigError(f"--backend openai needs {' and '.join(missing)}.",
                          "Pass --base-url http://HOST:PORT/v1 --served-model NAME (see /v1/models on the server).")


def backend_settings(args, *, decoding: str | None = None) -> dict:
    """PredictConfig fields from the flags (``decoding``: an explicit ``--decoding``, else the backend's default:
    grounded in process and in the vLLM worker, free + quote check on a server unless --server-grounding)."""
    _check(args)
    backend = args.backend or "engine"
    out = {"backend": backend}
    if backend == "openai":
        out.update(base_url=args.base_url, served_model=args.served_model, api_key_env=args.api_key_env or "")
        if args.max_concurrency is not None:
            out["max_concurrency"] = int(args.max_concurrency)
    if decoding:
        out["decoding"] = decoding
    elif backend == "openai":
        out["decoding"] = "grounded" if args.server_grounding else "free"
    return out


def backend_overrides(args) -> dict:
    """The retraining config's ``predict_*`` fields the flags set (empty without --backend)."""
    _check(args)
    if not args.backend:
        return {}
    out = {"predict_backend": args.backend}
    if args.backend == "openai":
        out.update(predict_base_url=args.base_url, predict_served_model=args.served_model,
                   predict_api_key_env=args.api_key_env or "")
        if args.max_concurrency is not None:
            out["predict_max_concurrency"] = int(args.max_concurrency)
        out["decoding"] = "grounded" if args.server_grounding else "free"
    return out
