"""Gradio's start-up without its stub writer (issue 18 and 20: start-up and test time).

Gradio 6 regenerates a ``.pyi`` type stub for every component class each time it is imported
(``gradio.component_meta.create_or_modify_pyi``: it re-parses each component's source with ``ast``
and rewrites files inside site-packages). That is an editor aid for Gradio's own developers; here it
cost 1.9 of the app's 6.2 CPU seconds to start, in every process that imports Gradio (the app, each
test worker, each app subprocess). :func:`install` registers an import hook, before Gradio is
imported, that replaces the writer with a no-op as soon as ``gradio.component_meta`` is loaded.
Nothing else of Gradio changes. If a later Gradio has no such function, the hook does nothing.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

TARGET = "gradio.component_meta"


def _no_stub(*_args, **_kwargs) -> None:
    """Write no stub file (see the module docstring)."""


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        if hasattr(module, "create_or_modify_pyi"):
            module.create_or_modify_pyi = _no_stub


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> bool:
    """Install the hook (idempotent). False if Gradio was imported already (then it is too late)."""
    if TARGET in sys.modules:
        return False
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    return True


# Gradio's queue looks for work every millisecond when it has none on Linux (``Queue.sleep_when_free``,
# 0.001 s; 0.05 s on Windows) and for progress to send every 10 ms: an idle server then costs about 8%
# of a core (0.081 CPU-s per second measured here), all day, and every test worker paid it for each
# server it held open. Looking every 10 ms (progress every 50 ms) costs 0.024 CPU-s per second and adds
# at most 10 ms before an event starts, against the 100s of ms a review action takes.
# ``python -m benchmarks.idle_server`` measures both in one run.
QUEUE_POLL_S = 0.01
PROGRESS_POLL_S = 0.05


def calm_queue(demo, poll_s: float = QUEUE_POLL_S, progress_s: float = PROGRESS_POLL_S):
    """Slow the polling of a queued Blocks' event queue when it is idle (call after ``demo.queue()``).
    If a later Gradio has no such attributes, nothing changes. Returns ``demo``."""
    q = getattr(demo, "_queue", None)
    if q is not None and hasattr(q, "sleep_when_free"):
        q.sleep_when_free = poll_s
    if q is not None and hasattr(q, "progress_update_sleep_when_free"):
        q.progress_update_sleep_when_free = progress_s
    return demo
