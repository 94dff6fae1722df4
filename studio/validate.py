"""Strict argument checks for every HTTP endpoint, from the endpoint's own type hints.

:func:`register` wraps a handler with :func:`strict` and registers it with ``gr.api``. Before the
handler runs (so before any role check or store access), every argument is checked against its
annotation, with no coercion:

* ``int``: a JSON integer; ``3.5``, ``True`` and ``"4"`` are refused (bool is not an int here);
* ``bool``: ``true``/``false`` only; ``str``: a string (``None`` refused unless ``str | None``);
* ``list[T]`` / ``dict``: the container with items of the right type, at most
  :data:`MAX_ITEMS` entries;
* text is capped by parameter name (:data:`TEXT_LIMITS`, else :data:`DEFAULT_TEXT_LIMIT`);
  the caps are documented in ``studio/API.md``;
* text holding control characters (other than newline and tab) or bidirectional overrides is
  refused (:mod:`care_model.core.textcheck`), here for the API and, for every component input of
  every UI event, by :func:`check_inputs` (called from ``StudioBlocks.preprocess_data``).

A refused argument raises :class:`~care_model.core.errors.ValidationError` naming the endpoint, the
parameter, what was sent and what to send; :func:`studio.ui.guard` turns it into the message
the client sees. Nothing is written.
"""
from __future__ import annotations

import functools
import inspect
import json
import types
import typing

from care_model.core.errors import ValidationError
from care_model.core.textcheck import check_text

# Caps on text arguments, in characters. The paper's rationales average 155 Chinese characters.
RATIONALE_LIMIT = 4000
TEXT_LIMITS = {"rationale": RATIONALE_LIMIT, "comment": 2000, "reason": 2000, "overrides": 4000,
               "password": 200, "search": 200, "transcript": 60_000}  # transcript: the demo's paste box
DEFAULT_TEXT_LIMIT = 200  # ids, names, modes, roles, ...
MAX_ITEMS = 1000  # entries of a list or dict argument
MAX_JSON_CHARS = 20_000  # a dict argument as JSON


def text_limit(name: str) -> int:
    return TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT)


def _describe(value) -> str:
    r = repr(value)
    r = r if len(r) <= 40 else r[:37] + "..."
    return f"{type(value).__name__} {r}"


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple):
        args = typing.get_args(tp)
        plural = {int: "integers", str: "strings", bool: "booleans", float: "numbers"}
        return f"a list of {plural.get(args[0], 'values') if args else 'values'}"
    if origin is dict or tp is dict:
        return "an object ({...})"
    return {int: "an integer", str: "a string", bool: "true or false", float: "a number"}.get(tp, getattr(tp,
                                                                                                          "__name__",
                                                                                                          str(tp)))


def _ok(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if tp is typing.Any or tp is inspect.Parameter.empty:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is int:
        return type(value) is int
    if tp is float:
        return type(value) in (int, float)
    if tp is bool:
        return type(value) is bool
    if tp is str:
        return type(value) is str
    if origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, list) and all(_ok(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict or tp is dict:
        return isinstance(value, dict) and all(type(k) is str for k in value)
    return True  # other annotations (files, literals) are the component's business


def check_argument(endpoint: str, name: str, value, tp) -> None:
    """Raise ValidationError unless ``value`` fits annotation ``tp`` and the caps."""
    where = f"/{endpoint}: {name!r}"
    if not _ok(value, tp):
        raise ValidationError(f"{where} must be {_type_name(tp)}, not {_describe(value)}.",
                              f"Send {name} as {_type_name(tp)} (see studio/API.md).")
    if isinstance(value, str) and len(value) > text_limit(name):
        raise ValidationError(f"{where} is {len(value):,} characters long; the limit is {text_limit(name):,}.",
                              f"Shorten {name} to at most {text_limit(name):,} characters.")
    _check_texts(where, value)
    if isinstance(value, (list, dict)):
        if len(value) > MAX_ITEMS:
            raise ValidationError(f"{where} has {len(value):,} entries; the limit is {MAX_ITEMS:,}.",
                                  "Send fewer entries per call.")
        items = value.values() if isinstance(value, dict) else value
        long = [v for v in items if isinstance(v, str) and len(v) > text_limit(name)]
        if long or (isinstance(value, dict) and len(json.dumps(value, default=str)) > MAX_JSON_CHARS):
            raise ValidationError(f"{where} holds text longer than allowed.",
                                  f"Keep each entry within {text_limit(name):,} characters.")


def _check_texts(where: str, value) -> None:
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_texts(where, v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_texts(where, k)
            _check_texts(where, v)


def check_inputs(block_fn, inputs) -> None:
    """Refuse control characters and bidirectional overrides in any text a client sent to an
    event (state components excepted: their values live on the server)."""
    import gradio as gr

    try:
        names = [n for n in inspect.signature(block_fn.fn).parameters if n not in ("self", "request")]
    except (TypeError, ValueError):
        names = []
    api = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", "event")
    for i, block in enumerate(block_fn.inputs):
        if i >= len(inputs) or isinstance(block, gr.State):
            continue
        label = names[i] if i < len(names) else getattr(block, "label", None) or f"input {i + 1}"
        value = inputs[i]
        if isinstance(value, dict) and {"path", "meta"} & set(value):  # an uploaded file's payload
            continue
        _check_texts(f"/{api}: {label!r}", value)


def component_input_error(block_fn, inputs, err) -> ValidationError:
    """A clear refusal for an input a Gradio component could not read (e.g. ``files`` that are
    not uploaded files), naming the handler's parameter."""
    names = [n for n in inspect.signature(block_fn.fn).parameters if n not in ("self", "request")]
    bad = "an input"
    for i, block in enumerate(block_fn.inputs):
        model = getattr(block, "data_model", None)
        try:
            if model is not None and i < len(inputs) and inputs[i] is not None:
                model.model_validate(inputs[i])
        except Exception:  # noqa: BLE001 - this is the one that failed
            bad = repr(names[i]) if i < len(names) else f"input {i + 1}"
            break
    api = getattr(block_fn, "api_name", None) or block_fn.name
    kind = err.errors()[0].get("msg", "invalid") if err.errors() else "invalid"
    return ValidationError(f"/{api}: {bad} is not in the expected form ({kind}).",
                           "Send the arguments listed in studio/API.md (files with gradio_client.handle_file(path)).")


def strict(fn, endpoint: str | None = None):
    """Decorator: check every argument of ``fn`` (except ``request``) against its type hints."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    endpoint = endpoint or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind_partial(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in ("self", "request"):
                continue
            check_argument(endpoint, name, value, hints.get(name, typing.Any))
        return fn(*args, **kwargs)

    return wrapper


def checked(endpoint: str):
    """Decorator for a UI handler that also serves an ``api_name``: :func:`strict` under that name."""
    return lambda fn: strict(fn, endpoint)


def register(fn, api_name: str, **kwargs):
    """``gr.api`` of ``fn`` behind :func:`strict`, refusals turned into messages (studio.ui.guard)."""
    import gradio as gr

    from .ui import guard

    kwargs.setdefault("concurrency_limit", None)
    wrapped = guard(strict(fn, api_name))
    wrapped.__name__ = api_name
    return gr.api(wrapped, api_name=api_name, **kwargs)
