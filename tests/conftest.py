"""Shared pytest fixtures. Keep this file small: one fixture per shared resource, documented.

Tests never reach a model hub: HF_HUB_OFFLINE is forced on before transformers is imported.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from apps launched in tests
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

import pytest  # noqa: E402


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
