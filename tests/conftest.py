"""Shared pytest fixtures. Keep this file small: one fixture per shared resource, documented.

Tests never reach a model hub: HF_HUB_OFFLINE is forced on before transformers is imported.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# 3 pytest workers on 2 cores: a second BLAS/OpenMP thread per worker or trainer only spins waiting for a core
# (measured: a trainer's CPU halves with one thread, issue 18); the product's own thread settings still apply
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from apps launched in tests
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

from pathlib import Path  # noqa: E402

import studio  # noqa: E402,F401  (installs studio.gradio_boot before any test imports Gradio: 1.5 s less per worker)

import pytest  # noqa: E402


def _share_one_tls_context() -> None:
    """gradio_client opens a new httpx client for each request it sends, and with it a new TLS context
    that loads the CA bundle: about 78 of the 101 CPU-ms of one API call here, although tests only
    speak plain http to 127.0.0.1. Every test client gets one shared context instead (``ssl_verify``
    is passed to httpx as ``verify``); what reaches the server is unchanged."""
    import ssl

    from gradio_client import Client

    if getattr(Client.__init__, "_care_shared_tls", False):
        return
    shared, init = ssl.create_default_context(), Client.__init__

    def __init__(self, *args, ssl_verify=True, **kwargs):
        init(self, *args, ssl_verify=shared if ssl_verify is True else ssl_verify, **kwargs)

    __init__._care_shared_tls = True
    Client.__init__ = __init__


_share_one_tls_context()

# The modules that take longest (minutes on 2 cores), longest first. They are run before the others
# so that the parallel workers of `make test` (pytest-xdist, --dist loadscope: one module per
# worker at a time) start them early and finish together; every module keeps its own test order.
LONG_MODULES_FIRST = (
    "studio/test_training_tab.py", "browser/test_training_browser.py", "studio/test_training_cancel.py",
    "training/test_run.py", "studio/test_api_sweep.py", "studio/test_crossval_runs.py",
    "browser/test_review_browser.py", "browser/test_review_speed_browser.py", "browser/test_evaluation_browser.py",
    "studio/test_app_launch.py", "studio/test_login_guard.py", "browser/test_messages_browser.py",
    "browser/test_report_browser.py", "text/test_drafting.py", "inference/test_models.py", "studio/test_jobs.py",
    "store/test_store_durability.py", "training/test_crossval.py", "studio/test_review_draft.py",
)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    rank = {name: i for i, name in enumerate(LONG_MODULES_FIRST)}

    def key(item):
        try:
            return rank.get(item.path.relative_to(here).as_posix(), len(rank))
        except ValueError:   # a test outside tests/
            return len(rank)

    items.sort(key=key)  # stable: the other modules keep their order, and every module its own


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama (GQA, ChatML template, byte-level BPE with " 4" != "4"), built once per test run.

    Load it with ``ModelSpec(base=str(tiny_model_dir))``; ``tests/tiny_model.py`` documents it.
    """
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama", seed=0)


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory):
    """The review app (``studio.app.build_app``, no predictor) launched in-process on a fresh store
    with the sample sessions, quoting predictions and the users of ``studio_testing.USERS``; one per
    test module; every session expert-judged with the ratings shown (the free-score editor; client-
    anchored curation has its own server in tests/studio/test_curation_modes.py). Yields
    ``SimpleNamespace(url, repo, demo)``."""
    from types import SimpleNamespace

    from studio.app import build_app
    from studio_testing import make_store, serve

    repo = make_store(tmp_path_factory.mktemp("studio") / "store", curation_mode="expert_judged", show_ratings=True)
    demo = build_app(repo, None)
    with serve(demo) as url:
        yield SimpleNamespace(url=url, repo=repo, demo=demo)
    repo.close()
