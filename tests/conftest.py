"""Shared pytest fixtures. Keep this file small: one fixture per shared resource, documented.

Tests never reach a model hub: HF_HUB_OFFLINE is forced on before transformers is imported.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama (GQA, ChatML template, byte-level BPE with " 4" != "4"), built once per test run.

    Load it with ``ModelSpec(base=str(tiny_model_dir))``; ``care_model.tiny_model`` documents it.
    """
    from care_model.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama", seed=0)
